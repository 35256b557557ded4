"""Large databases: hashing throughput, the stat-keyed hash cache, and peak memory of `dl plan` / `dl apply`.

    .venv/bin/python benchmarks/large_db.py [--size-gb 2] [--dir DIR] [--keep]

1. Generates a SQLite database of ``--size-gb`` (default 2 GB; one table of 1 MiB random blobs written by
   SQLite itself in a recursive CTE, 64 KiB pages, no journal: seconds, not minutes) and a small table.
2. **Hashing throughput**: ``sha256sum FILE`` against ``dl.build.hashing.sha256_stream`` (4 MiB ``readinto``) on the
   same file, each in its own process, alternated 3 times after one read to warm the page cache; medians.
   Goal: dl at least 0.9x sha256sum's throughput.
3. **Peak memory** (max RSS of the process, from ``getrusage`` of a wrapper that runs only that command) of
   ``dl plan`` (first run: hashes and inspects the file), ``dl apply --yes`` (uploads it to S3, multipart,
   against moto's server on 127.0.0.1; the database is over Lambda's package limit so it goes to S3, not into
   the zip) and ``dl plan`` again. Goal: each under 150 MB.
4. **Hash cache**: the first ``sha256_file`` of the new file (a cache miss: it reads 2 GB) against the second
   (file unchanged: path, size, mtime and inode match the cache entry); and the first `dl plan`'s wall time
   against the second. Goal: at least 20x faster.

The file is deleted at the end (``--keep`` keeps it for another run). Needs ``df`` space for the file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.plan_scale import reset_moto, start_moto  # noqa: E402
from dl.build.hashing import cache_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BLOB = 1024 * 1024

# Runs one command as its only child and reports that child's peak RSS (KiB on Linux) and times.
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
print(done.returncode, usage.ru_maxrss, wall, usage.ru_utime + usage.ru_stime)
"""

HASH = """
import sys, time
from dl.build.hashing import sha256_file, sha256_stream
fn = {"stream": sha256_stream, "cached": sha256_file}[sys.argv[1]]
start = time.perf_counter()
digest = fn(sys.argv[2])
print(digest, time.perf_counter() - start)
"""


def generate(path: Path, size_gb: float) -> Path:
    blobs = int(size_gb * 1024**3 // BLOB)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        "pragma page_size = 65536; pragma journal_mode = off; pragma synchronous = off;"
        "create table blobs (id integer primary key, data blob);"
        "create table notes (id integer primary key, note text);"
    )
    conn.execute(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?) "
        "insert into blobs (data) select randomblob(?) from n",
        (blobs, BLOB),
    )
    conn.execute(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < 1000) "
        "insert into notes (note) select 'note ' || i from n"
    )
    conn.commit()
    conn.close()
    return path


def measure(cmd: list[str], cwd: Path, env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    code, maxrss_kib, wall, cpu = done.stdout.split()
    if int(code) not in (0, 2):
        raise SystemExit(f"{' '.join(cmd)} exited {code}:\n{done.stderr}")
    return {"rss_mb": int(maxrss_kib) * 1024 / 1e6, "wall": float(wall), "cpu": float(cpu)}


def timed_hash(kind: str, path: Path, env: dict) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", HASH, kind, str(path)], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1])


def timed_sha256sum(path: Path) -> tuple[str, float]:
    start = time.perf_counter()
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[0], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="2 GB database: hashing, hash cache, memory of plan/apply")
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write the database (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="dl-large-", dir=args.dir))
    free = shutil.disk_usage(folder).free
    if free < args.size_gb * 1024**3 * 1.2:
        raise SystemExit(f"{folder}: {free / 1e9:.1f} GB free, needs {args.size_gb * 1.2:.1f} GB")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc, url = start_moto()
    try:
        (folder / ".git").mkdir()
        started = time.perf_counter()
        db = generate(folder / "big.db", args.size_gb)
        size = db.stat().st_size
        print(f"generated {db.name}: {size / 1e9:.2f} GB in {time.perf_counter() - started:.1f} s ({folder})")

        # 2. throughput: warm the page cache once, then alternate
        subprocess.run(["cat", str(db)], stdout=subprocess.DEVNULL, check=True)
        theirs, ours = [], []
        for _ in range(3):
            expected, seconds = timed_sha256sum(db)
            theirs.append(seconds)
            digest, seconds = timed_hash("stream", db, env)
            ours.append(seconds)
            assert digest == expected, (digest, expected)
        t_theirs, t_ours = statistics.median(theirs), statistics.median(ours)
        print(
            f"hashing: sha256sum {size / t_theirs / 1e6:.0f} MB/s, dl {size / t_ours / 1e6:.0f} MB/s: "
            f"{t_theirs / t_ours:.2f}x sha256sum's throughput (goal >= 0.9x)"
        )

        # 3 + 4: plan (miss), apply, plan again (hit), with the hash cache
        (folder / "datasette-lambda.yml").write_text(
            "version: 1\nproject: large-db\nregion: eu-west-1\ninstances:\n  big: {databases: [big.db]}\n"
        )
        reset_moto(url)
        aws_env = {
            **env,
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench",
            "AWS_REGION": "eu-west-1",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "DL_POLL_SECONDS": "0.05",
        }
        aws_env.pop("AWS_PROFILE", None)
        dl = [sys.executable, "-m", "dl"]
        first_hash = timed_hash("cached", db, env)[1]  # a new file: a cache miss that reads it all
        second_hash = timed_hash("cached", db, env)[1]
        os.utime(db)  # a touched file is a miss again: the first `dl plan` below hashes it, as a user's would
        plan1 = measure([*dl, "plan"], folder, aws_env)
        apply = measure([*dl, "apply", "--yes"], folder, aws_env)
        plan2 = measure([*dl, "plan", "--detailed-exitcode"], folder, aws_env)
        rows = [("dl plan (first: hashes, inspects)", plan1), ("dl apply --yes (uploads)", apply)]
        rows.append(("dl plan (unchanged file)", plan2))
        for name, r in rows:
            print(
                f"{name:<36} peak RSS {r['rss_mb']:6.1f} MB  {r['wall']:6.1f} s wall  {r['cpu']:5.1f} s cpu"
            )
        worst = max(r["rss_mb"] for _, r in rows)
        print(f"peak memory: {worst:.0f} MB at most for a {size / 1e9:.1f} GB database (goal < 150 MB)")
        print(
            f"hash cache: first sha256_file {first_hash:.2f} s, second {second_hash * 1000:.1f} ms: "
            f"{first_hash / second_hash:.0f}x faster; `dl plan` {plan1['wall']:.1f} s then "
            f"{plan2['wall']:.1f} s: {plan1['wall'] / plan2['wall']:.1f}x (goal >= 20x)"
        )
        print(f"cache: {cache_dir()}")
    finally:
        proc.terminate()
        proc.wait()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
