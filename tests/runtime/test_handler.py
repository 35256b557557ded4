"""The handler: event formats, S3 databases against the moto server, downloads, limits, origin.

The instance folder is what `dl package` writes (``dl.build.package.instance_document`` and
``dl.build.locations.decide_locations``, with ``inline_limit=0`` to send databases to S3). On the 0.65 line
the handler runs in-process (Datasette and Mangum from the test environment); tests taking ``line`` also run
on the 1.0a line, where the handler runs in a separate interpreter on that line's locked dependency tree (the
one `dl serve` runs), fed the same Lambda events through ``dl.local.worker.Worker``. `test_serve.py` runs the
real package over HTTP.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from itsdangerous import BadSignature
from serving import make_shop_db

from dl.build.inspection import inspect_database
from dl.build.locations import decide_locations
from dl.build.package import instance_document
from dl.manifest.load import load_manifest
from dl.runtime.fetch import FetchError, fetch_database
from dl.runtime.gateway import url_under_prefix
from dl.runtime.handler import Runtime
from dl.runtime.instance import load_instance
from dl.runtime.settings import RuntimeSettings

BUCKET = "dl-artifacts-test"
FUNCTION_HOST = "abcdefgh.lambda-url.eu-west-1.on.aws"


def write_instance(folder: Path, manifest_body: str, *, inline: bool = True) -> Path:
    """A dl_instance folder as `dl package` lays it out; returns it."""
    make_shop_db(folder / "src" / "data.db")
    make_shop_db(folder / "src" / "other.db", items=4)
    manifest_path = folder / "src" / "datasette-lambda.yml"
    manifest_path.write_text(f"version: 1\nproject: handler-test\ninstances:\n  shop:\n{manifest_body}")
    instance = load_manifest(manifest_path).instances["shop"]
    decisions = decide_locations(instance.databases, 0, None if inline else 0)
    inspect = {d.name: {**inspect_database(d.source), "file": d.file} for d in decisions}
    document = instance_document(instance, decisions, inspect, {"datasette": "0.65.5"})
    target = folder / "dl_instance"
    (target / "databases").mkdir(parents=True)
    (target / "instance.json").write_text(json.dumps(document))
    for d in decisions:
        if d.location == "inline":
            shutil.copyfile(d.source, target / "databases" / d.file)
    return target


def runtime_for(instance_dir: Path, tmp_path: Path, line: str = "0.65", **env) -> tuple[Runtime, list[str]]:
    """A Runtime as a fresh Lambda sandbox would build it; also the request log lines it writes."""
    environ = {"DL_INSTANCE_DIR": str(instance_dir), "DL_FETCH_DIR": str(tmp_path / "tmp-dbs"), **env}
    if line != "0.65":
        return WorkerRuntime.start(instance_dir, tmp_path, line, environ)
    log: list[str] = []
    return Runtime(RuntimeSettings.from_environ(environ), log=log.append), log


class WorkerRuntime:
    """The handler of ``dl_runtime`` on another line's locked dependencies, in an isolated interpreter."""

    started: list = []
    REQUEST_LINE = re.compile(r"^(GET|HEAD|POST) /")

    def __init__(self, worker, requests: list[str]):
        self.worker = worker
        self.requests = requests

    def __call__(self, event, context):
        """One event; returns once the handler's request log line for it has been relayed too."""
        before = len(self.requests)
        response = self.worker.invoke(event)
        deadline = time.monotonic() + 5
        while len(self.requests) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        return response

    @classmethod
    def start(cls, instance_dir: Path, tmp_path: Path, line: str, environ: dict):
        from dl.build.dependencies import ensure_dependencies, find_interpreter, target_spec
        from dl.build.package import RUNTIME_SOURCE
        from dl.local.worker import Worker

        manifest = instance_dir.parent / "src" / "datasette-lambda.yml"
        instance = dataclasses.replace(load_manifest(manifest).instances["shop"], datasette=line)
        spec = target_spec(instance, "host")
        python = find_interpreter(spec.python_version)
        tree, _ = ensure_dependencies(spec, (), python, log=lambda _: None)
        root = Path(tmp_path) / f"task-{len(cls.started)}"
        root.mkdir()
        for entry in tree.iterdir():
            (root / entry.name).symlink_to(entry)
        shutil.copytree(RUNTIME_SOURCE, root / "dl_runtime")
        requests: list[str] = []
        output: list[str] = []

        def log(line: str) -> None:
            (requests if cls.REQUEST_LINE.match(line) else output).append(line)

        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path), **environ}
        worker = Worker(root, python, env, timeout=60, log=log)
        cls.started.append(worker)
        worker.start()
        return cls(worker, requests), requests


