"""Large CSV exports through S3: the largest exported within the front door's 30 s, and its peak memory.

    .venv/bin/python benchmarks/large_export.py [--rows 4000000] [--seconds 30]

1. Generates a SQLite table of ``--rows`` rows of about 100 bytes of CSV each (SQLite's recursive CTE).
2. Starts moto's server on 127.0.0.1 (a separate process, so the objects it keeps in memory are not counted)
   with the artifact bucket, and runs the handler (``dl.runtime.handler.Runtime``, the code a package runs)
   in a child process with ``DL_ANSWER_SECONDS=--seconds``, as the instance template sets it for an HTTP API
   or a CloudFront origin.
3. **Largest export in time**: asks for the whole table as CSV (``_stream=on``). If Datasette cannot finish 2 s
   before the clock, the answer is the 413 naming how much had been produced: that is the largest export the
   clock allows on this machine. The run is repeated on a table of 85% of that many rows, which must complete
   (a 303 to the object in S3) in time.
4. **Peak memory**: max RSS of the child (``getrusage``) after the completed export, against its RSS before
   the request (Datasette and the databases opened). Goal: the export adds less than 100 MB whatever its size
   (two 8 MiB parts plus Datasette's pages), far under a 1024 MB function.

What it stands for: Lambda gives a function CPU in proportion to its memory (1,769 MB is one vCPU), so a 1024
MB function has about 0.58 of a vCPU; the export is one Python thread, so its throughput on Lambda is about
0.58x that of one core here, if this core is comparable. The benchmark prints both the local figure and that
scaled estimate. S3 here is moto on the loopback, not S3 over the network: parts are uploaded while the next
fills, so S3's latency is hidden as long as a part uploads faster than Datasette produces one (8 MiB per
part, tens of MB/s to S3 from Lambda).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.plan_scale import start_moto  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUCKET = "dl-benchmark-artifacts"
LAMBDA_1024_VCPU = 1024 / 1769
CSV_BYTES_PER_ROW = 100  # about: "id,kind-N,note N <70 hex> é" and CRLF

CHILD = """
import json, resource, sys, time
from dl.runtime.handler import Runtime
from dl.runtime.settings import RuntimeSettings
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
runtime = Runtime(RuntimeSettings.from_environ())
before = rss()
event = json.loads(sys.argv[1])
start = time.perf_counter()
response = runtime(event, None)
elapsed = time.perf_counter() - start
print(json.dumps({"status": response["statusCode"], "seconds": elapsed, "rss_before_mb": before,
                  "rss_peak_mb": rss(), "body": response.get("body", "")[:2000],
                  "location": response.get("headers", {}).get("location")}))
"""


def make_database(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("pragma journal_mode = off")
    conn.execute("create table events (id integer primary key, kind text, note text)")
    conn.execute(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?) "
        "insert into events (kind, note) select 'kind-' || (i % 7), "
        "'note ' || i || ' ' || substr(hex(zeroblob(40)), 1, 70) || ' é' from n",
        (rows,),
    )
    conn.commit()
    conn.close()


def write_instance(folder: Path, db: Path) -> Path:
    """The dl_instance folder `dl package` writes, for the handler to serve; a database left for S3 is linked
    where a verified cold-start fetch puts it (as `dl serve` does)."""
    from dl.build.inspection import inspect_database
    from dl.build.locations import decide_locations
    from dl.build.package import instance_document
    from dl.manifest.load import load_manifest

    manifest = folder / "datasette-lambda.yml"
    manifest.write_text(f"version: 1\nproject: bench\ninstances:\n  site:\n    databases: [{db.name}]\n")
    instance = load_manifest(manifest).instances["site"]
    decisions = decide_locations(instance.databases, 0, None)
    inspect = {d.name: {**inspect_database(d.source), "file": d.file} for d in decisions}
    document = instance_document(instance, decisions, inspect, {"datasette": "0.65.5"})
    target = folder / "dl_instance"
    (target / "databases").mkdir(parents=True)
    (target / "instance.json").write_text(json.dumps(document))
    (decision,) = decisions
    if decision.location == "inline":
        os.link(db, target / "databases" / decision.file)
    else:
        (folder / "fetched").mkdir()
        os.link(db, folder / "fetched" / f"{document['databases'][0]['sha256']}.db")
    return target


def event(path: str, query: str) -> dict:
    host = "bench.lambda-url.eu-west-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": host, "x-forwarded-proto": "https"},
        "requestContext": {
            "domainName": host,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "bench",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }


def export(env: dict, query: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(event("/events/events.csv", query))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    moto, url = start_moto()
    try:
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=url, region_name="eu-west-1", aws_access_key_id="b", aws_secret_access_key="b"
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        whole = run(url, args.rows, args.seconds)
        if whole["status"] == 303:
            print(f"the whole table was exported in time ({whole['seconds']:.1f} s): a lower bound")
            done, rows = whole, args.rows
        else:
            produced = float(re.search(r"([\d.]+) MB had been produced", whole["body"]).group(1))
            print(
                f"whole table: {whole['status']} after {whole['seconds']:.1f} s, {produced:.0f} MB produced"
            )
            rows = int(produced * 2**20 / CSV_BYTES_PER_ROW * 0.85)
            done = run(url, rows, args.seconds)
            if done["status"] != 303:
                raise SystemExit(f"{rows:,} rows did not finish either (a noisy machine?): {done}")
        key = done["location"].split(f"/{BUCKET}/", 1)[-1].split("?")[0]
        size_mb = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] / 2**20
        rate = size_mb / done["seconds"]
        print(
            f"largest export in time: {size_mb:.0f} MB of CSV ({rows:,} rows) in {done['seconds']:.1f} s "
            f"({rate:.1f} MB/s), answered with a 303 to S3"
        )
        growth = done["rss_peak_mb"] - done["rss_before_mb"]
        print(
            f"peak memory: {done['rss_peak_mb']} MB (before the request {done['rss_before_mb']} MB: "
            f"+{growth} MB for the export); goal: +100 MB at most"
        )
        estimate = rate * LAMBDA_1024_VCPU * (args.seconds - 2)
        print(f"estimate at 1024 MB on Lambda (0.58 vCPU): about {estimate:.0f} MB within {args.seconds:g} s")
    finally:
        moto.kill()


def run(url: str, rows: int, seconds: float) -> dict:
    """Export a table of ``rows`` rows as CSV through the handler, in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "events.db"
        make_database(db, rows)
        instance_dir = write_instance(folder, db)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_REGION": "eu-west-1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "DL_INSTANCE_DIR": str(instance_dir),
            "DL_FETCH_DIR": str(folder / "fetched"),
            "DL_ARTIFACT_BUCKET": BUCKET,
            "DL_ANSWER_SECONDS": str(seconds),
        }
        print(f"table: {rows:,} rows, database {db.stat().st_size / 2**20:.0f} MB; clock {seconds:g} s")
        return export(env, "_stream=on&_size=max")


if __name__ == "__main__":
    main()
