"""Plan and apply at scale: manifests of 1, 10 and 100 instances against moto's server on 127.0.0.1.

    .venv/bin/python benchmarks/plan_scale.py [--sizes 1,10,100] [--parallelism 8]

For each size, in a fresh project folder (each instance serves its own small database) and a freshly reset
moto server (a separate process, ``moto_server``, so its CPU is not the CLI's):

1. ``dl apply --yes``: builds every package, creates the bootstrap stack and every instance stack;
2. ``dl plan`` right after (nothing changed): the command a CI job runs on every pull request;
3. ``dl plan`` once more (the figure quoted: both warm, the first may still pay one-time costs).

Each command runs as the real CLI in its own process (``python -m dl``), with a hook that records every AWS
API call made through ``dl.aws.client.Aws`` (botocore's ``before-call`` event). Printed per size: wall time, CPU
time, API calls (reads / writes, the most frequent operations), and the ratios against 1 instance. Goals: a
no-change plan makes at most 3 read calls per instance plus a constant and no writes; 100 instances take at
most 15x the time of 1. The tool cache is the usual one (``$DL_CACHE_DIR``): dependency trees are shared.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import make_db  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
READ_PREFIXES = ("Describe", "Get", "List", "Head")

# Runs the CLI with every API call recorded (the same hook dl's tests use) and written out at exit.
RECORDING_CLI = """
import atexit, json, os, sys
from dl.aws import client as aws
recorded = []
original = aws.Aws._count
def count(self, model, **kwargs):
    recorded.append(f"{model.service_model.service_name}.{model.name}")
    return original(self, model, **kwargs)
aws.Aws._count = count
atexit.register(lambda: open(os.environ["DL_BENCH_CALLS"], "w").write(json.dumps(recorded)))
from dl.cli import main
sys.argv = ["dl", *sys.argv[1:]]
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto_server did not start")


def reset_moto(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).read()


def make_project(folder: Path, size: int) -> Path:
    (folder / ".git").mkdir(parents=True)
    lines = ["version: 1", f"project: scale-{size}", "region: eu-west-1", "instances:"]
    for i in range(size):
        make_db(folder / f"db{i:03d}.db", {"items": 10 + i})
        lines.append(f"  i{i:03d}: {{databases: [db{i:03d}.db]}}")
    (folder / "datasette-lambda.yml").write_text("\n".join(lines) + "\n")
    return folder


def run(folder: Path, env: dict, *args: str) -> dict:
    """One CLI command: wall, cpu (the child's user+system), API calls; fails loudly on a non-zero exit."""
    calls_file = folder / ".calls.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RECORDING_CLI, *args],
        cwd=folder,
        env={**env, "DL_BENCH_CALLS": str(calls_file), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 2):
        raise SystemExit(
            f"dl {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    calls = json.loads(calls_file.read_text())
    operations = [c.split(".", 1)[1] for c in calls]
    reads = sum(op.startswith(READ_PREFIXES) for op in operations)
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "calls": len(calls),
        "reads": reads,
        "writes": len(calls) - reads,
        "top": collections.Counter(calls).most_common(4),
        "output": done.stdout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="dl plan / apply with 1, 10, 100 instances against moto")
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--parallelism", type=int, default=8)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    proc, url = start_moto()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "DL_POLL_SECONDS": "0.05",
    }
    env.pop("AWS_PROFILE", None)
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dl-scale-") as tmp:
            for size in sizes:
                reset_moto(url)
                folder = make_project(Path(tmp) / f"p{size}", size)
                par = ["--parallelism", str(args.parallelism)]
                apply = run(folder, env, "apply", "--yes", *par)
                run(folder, env, "plan", *par)  # first no-change plan: pays any one-time cost
                plan = run(folder, env, "plan", "--detailed-exitcode", *par)
                if "No changes" not in plan["output"] and "no changes" not in plan["output"].lower():
                    print(f"warning: the plan of {size} after apply is not empty:\n{plan['output'][:2000]}")
                results[size] = {"apply": apply, "plan": plan}
                print(
                    f"{size:>4} instances: apply {apply['wall']:6.1f} s wall {apply['cpu']:6.1f} s cpu "
                    f"{apply['calls']:5d} calls ({apply['writes']} writes); "
                    f"plan {plan['wall']:5.2f} s wall {plan['cpu']:5.2f} s cpu {plan['calls']:4d} calls "
                    f"({plan['reads']} reads, {plan['writes']} writes)",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait()

    base = results[sizes[0]]
    print(f"\nno-change `dl plan` (--parallelism {args.parallelism}):")
    print(
        f"{'instances':>9} {'wall s':>7} {'x of 1':>7} {'cpu s':>6} {'reads':>6} {'reads/inst':>10} {'writes':>6}"
    )
    for size, r in results.items():
        plan = r["plan"]
        print(
            f"{size:>9} {plan['wall']:7.2f} {plan['wall'] / base['plan']['wall']:6.1f}x {plan['cpu']:6.2f} "
            f"{plan['reads']:6d} {plan['reads'] / size:10.2f} {plan['writes']:6d}"
        )
    biggest = results[sizes[-1]]["plan"]
    print("most frequent calls of the largest plan:", ", ".join(f"{c} x{n}" for c, n in biggest["top"]))
    print(
        "most frequent calls of the largest apply:",
        ", ".join(f"{c} x{n}" for c, n in results[sizes[-1]]["apply"]["top"]),
    )
    for size, r in results.items():
        plan = r["plan"]
        constant_ok = plan["reads"] <= 3 * size + 5
        print(
            f"goal {size}: reads {plan['reads']} <= 3x{size}+5: {'met' if constant_ok else 'NOT met'}; "
            f"writes {plan['writes']} == 0: {'met' if plan['writes'] == 0 else 'NOT met'}"
        )
    ratio = results[sizes[-1]]["plan"]["wall"] / base["plan"]["wall"]
    print(f"goal time {sizes[-1]} vs {sizes[0]}: {ratio:.1f}x <= 15x: {'met' if ratio <= 15 else 'NOT met'}")


if __name__ == "__main__":
    main()