@pytest.fixture(autouse=True)
def _stop_workers():
    yield
    while WorkerRuntime.started:
        WorkerRuntime.started.pop().stop()


def url_event(path: str, query: str = "", headers: dict | None = None, method: str = "GET") -> dict:
    """A Lambda Function URL event (payload 2.0) as AWS sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": FUNCTION_HOST,
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefgh",
            "domainName": FUNCTION_HOST,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": "r-1",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1700000000000,
        },
        "isBase64Encoded": False,
    }


def rest_event(path: str, query: dict[str, list[str]] | None = None, headers: dict | None = None) -> dict:
    """An API Gateway REST API proxy event (payload 1.0)."""
    query = query or {}
    headers = {
        "Host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "GET",
            "path": f"/prod{path}",
            "stage": "prod",
            "identity": {"sourceIp": "203.0.113.9"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def body_of(response: dict) -> bytes:
    body = response.get("body", "")
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


SITE = "    databases: [data.db, other.db]\n    prefix: /data\n    config: {default_page_size: 5}\n"


@pytest.fixture
def site(tmp_path) -> Path:
    return write_instance(tmp_path, SITE)


# --- event formats and absolute URLs ---------------------------------------------------------------------------


def sql_path(line: str, database: str, extension: str = "json") -> str:
    """Where a line answers SQL queries: /db.json?sql= (0.65), /db/-/query.json?sql= (1.0)."""
    return f"/data/{database}.{extension}" if line == "0.65" else f"/data/{database}/-/query.{extension}"


def test_the_handler_runs_the_lines_datasette(site, tmp_path, line):
    from dl.manifest.lines import locked_version

    runtime, _ = runtime_for(site, tmp_path, line)
    versions = json.loads(runtime(url_event("/data/-/versions.json"), None)["body"])
    assert versions["datasette"]["version"] == locked_version(line)


def test_function_url_event_next_url_uses_the_forwarded_public_host(site, tmp_path, line):
    runtime, _ = runtime_for(site, tmp_path, line)
    response = runtime(
        url_event("/data/data/items.json", headers={"x-forwarded-host": "data.example.org"}), None
    )
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["next_url"] == "https://data.example.org/data/data/items.json?_next=5"


def test_without_forwarded_host_urls_name_the_function(site, tmp_path, line):
    runtime, _ = runtime_for(site, tmp_path, line)
    response = runtime(url_event("/data/data/items.json"), None)
    assert json.loads(response["body"])["next_url"] == f"https://{FUNCTION_HOST}/data/data/items.json?_next=5"


def test_rest_api_events(site, tmp_path, line):
    runtime, _ = runtime_for(site, tmp_path, line)
    query = {"_size": ["2"], "_col": ["name", "value"]}
    response = runtime(
        rest_event("/data/data/items.json", query, {"X-Forwarded-Host": "api.example.org"}), None
    )
    assert response["statusCode"] == 200
    data = json.loads(response["body"])
    assert data.get("columns", list(data["rows"][0])) == ["id", "name", "value"]  # 1.0: rows are objects
    assert (
        data["next_url"]
        == "https://api.example.org/data/data/items.json?_size=2&_col=name&_col=value&_next=2"
    )
    assert runtime(rest_event("/data/nope"), None)["statusCode"] == 404
    redirect = runtime(rest_event("/data/data/items/"), None)
    assert (redirect["statusCode"], redirect["headers"]["location"]) == (302, "/data/data/items")
    assert runtime(rest_event("/elsewhere"), None)["statusCode"] == 404


def test_plugins_see_the_request_with_its_prefix_and_build_links_under_it_once(site, tmp_path):
    """As behind a proxy that keeps the prefix: request.path/url/scope carry it; links built from it are
    neither outside the prefix nor doubled, whether or not the plugin passes them through urls.path()."""
    from datasette import hookimpl
    from datasette.plugins import pm
    from datasette.utils import path_with_added_args, path_with_format

    seen = {}

    class Probe:
        __name__ = "probe"

        @hookimpl
        def extra_template_vars(self, request, datasette):
            seen.update(
                path=request.path,
                url=request.url,
                scope_path=request.scope["path"],
                added=path_with_added_args(request, {"_x": 1}),
                via_urls=datasette.urls.path(path_with_format(request=request, format="json")),
                named=datasette.urls.path("-/metadata"),
            )
            return {}

    pm.register(Probe(), name="probe")
    try:
        runtime, _ = runtime_for(site, tmp_path)
        response = runtime(url_event("/data/other/items", "_size=1"), None)
    finally:
        pm.unregister(name="probe")
    assert response["statusCode"] == 200
    assert seen == {
        "path": "/data/other/items",
        "url": f"https://{FUNCTION_HOST}/data/other/items?_size=1",
        "scope_path": "/data/other/items",
        "added": "/data/other/items?_size=1&_x=1",
        "via_urls": "/data/other/items.json?_size=1",
        "named": "/data/-/metadata",
    }


def test_request_log_line_per_request(site, tmp_path, line):
    runtime, log = runtime_for(site, tmp_path, line)
    runtime(url_event("/data/data/items.json", "_size=1"), None)
    runtime(url_event("/nope"), None)
    assert [line.rsplit(" ", 1)[0] for line in log] == [
        "GET /data/data/items.json?_size=1 200",
        "GET /nope 404",
    ]
    assert all(line.endswith("ms") for line in log)


@pytest.mark.parametrize("extension", ["json", "csv"])
def test_oversized_responses_are_413_with_advice(site, tmp_path, extension, line):
    runtime, _ = runtime_for(site, tmp_path, line)
    query = "sql=select+hex(zeroblob(7000))+from+items+a,+items+b&_size=max"
    response = runtime(url_event(sql_path(line, "data", extension), query), None)
    assert response["statusCode"] == 413
    assert "larger than 6 MB" in response["body"]
    assert len(json.dumps(response)) < 10_000


def test_response_just_under_the_limit_is_sent(site, tmp_path, line):
    runtime, _ = runtime_for(site, tmp_path, line)
    query = "sql=select+hex(zeroblob(5000))+from+items+a,+items+b&_size=max&_shape=array"  # 5.3 MB
    response = runtime(url_event(sql_path(line, "data"), query), None)
    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])) == 23 * 23


def non_ascii_csv_query(chars: int, padding: int = 0) -> str:
    """SQL for a one-cell CSV of ``chars`` times "é" (2 bytes each in UTF-8) and ``padding`` ASCII zeros."""
    sql = f"select replace(hex(zeroblob({chars})), '00', 'é') || substr(hex(zeroblob({padding})), 1, {padding}) as t"
    return "sql=" + urllib.parse.quote_plus(sql)


def awslambdaric_posted_size(response: dict, execution_env: str) -> int:
    """What awslambdaric 4.2.2 posts: simplejson, ensure_ascii=False on python3.12+ (its Encoder)."""
    unescaped = execution_env in {"AWS_Lambda_python3.12", "AWS_Lambda_python3.13"}
    return len(json.dumps(response, ensure_ascii=not unescaped).encode("utf-8"))


@pytest.mark.parametrize(
    ("execution_env", "status"), [("AWS_Lambda_python3.13", 200), ("AWS_Lambda_python3.11", 413)]
)
def test_a_4_mb_non_ascii_csv_is_sized_as_the_runtime_marshals_it(site, tmp_path, execution_env, status):
    """4.0 MB of "é": 4.0 MB posted by python3.12+ (UTF-8), 12 MB by python3.11 (each escaped to 6 bytes)."""
    runtime, _ = runtime_for(site, tmp_path, AWS_EXECUTION_ENV=execution_env)
    response = runtime(url_event("/data/data.csv", non_ascii_csv_query(2_000_000)), None)
    assert response["statusCode"] == status
    if status == 200:
        assert response["body"].count("é") == 2_000_000
        assert awslambdaric_posted_size(response, execution_env) < 4_100_000
    else:
        assert "larger than 6 MB" in response["body"]


def test_refused_exactly_when_the_posted_size_exceeds_the_limit(site, tmp_path):
    env = "AWS_Lambda_python3.13"
    runtime, _ = runtime_for(site, tmp_path, AWS_EXECUTION_ENV=env)
    chars = 3_000_000
    probe = runtime(url_event("/data/data.csv", non_ascii_csv_query(chars)), None)
    room = 6_291_556 - awslambdaric_posted_size(probe, env)  # Lambda's limit, in bytes
    assert 0 < room < 300_000
    at_limit = runtime(url_event("/data/data.csv", non_ascii_csv_query(chars, room)), None)
    assert at_limit["statusCode"] == 200
    assert awslambdaric_posted_size(at_limit, env) == 6_291_556
    over = runtime(url_event("/data/data.csv", non_ascii_csv_query(chars, room + 1)), None)
    assert over["statusCode"] == 413


def test_origin_secret_required_when_configured(site, tmp_path, line):
    runtime, _ = runtime_for(site, tmp_path, line, DL_ORIGIN_SECRET="s3cret")
    assert runtime(url_event("/data/"), None)["statusCode"] == 403
    assert runtime(url_event("/data/", headers={"x-dl-origin-secret": "wrong"}), None)["statusCode"] == 403
    assert runtime(url_event("/data/", headers={"x-dl-origin-secret": "s3cret"}), None)["statusCode"] == 200


def test_datasette_secret_signs_alike_across_sandboxes(site, tmp_path):
    first, _ = runtime_for(site, tmp_path, DATASETTE_SECRET="shared")
    second, _ = runtime_for(site, tmp_path, DATASETTE_SECRET="shared")
    signed = first.datasette.sign({"actor": "ada"}, "actor")
    assert second.datasette.unsign(signed, "actor") == {"actor": "ada"}
    unset, _ = runtime_for(site, tmp_path)
    with pytest.raises(BadSignature):
        unset.datasette.unsign(signed, "actor")


# --- databases in S3 ----------------------------------------------------------------------------------------------


@pytest.fixture
def s3_site(tmp_path, aws):
    """An instance whose databases are all in the (moto) artifact bucket; returns (instance dir, s3 client)."""
    folder = write_instance(tmp_path, SITE, inline=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    spec = load_instance(folder)
    for db in spec.databases:
        s3.put_object(Bucket=BUCKET, Key=db.key, Body=(tmp_path / "src" / db.file).read_bytes())
    return folder, s3


def test_s3_databases_are_fetched_verified_and_served(s3_site, tmp_path):
    folder, _ = s3_site
    runtime, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)
    response = runtime(url_event("/data/other/items.json"), None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["filtered_table_rows_count"] == 4
    spec = load_instance(folder)
    assert sorted(p.name for p in (tmp_path / "tmp-dbs").iterdir()) == sorted(
        f"{d.sha256}.db" for d in spec.databases
    )


def test_warm_invocations_and_new_sandboxes_reuse_fetched_files(s3_site, tmp_path):
    folder, s3 = s3_site
    runtime, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)
    assert runtime(url_event("/data/data.json"), None)["statusCode"] == 200
    for db in load_instance(folder).databases:
        s3.delete_object(Bucket=BUCKET, Key=db.key)
    assert runtime(url_event("/data/other.json"), None)["statusCode"] == 200  # warm: no fetch
    again, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)  # same /tmp, new init
    assert again(url_event("/data/other.json"), None)["statusCode"] == 200


def test_wrong_content_is_503_never_served_then_retried(s3_site, tmp_path):
    folder, s3 = s3_site
    spec = load_instance(folder)
    other = spec.database("other")
    s3.put_object(Bucket=BUCKET, Key=other.key, Body=b"SQLite format 3\x00 but not the right bytes")
    runtime, log = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)
    failed = runtime(url_event("/data/data/items.json"), None)
    assert failed["statusCode"] == 503
    assert "database 'other'" in failed["body"] and "does not match" in failed["body"]
    assert "The next request will try again" in failed["body"]
    assert list((tmp_path / "tmp-dbs").glob(f"{other.sha256}*")) == []  # nothing partial or wrong kept
    assert list((tmp_path / "tmp-dbs").glob(".*")) == []
    s3.put_object(Bucket=BUCKET, Key=other.key, Body=(tmp_path / "src" / "other.db").read_bytes())
    assert runtime(url_event("/data/other/items.json"), None)["statusCode"] == 200
    assert [line.split(" ")[2] for line in log] == ["503", "200"]


def test_missing_object_is_a_clear_503(s3_site, tmp_path):
    folder, s3 = s3_site
    s3.delete_object(Bucket=BUCKET, Key=load_instance(folder).database("data").key)
    runtime, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)
    failed = runtime(url_event("/data/"), None)
    assert failed["statusCode"] == 503
    assert "database 'data'" in failed["body"] and "not found in the artifact bucket" in failed["body"]


def test_transient_errors_are_retried(tmp_path):
    """moto cannot fail on demand: botocore's Stubber gives S3's InternalError (500), then the object."""
    data = make_shop_db(tmp_path / "data.db").read_bytes()
    import hashlib

    from dl.runtime.instance import DatabaseSpec

    db = DatabaseSpec("data", "data.db", hashlib.sha256(data).hexdigest(), len(data), "s3", "databases/x.db")
    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="InternalError", http_status_code=500)
        stub.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)},
            {"Bucket": BUCKET, "Key": db.key},
        )
        path = fetch_database(client, BUCKET, db, tmp_path / "fetched")
    assert path.read_bytes() == data


def test_fetch_without_bucket_is_explained(tmp_path):
    from dl.runtime.fetch import fetch_databases
    from dl.runtime.instance import DatabaseSpec

    db = DatabaseSpec("data", "data.db", "0" * 64, 1, "s3", "databases/x.db")
    with pytest.raises(FetchError, match="DL_ARTIFACT_BUCKET is not set"):
        fetch_databases([db], None, tmp_path)


# --- downloads --------------------------------------------------------------------------------------------------


def test_database_download_redirects_to_a_presigned_s3_url(s3_site, tmp_path):
    folder, _ = s3_site
    runtime, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)
    response = runtime(url_event("/data/data.db"), None)
    assert response["statusCode"] == 302
    assert response["headers"]["cache-control"] == "no-store"
    location = response["headers"]["location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    with urllib.request.urlopen(location) as download:  # moto serves the presigned URL like S3
        assert download.read() == (tmp_path / "src" / "data.db").read_bytes()
        assert 'filename="data.db"' in download.headers["content-disposition"]


def test_download_redirect_respects_allow_download(tmp_path, aws, line):
    folder = write_instance(tmp_path, SITE.replace("default_page_size: 5", "allow_download: false"))
    runtime, _ = runtime_for(folder, tmp_path, line, DL_ARTIFACT_BUCKET=BUCKET)
    assert runtime(url_event("/data/data.db"), None)["statusCode"] == 403


def test_without_bucket_datasette_serves_small_downloads(site, tmp_path, line):
    runtime, _ = runtime_for(site, tmp_path, line)
    response = runtime(url_event("/data/other.db"), None)
    assert response["statusCode"] == 200
    assert body_of(response) == (tmp_path / "src" / "other.db").read_bytes()


# --- redirects from Datasette, put under the prefix ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/-/settings.json", "/data/-/settings.json"),  # Datasette's fixed redirect for /-/config.json
        ("/data/data/items.json", "/data/data/items.json"),
        ("/data/", "/data/"),
        ("/data", "/data"),
        ("/data?x=1", "/data?x=1"),
        ("/datax/y", "/data/datax/y"),
        ("https://example.org/x", "https://example.org/x"),
        ("//cdn.example.org/x", "//cdn.example.org/x"),
    ],
)
def test_url_under_prefix(url, expected):
    assert url_under_prefix(url, "/data/") == expected


# --- responses over Lambda's limit, through the artifact bucket ---------------------------------------------


def make_export_db(path: Path, rows: int) -> Path:
    """A table of ``rows`` rows of about 100 bytes of CSV each, and a view of every pair of them."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("create table events (id integer primary key, kind text, note text)")
        conn.executemany(
            "insert into events (kind, note) values (?, ?)",
            [(f"kind-{i % 7}", f"note {i} " + "x" * 70 + " é") for i in range(rows)],
        )
        conn.execute("create view pairs as select a.id, b.id as other, a.note from events a, events b")
    conn.close()
    return path


