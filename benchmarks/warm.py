"""Warm request overhead: the full handler (Lambda event in, response out) against Datasette's ASGI app.

    .venv/bin/python benchmarks/warm.py [--rounds 60] [--rows 20000]

One interpreter of the target Python (``-I -S``, only the unpacked ``dl package`` host build on ``sys.path``,
as on Lambda) imports the handler, then times, interleaved round by round, the same requests two ways:

* **handler**: ``dl_runtime.handler.handler(event, context)`` with a Lambda Function URL event (payload 2.0):
  Mangum, the gateway (prefix, host, size limit, request log), Datasette, the response dict.
* **direct**: Datasette's own ASGI app (``ds.app()``, the very object the handler wraps) called with an ASGI
  scope and the body collected, on the same event loop.

Requests: a table page (HTML), a JSON SQL query, a CSV export. Prints per request the median wall and CPU
time of each way and the ratio handler/direct (goal: at most 1.10x). Both ways must answer the same status
and body length (checked each round).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cold_start import (  # noqa: E402
    DB_NAME,
    PYTHON_VERSION,
    bench_instance,
    function_url_event,
    make_database,
    unpack,
)
from dl.build.dependencies import find_interpreter  # noqa: E402
from dl.build.hashing import cache_dir  # noqa: E402
from dl.build.package import build_package  # noqa: E402

REQUESTS = {
    "table page (HTML)": (f"/{DB_NAME}/orders", "_sort=id"),
    "SQL query (JSON)": (
        f"/{DB_NAME}.json",
        "sql=select+name%2C+count(*)+as+n+from+customers+group+by+name+order+by+n+desc+limit+50&_shape=array",
    ),
    "CSV export": (f"/{DB_NAME}/products.csv", "_size=max"),
}

CHILD = r"""
import asyncio, json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
requests = json.loads(sys.argv[2])
rounds = int(sys.argv[3])

from dl_runtime import handler as handler_module
runtime = handler_module.runtime()
direct_app = runtime.datasette_app()
loop = handler_module._event_loop()

class Context:
    function_name = "bench"
    memory_limit_in_mb = "1024"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self):
        return 30000

def via_handler(event):
    response = handler_module.handler(event, Context())
    return response["statusCode"], len(response.get("body") or "")

def via_direct(path, query, headers):
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.0"}, "http_version": "1.1",
        "method": "GET", "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 0), "server": (headers["host"], 443),
    }
    out = {"status": None, "body": []}
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"].append(message.get("body", b""))
    loop.run_until_complete(direct_app(scope, receive, send))
    return out["status"], len(b"".join(out["body"]))

def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu

samples = {name: {"handler": [], "direct": []} for name in requests}
for r in range(rounds + 2):  # two discarded warm-up rounds
    for name, req in requests.items():
        ways = [("handler", via_handler, (req["event"],)),
                ("direct", via_direct, (req["path"], req["query"], req["headers"]))]
        if r % 2:
            ways.reverse()
        results = {}
        for way, fn, args in ways:
            results[way], wall, cpu = timed(fn, *args)
            if r >= 2:
                samples[name][way].append((wall, cpu))
        (hs, hl), (ds_, dl_) = results["handler"], results["direct"]
        if hs != 200 or ds_ != 200 or abs(hl - dl_) > max(64, dl_ // 50):
            # bodies differ by a few bytes at most: JSON timings, base64 is not used for these types
            raise SystemExit(f"{name}: handler {hs} {hl} bytes, direct {ds_} {dl_} bytes")
out = {}
for name, ways in samples.items():
    out[name] = {way: [statistics.median(w for w, _ in s), statistics.median(c for _, c in s)]
                 for way, s in ways.items()}
print("DL-BENCH " + json.dumps(out), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="per-request time: full handler vs Datasette's ASGI app")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the largest table")
    args = parser.parse_args()

    python = find_interpreter(PYTHON_VERSION)
    if python is None:
        raise SystemExit(f"needs a python{PYTHON_VERSION} interpreter (pyenv install {PYTHON_VERSION})")
    work = cache_dir() / "benchmarks"
    db = make_database(work / f"{DB_NAME}-{args.rows}" / f"{DB_NAME}.db", args.rows)
    requests = {}
    for name, (path, query) in REQUESTS.items():
        event = function_url_event(path)
        event["rawQueryString"] = query
        requests[name] = {"event": event, "path": path, "query": query, "headers": event["headers"]}
    with tempfile.TemporaryDirectory(prefix="dl-warm-") as tmp:
        result = build_package(bench_instance(db), Path(tmp) / "bench.zip", target="host", log=lambda _: None)
        root = unpack(result.path, Path(tmp) / "package")
        done = subprocess.run(
            [str(python), "-I", "-S", "-c", CHILD, str(root), json.dumps(requests), str(args.rounds)],
            capture_output=True,
            text=True,
            cwd=root,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("DL-BENCH ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"benchmark failed:\n{done.stderr[-3000:]}")
    figures = json.loads(line.removeprefix("DL-BENCH "))
    print(f"python {python}; {args.rounds} interleaved rounds; database {args.rows} rows")
    print(f"{'request':<20} {'handler ms':>11} {'direct ms':>10} {'ratio wall':>11} {'ratio cpu':>10}")
    worst = 0.0
    for name, ways in figures.items():
        (hw, hc), (dw, dc) = ways["handler"], ways["direct"]
        worst = max(worst, hw / dw)
        print(f"{name:<20} {hw * 1000:11.2f} {dw * 1000:10.2f} {hw / dw:10.2f}x {hc / dc:9.2f}x")
    print(f"worst ratio handler/direct (wall medians): {worst:.2f}x (goal: <= 1.10x)")


if __name__ == "__main__":
    main()
