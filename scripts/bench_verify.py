#!/usr/bin/env python3
"""Measures `dockerhub-audit verify`'s peak memory and time as its range grows.

It starts the Docker Hub emulator (the CLI's `emulator` command) with --per-day events on
each of --days days, collects them all into a local output with `poll`, then runs `verify`
over ranges of growing length (--ranges, in days) --repeat times each, and reports the
median peak RSS (the child's own, from wait4) and wall time per range, and the ratio of the
longest range's memory to the shortest's. A verify that holds one day at a time keeps that
ratio near 1 however long the range; one that held the range would grow with it.

    python3 scripts/bench_verify.py --bin target/release/dockerhub-audit --days 365 --per-day 300

Nothing is asserted (a benchmark, not a test): the machine is shared and noisy.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SECRET = "dckr_oat_bench"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc):
    for _ in range(1200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit("the emulator exited early")
            time.sleep(0.05)
    sys.exit("the emulator did not start")


def measured(cmd, env):
    """Runs cmd; returns (exit status, peak RSS in MB, wall seconds, stdout)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        out.seek(0)
        text = out.read().decode()
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, wall, text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the dockerhub-audit CLI")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--per-day", type=int, default=300)
    ap.add_argument("--ranges", default="7,30,90,365")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    work = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, DOCKERHUB_USERNAME="acme", DOCKERHUB_TOKEN=SECRET, EMULATOR_SECRET=SECRET)
    env.pop("RUST_LOG", None)
    emu = subprocess.Popen(
        [a.bin, "emulator", "--port", str(port), "--events", str(a.days * a.per_day), "--days", str(a.days),
         "--twin-fraction", "0", "--seed", "7"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, emu)
        url = f"http://127.0.0.1:{port}"
        out = os.path.join(work, "out")
        code, rss, wall, text = measured(
            [a.bin, "poll", "--org", "acme", "--hub-url", url, "--output", out,
             "--lookback", f"{a.days + 1}d", "--log-level", "warn"], env)
        if code != 0:
            sys.exit(f"poll failed ({code}): {text}")
        print(json.dumps({"poll": text.strip(), "peak_rss_mb": round(rss, 1), "seconds": round(wall, 1)}))
        results = []
        for days in [int(x) for x in a.ranges.split(",")]:
            rss_s, wall_s = [], []
            for _ in range(a.repeat):
                code, rss, wall, text = measured(
                    [a.bin, "verify", "--org", "acme", "--hub-url", url, "--output", out, "--since", f"{days}d",
                     "--log-level", "warn", "--log-format", "json"], env)
                summary = json.loads(text.strip().splitlines()[-1])
                if code != 0 or not summary["ok"]:
                    sys.exit(f"verify of {days} days failed ({code}): {summary}")
                rss_s.append(rss)
                wall_s.append(wall)
            s = summary["summary"]
            row = {"range_days": days, "events": s["at_docker_hub"], "requests": s["requests"],
                   "estimated_requests": s["estimated_requests"],
                   "peak_rss_mb_median": round(statistics.median(rss_s), 1),
                   "seconds_median": round(statistics.median(wall_s), 2)}
            results.append(row)
            print(json.dumps(row))
        first, last = results[0], results[-1]
        print(json.dumps({
            "events_ratio": round(last["events"] / max(first["events"], 1), 1),
            "peak_rss_ratio": round(last["peak_rss_mb_median"] / first["peak_rss_mb_median"], 2),
            "seconds_ratio": round(last["seconds_median"] / max(first["seconds_median"], 0.001), 1),
        }))
    finally:
        emu.terminate()
        emu.wait()


if __name__ == "__main__":
    main()
