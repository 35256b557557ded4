"""The handler under S3 faults, through the fault-injecting proxy in front of moto's server: truncated
downloads, changed bytes and timeouts give a 503 and a retry on the next request, never a response from a
partial or wrong file, and nothing partial is left in /tmp."""

from __future__ import annotations

import pytest
from test_handler import BUCKET, runtime_for, url_event, write_instance

from dl.runtime.instance import load_instance
from tests.reliability.fault_proxy import FaultProxy

ONE_DB = "    databases: [data.db]\n    prefix: /data\n"


@pytest.fixture
def s3_instance(tmp_path, aws):
    import boto3

    folder = write_instance(tmp_path, ONE_DB, inline=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    (db,) = load_instance(folder).databases
    s3.put_object(Bucket=BUCKET, Key=db.key, Body=(tmp_path / "src" / db.file).read_bytes())
    return folder, db


def leftovers(tmp_path) -> list[str]:
    folder = tmp_path / "tmp-dbs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("truncate", "could not be fetched"),
        ("corrupt", "match"),  # our sha256 check, or botocore's checksum when S3 sends one
        ("timeout", "could not be fetched"),
    ],
)
def test_a_failed_download_is_a_503_then_the_next_request_retries(
    s3_instance, tmp_path, monkeypatch, aws, fault, says
):
    folder, db = s3_instance
    monkeypatch.setenv("DL_FETCH_READ_TIMEOUT", "0.5")
    # enough faults to outlast botocore's retries and the fetcher's own attempts, then the real bytes
    with FaultProxy(aws, rules={"GetObject": [fault] * 20}, timeout_seconds=0.8) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        runtime, log = runtime_for(folder, tmp_path, DL_ARTIFACT_BUCKET=BUCKET)
        failed = runtime(url_event("/data/data/items.json"), None)
        assert failed["statusCode"] == 503, failed
        assert "database 'data'" in failed["body"] and says in failed["body"], failed["body"]
        assert "The next request will try again" in failed["body"]
        assert leftovers(tmp_path) == []  # nothing partial or wrong kept, not even a temporary file
        proxy.rules["GetObject"] = []  # S3 recovers
        served = runtime(url_event("/data/data/items.json"), None)
        assert served["statusCode"] == 200
        assert leftovers(tmp_path) == [f"{db.sha256}.db"]
        assert proxy.stats[fault] >= 2
    assert [line.split(" ")[2] for line in log] == ["503", "200"]
