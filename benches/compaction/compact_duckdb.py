#!/usr/bin/env python3
"""A stand-in for `dockerhub-audit compact`, for developing benches/compaction/run.py only:
writes <out>/compacted/org=X/dt=D/events.parquet for every raw day of <out>, in the layout
and schema of the design (ZSTD, rows sorted by timestamp then event_id, `timestamp` as
INT64 TIMESTAMP(MICROS, UTC), no org or dt column), each by an atomic rename into place.
Unlike the real one it writes event_id as optional, and it compacts every day it finds.

    python3 benches/compaction/compact_duckdb.py /tmp/bench20
"""
import os
import pathlib
import sys

import duckdb

COLUMNS = """{'account': 'VARCHAR', 'action': 'VARCHAR', 'action_description': 'VARCHAR',
  'actor': 'VARCHAR', 'category': 'VARCHAR',
  'collector': 'STRUCT(ingested_at VARCHAR, window_from VARCHAR, window_to VARCHAR, run_id VARCHAR)',
  'data': 'MAP(VARCHAR, VARCHAR)', 'event_id': 'VARCHAR', 'name': 'VARCHAR', 'timestamp': 'VARCHAR'}"""


def main():
    out = pathlib.Path(sys.argv[1])
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    days = 0
    for day in sorted(out.glob("org=*/dt=*")):
        if not any(day.glob("*.json.gz")):
            continue
        target = out / "compacted" / day.parent.name / day.name / "events.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(".events.parquet.tmp")
        con.execute(f"""
            COPY (
              SELECT account, action, action_description, actor, category, collector, data,
                     event_id, name, CAST("timestamp" AS TIMESTAMPTZ) AS "timestamp"
              FROM read_json(?, format = 'newline_delimited', columns = {COLUMNS})
              ORDER BY "timestamp", event_id
            ) TO '{str(tmp).replace("'", "''")}' (FORMAT parquet, COMPRESSION zstd)
        """, [str(day / "*.json.gz")])
        os.replace(tmp, target)
        days += 1
    print(f"compacted {days} days into {out / 'compacted'}")


if __name__ == "__main__":
    main()
