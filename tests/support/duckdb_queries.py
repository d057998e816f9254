"""Runs SQL on DuckDB over a dockerhub-audit output folder, for tests/queries.rs.

Reads a JSON request on stdin: {"output": DIR, "variables": {NAME: VALUE} (optional), "statements": [{"file": PATH} | {"sql": TEXT},
optionally with "params": [...]]}. Loads infra/duckdb/events.sql first (the `events` view and
the documented translation of Athena's functions), runs each statement in order, and prints a
JSON list with one entry per statement: its rows, each a list of values (timestamps in
ISO 8601, maps as objects). Any SQL error ends the run with the statement named on stderr.
"""
import datetime
import decimal
import json
import pathlib
import sys

import duckdb

ROOT = pathlib.Path(__file__).resolve().parents[2]


def plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def main() -> int:
    request = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute("SET VARIABLE output = ?", [request["output"]])
    # e.g. {"raw_only": true}: read every day from the raw trail, whatever is compacted.
    for name, value in (request.get("variables") or {}).items():
        if not name.isidentifier():
            print(f"not a variable name: {name!r}", file=sys.stderr)
            return 1
        con.execute(f"SET VARIABLE {name} = ?", [value])
    con.execute((ROOT / "infra" / "duckdb" / "events.sql").read_text())
    results = []
    for statement in request["statements"]:
        sql = pathlib.Path(statement["file"]).read_text() if "file" in statement else statement["sql"]
        try:
            cursor = con.execute(sql, statement.get("params") or None)
            rows = cursor.fetchall() if cursor.description else []
        except duckdb.Error as e:
            print(f"{statement.get('file', sql)}: {e}", file=sys.stderr)
            return 1
        results.append([plain(list(r)) for r in rows])
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