@pytest.fixture
def export_site(tmp_path, aws):
    """An instance with a 10 MB table whose artifact bucket is moto's; returns (instance dir, s3, db path)."""
    make_export_db(tmp_path / "src" / "events.db", rows=100_000)
    folder = write_instance(tmp_path, "    databases: [data.db, events.db]\n    prefix: /data\n")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return folder, s3, tmp_path / "src" / "events.db"


def plain_datasette(db: Path, path: str):
    """The same request answered by plain Datasette in-process (the reference for the object's bytes)."""
    import asyncio

    from datasette.app import Datasette

    async def get():
        return await Datasette(immutables=[str(db)]).client.get(path)

    return asyncio.run(get())


def followed(response: dict) -> tuple[bytes, str]:
    """The body and content type behind a redirect to S3 (moto serves presigned URLs like S3)."""
    with urllib.request.urlopen(response["headers"]["location"]) as download:
        return download.read(), download.headers["content-type"]


def test_a_csv_export_over_the_limit_streams_to_s3_and_redirects(export_site, tmp_path):
    folder, s3, db = export_site
    runtime, log = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET, DL_RESPONSE_LIMIT="1000000")
    response = runtime(url_event("/data/events/events.csv", "_stream=on&_size=max"), None)
    assert response["statusCode"] == 303
    assert response["headers"]["cache-control"] == "no-store"
    assert "X-Amz-Expires=300" in response["headers"]["location"]
    body, content_type = followed(response)
    expected = plain_datasette(db, "/events/events.csv?_stream=on&_size=max")
    assert len(body) > 8 * 2**20  # more than one multipart part (8 MiB)
    assert body == expected.content  # the object is complete: every row, byte for byte
    assert content_type == expected.headers["content-type"]
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="responses/")["Contents"]]
    assert key.endswith("/events.csv")
    assert any("sent through s3" in line for line in log)


