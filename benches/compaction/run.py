#!/usr/bin/env python3
"""Measures what compaction buys the queries: every infra/queries/*.sql (but the CREATE VIEW
of deduplicated-view.sql), over the whole history of a local output folder, through the
`events` view of infra/duckdb/events.sql, (a) over the raw trail alone (`raw_only`: the view
ignores the compacted files) and (b) over the compacted surface.

    python3 benches/compaction/generate.py /tmp/bench20
    python3 benches/compaction/run.py /tmp/bench20 --fresh \\
        --compact-cmd 'target/release/dockerhub-audit compact --org acme --output {out}'

For each query: the median wall time of --repeat runs on each side (a fresh DuckDB
connection per run; the time counts the query and its fetch, not the connection nor the
reading of events.sql, shown apart as "view setup"), the answers of the two sides compared
(sorted rows; any difference ends the run with an error), and the bytes each side has to
read: raw, the size of the raw objects of the days the query covers; compacted, the
compressed size of the column chunks of the columns the query names (from
parquet_metadata), plus the footers, of the compacted files of those days (and the raw
objects of any day not compacted). One profiled run per query on the compacted side also
reports the raw objects DuckDB scanned ("none" when every day is compacted: the view then
has no raw branch) and the bytes it read.

--compact-cmd (with {out} replaced by the folder) runs first, under /usr/bin/time -v when
present, for its time and peak RSS (of its output only the last line is shown); --fresh
removes <out>/compacted before it. Without it the compacted files must already be there.
--events-sql runs another version of events.sql. The goal of the issue is printed, not asserted:
all queries together at least 20x faster, none under 10x, a few-column query reading at
least 5x fewer bytes.
"""
import argparse
import datetime
import decimal
import json
import os
import pathlib
import re
import resource
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import duckdb

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVENTS_SQL = (ROOT / "infra" / "duckdb" / "events.sql").read_text()
FILE_COLUMNS = ["account", "action", "action_description", "actor", "category", "collector",
                "data", "event_id", "name", "timestamp"]


