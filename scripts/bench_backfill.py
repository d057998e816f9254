#!/usr/bin/env python3
"""Backfill benchmark: CPU per event, peak memory, wall time, events/s and list requests
of `dockerhub-audit poll` backfilling a Docker Hub emulator, for each size given.

The emulator runs as its own process (the same binary's `emulator` command), so the
figures are the poller's alone: CPU and peak RSS come from the kernel's accounting of the
`poll` child (wait4), not from sampling.

    cargo build --release
    python3 scripts/bench_backfill.py --bin target/release/dockerhub-audit --events 100000 1000000
    python3 scripts/bench_backfill.py --bin target/release/dockerhub-audit --burst 4474

`--burst N` measures issue 22's burst instead: N events in one minute, a few minutes old,
with few distinct payloads (identical events share its seconds), read by one `poll` whose
window holds just that minute (`--lookback 10m`). Young seconds are read twice, so its
list requests are about twice the ideal.

Nothing is asserted (a benchmark, not a test); the test command runs it once at a tiny size
to keep it working. Prints one JSON line per size.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

SECRET = "bench-secret-not-a-token"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc):
    for _ in range(24000):  # generating a million events takes a while
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit("the emulator exited early")
            time.sleep(0.05)
    sys.exit("the emulator did not start")


def one(args, events, burst=0):
    port = free_port()
    env = dict(os.environ, EMULATOR_SECRET=SECRET)
    emu = subprocess.Popen(
        [args.bin, "emulator", "--port", str(port), "--events", str(events), "--days", str(args.days),
         "--seed", str(args.seed), "--page-cap", str(args.page_cap), "--twin-fraction", str(args.twin_fraction),
         "--burst-events", str(burst), "--log-level", "warn"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, emu)
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, DOCKERHUB_USERNAME="acme", DOCKERHUB_TOKEN=SECRET)
            env.pop("RUST_LOG", None)
            started = time.monotonic()
            poll = subprocess.Popen(
                [args.bin, "poll", "--org", "acme", "--hub-url", f"http://127.0.0.1:{port}",
                 "--output", out, "--lookback", "10m" if burst else f"{args.days + 1}d", "--log-format", "json",
                 "--log-level", "warn"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            stdout = poll.stdout.read()
            _, status, usage = os.wait4(poll.pid, 0)
            wall = time.monotonic() - started
            if status != 0:
                sys.exit(f"poll failed ({status}): {stdout[-2000:]!r}")
            report = json.loads(stdout.decode().strip().splitlines()[-1])
    finally:
        emu.terminate()
        emu.wait()
    written = report["events_written"]
    cpu = usage.ru_utime + usage.ru_stime
    pages = report["pages_requested"]
    ideal = -(-written // min(args.page_cap, 100))
    return {
        "events": written,
        "cpu_s": round(cpu, 2),
        "cpu_us_per_event": round(cpu / max(written, 1) * 1e6, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(wall, 2),
        "events_per_s": round(written / wall),
        "list_requests": pages,
        "ideal_requests": ideal,
        "requests_per_ideal": round(pages / max(ideal, 1), 3),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, help="the dockerhub-audit CLI (a release build for figures)")
    p.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--days", type=int, default=80)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--page-cap", type=int, default=100,
                   help="the most events the emulator serves a page (poll asks for 100)")
    p.add_argument("--twin-fraction", type=float, default=0.02, help="the emulator's default")
    p.add_argument("--burst", type=int, nargs="+", default=[],
                   help="measure a burst of this many events in one minute instead (issue 22)")
    args = p.parse_args()
    if args.burst:
        for n in args.burst:
            # History outside the 10-minute window only: the window holds the burst alone.
            print(json.dumps(dict(one(args, 0, burst=n), burst=True)), flush=True)
        return
    for n in args.events:
        print(json.dumps(one(args, n)), flush=True)


if __name__ == "__main__":
    main()
