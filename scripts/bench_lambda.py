#!/usr/bin/env python3
"""Measures the Lambda binary per invocation: CPU time, peak memory, wall time, requests.

It starts moto (S3, DynamoDB, Secrets Manager) and the Docker Hub emulator on 127.0.0.1,
serves the Lambda Runtime API itself, and runs the real `bootstrap` through a backfill of
--events events followed by --runs incremental invocations (each after --gap seconds of new
events, if --trickle is set). Between invocations it reads the process's CPU time and peak
RSS from /proc, so the figures are the binary's own, not the emulator's.

    .venv/bin/python scripts/bench_lambda.py --bootstrap target/lambda/dockerhub-audit-lambda/bootstrap \
        --emulator target/release/dockerhub-audit --events 20000 --runs 5

Needs the venv of ./scripts/test (moto, boto3). Prints one JSON object per invocation and a
summary; nothing is asserted (a benchmark, not a test).
"""
import argparse
import http.server
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, name):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{name} exited early")
            time.sleep(0.05)
    sys.exit(f"{name} did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """The two Runtime API calls a Rust Lambda makes: next invocation, and its response."""

    events: "queue.Queue" = queue.Queue()
    answers: "queue.Queue" = queue.Queue()
    asked: "queue.Queue" = queue.Queue()

    def log_message(self, *args):
        pass

    def do_GET(self):
        RuntimeApi.asked.put(time.monotonic())
        n, payload = RuntimeApi.events.get()
        if payload is None:
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("lambda-runtime-aws-request-id", f"bench-{n}")
        self.send_header("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 240_000))
        self.send_header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length)
        RuntimeApi.answers.put((self.path, json.loads(body or b"null"), time.monotonic()))
        self.send_response(202)
        self.end_headers()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--emulator", required=True, help="the dockerhub-audit CLI (its `emulator` command)")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trickle", type=int, default=0, help="new events per minute during the incremental runs")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between incremental runs")
    a = ap.parse_args()

    work = tempfile.mkdtemp()
    procs = []
    try:
        moto_port = free_port()
        venv_bin = os.path.dirname(sys.executable)
        moto = subprocess.Popen([os.path.join(venv_bin, "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(moto)
        hub_port = free_port()
        hub = subprocess.Popen([a.emulator, "emulator", "--port", str(hub_port), "--org", "acme",
                                "--events", str(a.events), "--days", str(a.days), "--twin-fraction", "0",
                                "--trickle-per-minute", str(a.trickle)],
                               env={**os.environ, "EMULATOR_SECRET": "dckr_oat_bench"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(hub)
        wait_port(moto_port, moto, "moto")
        wait_port(hub_port, hub, "the emulator")

        endpoint = f"http://127.0.0.1:{moto_port}"
        kw = dict(endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
        boto3.client("s3", **kw).create_bucket(Bucket="bench")
        boto3.client("dynamodb", **kw).create_table(
            TableName="bench", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "org", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "org", "KeyType": "HASH"}])
        boto3.client("secretsmanager", **kw).create_secret(
            Name="dockerhub-audit/acme", SecretString=json.dumps({"username": "acme", "token": "dckr_oat_bench"}))

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started = time.monotonic()
        fn = subprocess.Popen([a.bootstrap], env={
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "DOCKERHUB_AUDIT_TABLE": "bench", "DOCKERHUB_AUDIT_BUCKET": "bench",
            "DOCKERHUB_AUDIT_HUB_URL": f"http://127.0.0.1:{hub_port}",
            "DOCKERHUB_AUDIT_LOOKBACK": f"{a.days + 1}d",
        }, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(fn)

        first_ask = RuntimeApi.asked.get(timeout=30)
        init = {"init_ms": round((first_ask - started) * 1000, 1), "cpu_s": cpu_seconds(fn.pid),
                "peak_rss_mb": round(peak_rss_kb(fn.pid) / 1024, 1)}
        print(json.dumps({"phase": "init", **init}))
        results = []
        for n in range(a.runs + 1):
            if n > 0 and a.gap:
                time.sleep(a.gap)
            cpu_before = cpu_seconds(fn.pid)
            t = time.monotonic()
            RuntimeApi.events.put((n, {"org": "acme"}))
            path, answer, done = RuntimeApi.answers.get(timeout=600)
            RuntimeApi.asked.get(timeout=30)  # the runtime asks for the next event: this one is over
            r = {
                "phase": "backfill" if n == 0 else "incremental",
                "wall_ms": round((done - t) * 1000, 1),
                "cpu_ms": round((cpu_seconds(fn.pid) - cpu_before) * 1000, 1),
                "peak_rss_mb": round(peak_rss_kb(fn.pid) / 1024, 1),
                "events": (answer or {}).get("events_written"),
                "api_requests": (answer or {}).get("api_requests"),
                "ok": (answer or {}).get("ok"),
            }
            results.append(r)
            print(json.dumps(r))
        RuntimeApi.events.put((0, None))
        inc = [r for r in results if r["phase"] == "incremental"]
        if inc:
            cpu = sorted(r["cpu_ms"] for r in inc)
            print(json.dumps({"summary": True, "backfill": results[0], "incremental_median_cpu_ms": cpu[len(cpu) // 2],
                              "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}))
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
