"""Cold start: time from process start to the first response, four ways, in one run.

    .venv/bin/python benchmarks/cold_start.py [--repeat 7] [--rows 200000] [--importtime]

1. **packaged**: the ``dl package`` zip (host build for the instance's Python, bytecode, inspect data),
   unpacked; ``python -I -S`` with only the package on ``sys.path`` (as on Lambda: no site-packages),
   importing ``dl_runtime.handler`` (Lambda's init phase: Datasette built and warmed up) and feeding it one
   Lambda Function URL event (payload 2.0).
   **eager-pint**: the same package, but with pint's unit registry built at import as Datasette does by
   itself (the handler builds it on first use: ``dl_runtime.units``); shows what that saves.
2. **datasette**: plain ``datasette serve -i`` (immutable) from a virtualenv of the same Python and the same
   pinned versions; the first HTTP 200 of the same page.
3. **naive**: a package like the ancestor's (``benchmarks/naive_package.py``): plain ``pip --target``, no
   bytecode (``-B``: Lambda cannot write ``__pycache__``), no inspect data, the database opened mutable.

Each is run ``--repeat`` times after one discarded warm-up (the OS file cache is warm for all three); the
medians and the ratios packaged/naive and packaged/datasette are printed. ``--importtime`` adds the slowest
imports of the packaged handler (``python -X importtime``). Everything is cached under
``$DL_CACHE_DIR/benchmarks`` so a second run builds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.naive_package import build_naive  # noqa: E402
from dl.build.dependencies import LOCK_FILE, find_interpreter, lock_pins  # noqa: E402
from dl.build.hashing import cache_dir  # noqa: E402
from dl.build.locations import human  # noqa: E402
from dl.build.package import build_package  # noqa: E402
from dl.manifest.model import Database, Instance  # noqa: E402

PYTHON_VERSION = "3.13"
DB_NAME = "bench"
PATH = f"/{DB_NAME}"  # the database page: lists every table with its row count

DRIVER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import importlib
exec(os.environ.get("DL_BENCH_PRELUDE", ""))

class Context:
    function_name = "bench"
    memory_limit_in_mb = "1024"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self):
        return 30000

module, _, name = sys.argv[2].rpartition(".")
handler = getattr(importlib.import_module(module), name)
response = handler(json.loads(sys.argv[3]), Context())
print("DL-BENCH", response["statusCode"], len(response.get("body") or ""), flush=True)
"""


# The row "eager-pint": the same package, with Datasette's pint unit registry built at import as Datasette
# does by itself (importing datasette.views.base before the handler's lazy registry can be installed).
# It shows what dl_runtime.units saves.
EAGER_PINT = "import datasette.views.base"


def function_url_event(path: str) -> dict:
    """A Lambda Function URL event (payload 2.0) for GET ``path``."""
    host = "abcdefghij.lambda-url.eu-west-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": host,
            "accept": "text/html",
            "user-agent": "cold-start-bench",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": host,
            "domainPrefix": "abcdefghij",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "b",
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }


def make_database(path: Path, rows: int) -> Path:
    """A database with a few tables, ``rows`` rows in the largest."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    with conn:
        for table, n in (("orders", rows), ("customers", rows // 10), ("products", rows // 100)):
            conn.execute(f"create table {table} (id integer primary key, name text, value real, note text)")
            conn.executemany(
                f"insert into {table} (name, value, note) values (?, ?, ?)",
                ((f"{table}-{i}", i * 1.5, "x" * (i % 40)) for i in range(n)),
            )
    conn.close()
    tmp.rename(path)
    return path


def bench_instance(db: Path) -> Instance:
    return Instance(
        name="bench",
        databases=(Database(DB_NAME, db, db.name),),
        metadata=MappingProxyType({}),
        metadata_source=None,
        cors=False,
        config=MappingProxyType({}),
        domain=None,
        certificate_arn=None,
        prefix="/",
        memory=1024,
        timeout=30,
        architecture="x86_64",
        runtime=f"python{PYTHON_VERSION}",
        plugins=(),
        protect=False,
        endpoint="function-url",
        cdn=True,
        log_retention_days=30,
        secrets=MappingProxyType({}),
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_handler(
    python: Path, root: Path, handler: str, *, flags=("-I", "-S"), env=None
) -> tuple[float, float]:
    """(wall, cpu) seconds from spawning the interpreter to the handler's response (asserted to be a 200)."""
    event = json.dumps(function_url_event(PATH))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), *flags, "-c", DRIVER, str(root), handler, event],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    line = proc.stdout.readline()
    while line and not line.startswith("DL-BENCH "):  # the handler's own log lines
        line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(proc.pid)
    _, err = proc.communicate()
    if not line.startswith("DL-BENCH 200"):
        raise SystemExit(f"{handler} answered {line!r}:\n{err}")
    return elapsed, cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_datasette(venv: Path, db: Path) -> tuple[float, float]:
    """(wall, cpu) seconds from spawning ``datasette serve -i`` to its first 200 for the page."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(venv / "bin" / "datasette"), "serve", "-i", str(db), "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - start, cpu_seconds(proc.pid)
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    raise SystemExit("datasette exited before answering") from None
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait()


def datasette_venv(python: Path, root: Path) -> Path:
    """A virtualenv of ``python`` with the lock's pinned versions (pip compiles their bytecode, as usual)."""
    venv = root / f"venv-{PYTHON_VERSION}"
    if not (venv / "bin" / "datasette").exists():
        subprocess.run([str(python), "-m", "venv", "--clear", str(venv)], check=True)
        pins = root / "pins.txt"
        pins.write_text(lock_pins(LOCK_FILE.read_text()))
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(pins)]
        subprocess.run(pip, check=True, capture_output=True)
    return venv