def canonical(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return sorted((canonical(k), canonical(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def connect(out, raw_only):
    con = duckdb.connect()
    con.execute("SET VARIABLE output = ?", [str(out)])
    if raw_only:
        con.execute("SET VARIABLE raw_only = true")
    con.execute(EVENTS_SQL)
    return con


def run_once(out, raw_only, sql, params):
    t0 = time.perf_counter()
    con = connect(out, raw_only)
    t1 = time.perf_counter()
    rows = con.execute(sql, params).fetchall()
    t2 = time.perf_counter()
    con.close()
    return t1 - t0, t2 - t1, rows


def profiled(out, sql, params):
    """(raw objects scanned / listed, bytes DuckDB read) of one run on the compacted side."""
    con = connect(out, False)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{f.name}'")
        con.execute(sql, params).fetchall()
        con.execute("PRAGMA disable_profiling")
        con.close()
        profile = json.loads(pathlib.Path(f.name).read_text())
    scans = []

    def walk(node):
        info = node.get("extra_info") or {}
        if info.get("Function") == "READ_JSON":
            scans.append(info.get("Scanning Files") or f"{info.get('Total Files Read', '?')} read")
        for child in node.get("children", []):
            walk(child)

    for node in profile.get("operator", []):
        walk(node)
    return ", ".join(scans) or "none", profile.get("io", {}).get("total_bytes_read")


def referenced_columns(sql):
    text = re.sub(r"--[^\n]*", "", sql)
    return [c for c in FILE_COLUMNS if re.search(rf'(?<![\w."]){c}(?![\w"])|"{c}"', text)]


def parquet_bytes(con, files, columns):
    """Compressed size of the column chunks of `columns` in `files`, plus their footers."""
    if not files:
        return 0
    chunks = con.execute(
        "SELECT path_in_schema, total_compressed_size FROM parquet_metadata(?)",
        [[str(f) for f in files]],
    ).fetchall()
    total = sum(size for path, size in chunks if path.split(", ")[0] in columns)
    for f in files:
        with open(f, "rb") as h:
            h.seek(-8, os.SEEK_END)
            tail = h.read(8)
        total += struct.unpack("<I", tail[:4])[0] + 8
    return total


def run_compaction(cmd, out, fresh):
    """(seconds, peak RSS in KiB, last line of its output) of the compaction command."""
    if fresh:
        shutil.rmtree(out / "compacted", ignore_errors=True)
    argv = shlex.split(cmd.replace("{out}", str(out)))
    timer = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report, \
            tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        done = subprocess.run(([timer, "-v", "-o", report.name] if timer else []) + argv,
                              stdout=log, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - t0
        log.seek(0)
        lines = log.read().splitlines()
        if done.returncode != 0:
            sys.exit("\n".join(lines[-20:]) + f"\ncompaction failed ({done.returncode}): {cmd}")
        if timer:
            text = report.read()
            rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
        else:
            rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, rss_kb, lines[-1] if lines else ""


def human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compact-cmd", help="the compaction command, {out} for the folder")
    ap.add_argument("--fresh", action="store_true", help="remove <out>/compacted before --compact-cmd")
    ap.add_argument("--actor", default="jdoe", help="actor of actor-activity.sql")
    ap.add_argument("--only", help="run only the queries whose file name contains this")
    ap.add_argument("--events-sql", help="another version of infra/duckdb/events.sql, to compare")
    args = ap.parse_args()
    if args.events_sql:
        global EVENTS_SQL
        EVENTS_SQL = pathlib.Path(args.events_sql).read_text()
    out = pathlib.Path(args.out).resolve()

    raw = {}  # dt -> [sizes]
    for f in out.glob("org=*/dt=*/*.json.gz"):
        raw.setdefault(f.parent.name[3:], []).append(f.stat().st_size)
    if not raw:
        sys.exit(f"no raw objects under {out}")
    first, last = min(raw), max(raw)
    after = (datetime.date.fromisoformat(last) + datetime.timedelta(days=1)).isoformat()

    if args.compact_cmd:
        elapsed, rss_kb, said = run_compaction(args.compact_cmd, out, args.fresh)
        print(f"compaction: {elapsed:.2f} s, peak RSS {rss_kb / 1024:.1f} MiB ({args.compact_cmd}): {said}")
    compacted = sorted(out.glob("compacted/org=*/dt=*/events.parquet"))
    if not compacted:
        sys.exit(f"no compacted files under {out / 'compacted'}: give --compact-cmd")
    raw_objects = sum(len(v) for v in raw.values())
    raw_size = sum(sum(v) for v in raw.values())
    compacted_size = sum(f.stat().st_size for f in compacted)
    print(f"history: {len(raw)} days {first}..{last}, raw {raw_objects} objects ({human(raw_size)}), "
          f"compacted {len(compacted)} objects ({human(compacted_size)})")
    uncompacted = set(raw) - {f.parent.name[3:] for f in compacted}
    if uncompacted:
        print(f"warning: {len(uncompacted)} raw days without a compacted file, e.g. {sorted(uncompacted)[:3]}")

    meta = duckdb.connect()
    rows_out = []
    setups = {True: [], False: []}
    for path in sorted((ROOT / "infra" / "queries").glob("*.sql")):
        sql = path.read_text()
        if re.search(r"^\s*CREATE\b", re.sub(r"--[^\n]*", "", sql), re.I | re.M):
            continue
        if args.only and args.only not in path.name:
            continue
        span = (first, last)
        if path.stem == "actor-activity":
            params = [args.actor, f"{first}T00:00:00Z", f"{after}T00:00:00Z",
                      f"{first}T00:00:00Z", f"{after}T00:00:00Z"]
        else:
            params = [first, last]
        if sql.count("?") != len(params):
            sys.exit(f"{path.name}: {sql.count('?')} parameters, expected {len(params)}")
        medians, answers = {}, {}
        for raw_only in (True, False):
            times = []
            for i in range(args.repeat):
                setup, took, rows = run_once(out, raw_only, sql, params)
                setups[raw_only].append(setup)
                times.append(took)
                if i == 0:
                    answers[raw_only] = sorted(repr(canonical(list(r))) for r in rows)
            medians[raw_only] = statistics.median(times)
        if answers[True] != answers[False]:
            only_raw = sorted(set(answers[True]) - set(answers[False]))[:3]
            only_compacted = sorted(set(answers[False]) - set(answers[True]))[:3]
            sys.exit(f"{path.name}: the answers differ: {len(answers[True])} rows raw, "
                     f"{len(answers[False])} compacted; raw only {only_raw}; compacted only {only_compacted}")
        columns = referenced_columns(sql)
        days = [d for d in raw if span[0] <= d <= span[1]]
        raw_bytes = sum(sum(raw[d]) for d in days)
        files = [f for f in compacted if span[0] <= f.parent.name[3:] <= span[1]]
        # Days not compacted are read from their raw objects on both sides.
        comp_bytes = parquet_bytes(meta, files, columns) + sum(sum(raw[d]) for d in days if d in uncompacted)
        scanned, duck_bytes = profiled(out, sql, params)
        rows_out.append((path.stem, medians[True], medians[False], raw_bytes, comp_bytes,
                         len(answers[True]), columns, scanned, duck_bytes))
        print(f"  {path.stem}: raw {medians[True]:.3f} s, compacted {medians[False]:.3f} s, "
              f"{len(answers[True])} rows, same answers", file=sys.stderr)

    print()
    print("| query | raw s | compacted s | speed-up | raw bytes | compacted bytes | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r, c, rb, cb, *_ in rows_out:
        print(f"| {name} | {r:.3f} | {c:.3f} | {r / c:.1f}x | {rb} | {cb} | {rb / cb:.1f}x |")
    tr = sum(r[1] for r in rows_out)
    tc = sum(r[2] for r in rows_out)
    trb = sum(r[3] for r in rows_out)
    tcb = sum(r[4] for r in rows_out)
    print(f"| **all {len(rows_out)} queries** | {tr:.3f} | {tc:.3f} | {tr / tc:.1f}x | {trb} | {tcb} | {trb / tcb:.1f}x |")
    print()
    print(f"view setup (connect + read events.sql), median: raw only {statistics.median(setups[True]):.3f} s, "
          f"compacted {statistics.median(setups[False]):.3f} s; repeats {args.repeat}")
    print()
    print("| query | rows | columns read | raw objects scanned (compacted side) | DuckDB bytes read (compacted side) |")
    print("|---|---:|---|---|---:|")
    for name, _, _, _, _, n, columns, scanned, duck_bytes in rows_out:
        print(f"| {name} | {n} | {', '.join(columns)} | {scanned} | {duck_bytes} |")
    print()
    worst = min(rows_out, key=lambda r: r[1] / r[2])
    best_bytes = max(rows_out, key=lambda r: r[3] / r[4])
    print(f"goal: all together >= 20x: {tr / tc:.1f}x {'met' if tr / tc >= 20 else 'MISSED'}; "
          f"none < 10x: slowest {worst[0]} {worst[1] / worst[2]:.1f}x {'met' if worst[1] / worst[2] >= 10 else 'MISSED'}; "
          f"a few-column query >= 5x fewer bytes: {best_bytes[0]} {best_bytes[3] / best_bytes[4]:.1f}x "
          f"{'met' if best_bytes[3] / best_bytes[4] >= 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