def test_a_json_answer_over_the_limit_redirects_to_s3(export_site, tmp_path):
    folder, _, db = export_site
    runtime, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET, DL_RESPONSE_LIMIT="100000")
    response = runtime(url_event("/data/events/events.json", "_size=1000&_shape=array"), None)
    assert response["statusCode"] == 303
    body, content_type = followed(response)
    assert content_type.startswith("application/json")
    rows = json.loads(body)
    assert len(rows) == 1000 and rows[-1]["id"] == 1000
    assert rows == plain_datasette(db, "/events/events.json?_size=1000&_shape=array").json()


def test_answers_under_the_limit_are_not_sent_to_s3(export_site, tmp_path):
    folder, s3, _ = export_site
    runtime, _ = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET, DL_RESPONSE_LIMIT="100000")
    response = runtime(url_event("/data/events/events.json", "_size=10"), None)
    assert response["statusCode"] == 200
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="responses/").get("KeyCount") == 0


def test_an_export_that_cannot_finish_in_time_is_a_clear_answer_and_leaves_nothing(export_site, tmp_path):
    folder, s3, _ = export_site
    runtime, _ = runtime_for(
        folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET, DL_RESPONSE_LIMIT="100000", DL_ANSWER_SECONDS="1"
    )
    response = runtime(url_event("/data/events/pairs.csv", "_stream=on&_size=max"), None)  # 10^10 rows
    assert response["statusCode"] == 413
    assert "could not be produced within 1 seconds" in response["body"]
    assert "_size=" in response["body"] and "/data/events.db" in response["body"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="responses/").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