def unpack(zip_path: Path, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root)
    return root


def medians_of(fn, repeat: int) -> tuple[float, float, list[float]]:
    """(median wall, median cpu, wall times) of ``repeat`` runs after a discarded warm-up."""
    fn()  # warm-up: file cache, first-run effects
    runs = [fn() for _ in range(repeat)]
    walls = [wall for wall, _ in runs]
    return statistics.median(walls), statistics.median(cpu for _, cpu in runs), walls


def importtime(python: Path, root: Path, top: int = 15) -> str:
    """The slowest imports (cumulative) of the packaged handler."""
    event = json.dumps(function_url_event(PATH))
    cmd = [
        str(python),
        "-I",
        "-S",
        "-X",
        "importtime",
        "-c",
        DRIVER,
        str(root),
        "dl_runtime.handler.handler",
        event,
    ]
    err = subprocess.run(cmd, capture_output=True, text=True, cwd=root).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            self_us, cumulative_us, name = (
                part.strip() for part in line.replace("import time:", "").split("|")
            )
            rows.append((int(cumulative_us), int(self_us), name))
    rows.sort(reverse=True)
    return "\n".join(
        f"  {c / 1000:7.1f} ms cumulative {s / 1000:7.1f} ms self  {n}" for c, s, n in rows[:top]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="cold start of the packaged handler vs datasette vs naive")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rows", type=int, default=200_000, help="rows in the largest table")
    parser.add_argument("--importtime", action="store_true", help="show the slowest imports of the package")
    args = parser.parse_args()

    python = find_interpreter(PYTHON_VERSION)
    if python is None:
        raise SystemExit(f"needs a python{PYTHON_VERSION} interpreter (pyenv install {PYTHON_VERSION})")
    work = cache_dir() / "benchmarks"
    db = make_database(work / f"{DB_NAME}-{args.rows}" / f"{DB_NAME}.db", args.rows)
    print(f"python {python}; database {db.name}: {human(db.stat().st_size)}, {args.rows} rows; page {PATH}")

    started = time.perf_counter()
    result = build_package(bench_instance(db), work / "bench.zip", target="host", log=lambda _: None)
    print(
        f"package: {human(result.zipped_size)} zipped, {human(result.unzipped_size)} unzipped, "
        f"built in {time.perf_counter() - started:.1f} s (dependency cache hit: {result.cache_hit})"
    )
    with tempfile.TemporaryDirectory(prefix="dl-cold-") as tmp:
        packaged = unpack(result.path, Path(tmp) / "packaged")
        naive = build_naive(work / "naive", [db], PYTHON_VERSION)
        venv = datasette_venv(python, work)
        lambda_env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
        runs = {
            "packaged": lambda: time_handler(python, packaged, "dl_runtime.handler.handler", env=lambda_env),
            "eager-pint": lambda: time_handler(
                python,
                packaged,
                "dl_runtime.handler.handler",
                env={**lambda_env, "DL_BENCH_PRELUDE": EAGER_PINT},
            ),
            "datasette": lambda: time_datasette(venv, db),
            "naive": lambda: time_handler(
                python, naive, "naive_handler.handler", flags=("-I", "-S", "-B"), env=lambda_env
            ),
        }
        wall, cpu = {}, {}
        for name, run in runs.items():
            wall[name], cpu[name], walls = medians_of(run, args.repeat)
            print(
                f"{name:>10}: median {wall[name] * 1000:6.0f} ms wall, {cpu[name] * 1000:6.0f} ms cpu"
                f"   (wall runs {[round(t * 1000) for t in walls]})"
            )
        for mine in ("packaged", "eager-pint"):
            for other in ("naive", "datasette"):
                print(
                    f"ratio {mine}/{other + ':':<10} {wall[mine] / wall[other]:.2f}x wall, "
                    f"{cpu[mine] / cpu[other]:.2f}x cpu"
                )
        if args.importtime:
            print("slowest imports of the packaged handler:")
            print(importtime(python, packaged))


if __name__ == "__main__":
    main()
