"""One apply at a time per project: the lock object in the artifact bucket (dl/apply/lock.py), against moto.

moto honours S3's conditional writes (If-None-Match: *, If-Match) but does not make two truly simultaneous
puts atomic, so the concurrency tests are made deterministic: the first apply runs in a thread and stops
inside its work (in its log callback, while it holds the lock) until the second one has run.
"""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from dl.apply.executor import apply_plan
from dl.apply.lock import holder_name, read_lock
from dl.aws import client as dl_aws
from dl.aws.names import LOCK_KEY
from dl.aws.observed import bootstrap_bucket
from dl.commands.options import load
from dl.commands.pipeline import prepare
from tests.apply.conftest import add_rows, dl, write_manifest

MANIFEST = "project: lk\ninstances:\n  alpha:\n    databases: [alpha.db]\n"
READS = ("Describe", "Get", "List", "Head")


@pytest.fixture
def lock_env(project, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("DL_LOCK_POLL_SECONDS", "0.05")
    write_manifest(project, MANIFEST)
    first = dl("apply", "--yes", "--no-verify")
    assert first.exit_code == 0, first.output
    return project


@pytest.fixture
def calls_by_client(monkeypatch):
    """(Aws adapter, "service.Operation") of every call, so two applies in one process can be told apart."""
    recorded: list[tuple[object, str]] = []
    original = dl_aws.Aws._count

    def count(self, model, **kwargs):
        recorded.append((self, f"{model.service_model.service_name}.{model.name}"))
        return original(self, model, **kwargs)

    monkeypatch.setattr(dl_aws.Aws, "_count", count)
    return recorded


def bucket() -> str:
    return bootstrap_bucket(dl_aws.Aws(), "lk")


class FirstApply(threading.Thread):
    """`dl apply`'s pipeline and executor in a thread, stopped in its first upload (it holds the lock then)
    until `resume` is set."""

    def __init__(self, project):
        super().__init__(daemon=True)
        manifest = load(str(project / "datasette-lambda.yml"))
        self.prepared = prepare(manifest, log=lambda _: None)
        self.manifest = manifest
        self.holding = threading.Event()
        self.resume = threading.Event()
        self.result = None

    def log(self, line: str) -> None:
        if "uploading" in line and not self.holding.is_set():
            self.holding.set()
            assert self.resume.wait(120)

    def run(self) -> None:
        self.result = apply_plan(
            self.prepared.plan,
            self.prepared.desired,
            self.prepared.aws,
            self.manifest,
            log=self.log,
            observed=self.prepared.observed,
        )


def test_a_second_apply_fails_at_once_naming_the_holder_and_writes_nothing(
    lock_env, calls_by_client, monkeypatch
):
    # renewed every 1 s by the first apply; S3's LastModified has whole seconds, so a lease must be longer than
    # one renewal interval plus a second of rounding to be judged alive
    monkeypatch.setenv("DL_LOCK_LEASE_SECONDS", "3")
    add_rows(lock_env / "alpha.db", "customers", 2)
    first = FirstApply(lock_env)
    first.start()
    assert first.holding.wait(120)
    held = read_lock(dl_aws.Aws(), bucket())
    time.sleep(4.0)  # longer than the lease: only the holder's renewals keep it valid

    started = len(calls_by_client)
    second = dl("apply", "--yes", "--no-verify")
    mine = [name for client, name in calls_by_client[started:] if client is not first.prepared.aws]

    assert second.exit_code == 1
    assert "another apply of this project holds the lock" in second.output
    assert f"apply by {holder_name()}, commit 0123456789ab" in second.output
    assert "Nothing was changed" in second.output and "--lock-timeout" in second.output
    writes = [n for n in mine if not n.split(".")[1].startswith(READS)]
    assert writes == ["s3.PutObject"]  # its If-None-Match attempt on the lock object, refused
    assert "cloudformation.DescribeStacks" in mine and "cloudformation.GetTemplate" not in mine  # not planned
    now = read_lock(dl_aws.Aws(), bucket())
    assert now.token == held.token and now.etag != held.etag  # still the first apply's, renewed meanwhile

    first.resume.set()
    first.join(120)
    assert first.result is not None and first.result.ok
    assert read_lock(dl_aws.Aws(), bucket()) is None  # released at the end


def test_with_lock_timeout_the_second_apply_waits_then_plans_under_the_lock(lock_env, calls_by_client):
    add_rows(lock_env / "alpha.db", "customers", 2)
    first = FirstApply(lock_env)

    def log(line: str) -> None:  # hold the lock until the second apply has polled it twice
        if "uploading" in line and not first.holding.is_set():
            first.holding.set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                polls = [n for c, n in calls_by_client if c is not first.prepared.aws and n == "s3.GetObject"]
                if len(polls) >= 2:
                    return
                time.sleep(0.02)

    first.log = log
    first.start()
    assert first.holding.wait(120)
    second = dl("apply", "--yes", "--no-verify", "--lock-timeout", "120")
    first.join(120)
    assert first.result.ok
    assert second.exit_code == 0, second.output
    assert f"lock: waiting for apply by {holder_name()}" in second.output
    # planned once the first apply had finished: what it deployed is what the second one sees
    assert "No changes. The deployment matches the manifest." in second.output
    assert read_lock(dl_aws.Aws(), bucket()) is None


def put_lock(holder: str, *, lease: float = 300) -> None:
    body = {
        "holder": holder,
        "operation": "apply",
        "commit": "feedfacefeedfacefeed",
        "since": "2026-01-01T00:00:00Z",
        "lease_seconds": lease,
        "token": "t0",
    }
    boto3.client("s3").put_object(Bucket=bucket(), Key=LOCK_KEY, Body=json.dumps(body).encode())


def test_a_lock_whose_lease_expired_is_taken_over(lock_env):
    put_lock("a cancelled CI job", lease=0.5)
    time.sleep(1.2)
    add_rows(lock_env / "alpha.db", "customers", 1)
    result = dl("apply", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "lock: taking over a lock whose lease expired: apply by a cancelled CI job" in result.output
    assert read_lock(dl_aws.Aws(), bucket()) is None


def test_unlock_shows_the_lock_and_breaks_it_after_confirmation(lock_env):
    put_lock("runner-7 (pid 42)")
    refused = dl("apply", "--yes", "--no-verify")
    assert refused.exit_code == 1 and "apply by runner-7 (pid 42), commit feedfacefeed" in refused.output

    unconfirmed = dl("unlock")  # no terminal, no --yes
    assert unconfirmed.exit_code == 1
    assert "apply by runner-7 (pid 42)" in unconfirmed.output
    assert "has not expired: the holder may still be running" in unconfirmed.output
    assert read_lock(dl_aws.Aws(), bucket()) is not None

    broken = dl("unlock", "--yes")
    assert broken.exit_code == 0 and "Lock broken." in broken.output
    assert read_lock(dl_aws.Aws(), bucket()) is None
    assert "No lock" in dl("unlock").output
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
