"""Fixtures of the reliability suite: a fault-injecting proxy in front of moto's server, a small project of
three instances, and the checks that define "converged, nothing lost"."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import boto3
import pytest

from tests.apply import conftest as deploy_fixtures
from tests.apply.conftest import dl, write_manifest
from tests.conftest import make_db
from tests.reliability.fault_proxy import FaultProxy

MANIFEST = """\
project: rel
instances:
  a:
    databases: [a.db]
    metadata: {title: Alpha}
  b:
    databases: [b.db]
  c:
    databases: [c.db]
"""
project = deploy_fixtures.project  # the deploy suite's fixtures, shared
READ_TIMEOUT = "1"  # seconds (DL_AWS_READ_TIMEOUT): a held response times out quickly and is retried
HOLD = 1.3  # seconds a "timeout" fault holds a response: past READ_TIMEOUT


@pytest.fixture
def rel_project(project, monkeypatch):
    """The deploy suite's project folder (shared tool cache, fast polling) with a three-instance manifest."""
    make_db(project / "a.db", {"orders": 3})
    make_db(project / "b.db", {"cities": 2})
    make_db(project / "c.db", {"rivers": 1})
    write_manifest(project, MANIFEST)
    monkeypatch.setenv("DL_AWS_READ_TIMEOUT", READ_TIMEOUT)
    # a first lint of a template can take longer than READ_TIMEOUT: check beside the request, fail the test
    # rather than the call (tests/support/template_gate.py)
    monkeypatch.setenv("DL_TEMPLATE_GATE_MODE", "record")
    return project


@pytest.fixture
def faults(aws, monkeypatch):
    """Start a FaultProxy in front of moto and point AWS_ENDPOINT_URL at it: ``proxy = faults(rate=..)``."""
    proxies = []

    def start(**kwargs) -> FaultProxy:
        kwargs.setdefault("timeout_seconds", HOLD)
        proxy = FaultProxy(aws, **kwargs).__enter__()
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        return proxy

    yield start
    for proxy in proxies:
        proxy.__exit__(None, None, None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)


def direct(aws_url: str):
    """boto3 clients that bypass the proxy (the test's own view of the emulated account)."""
    return (
        boto3.client("cloudformation", endpoint_url=aws_url),
        boto3.client("s3", endpoint_url=aws_url),
    )


def assert_clean_failure(result) -> None:
    """A failed apply: exit 1, a message, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output, result.output
    assert "FAILED" in result.output or "Error:" in result.output, result.output


def assert_converged(aws_url: str, project_name: str = "rel") -> dict:
    """`dl plan` (no faults) is empty; no change set is left unexecuted on any stack; every object under
    packages/, databases/ and templates/ has the sha256 its key names. Returns counts for the report."""
    os.environ["AWS_ENDPOINT_URL"] = aws_url
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes. The deployment matches the manifest." in result.output
    cfn, s3 = direct(aws_url)
    stacks = [s for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"]
    names = [s["StackName"] for s in stacks]
    assert len(names) == len(set(names)), f"duplicate stacks: {names}"
    assert all(s["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE") for s in stacks), [
        (s["StackName"], s["StackStatus"]) for s in stacks
    ]
    stray = []
    for s in stacks:
        for c in cfn.list_change_sets(StackName=s["StackId"])["Summaries"]:
            # moto lists every stack's change sets and keeps executed ones (AWS deletes those on execution)
            if c.get("StackId") == s["StackId"] and c["ExecutionStatus"] != "EXECUTE_COMPLETE":
                stray.append((s["StackName"], c["ChangeSetName"], c["Status"], c["ExecutionStatus"]))
    assert stray == [], f"change sets left behind: {stray}"
    bucket = cfn.describe_stack_resource(
        StackName=f"{project_name}--bootstrap", LogicalResourceId="ArtifactBucket"
    )["StackResourceDetail"]["PhysicalResourceId"]
    checked = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if not key.startswith(("packages/", "databases/", "templates/")):
                continue
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            named = Path(key).name.split(".")[0]
            assert hashlib.sha256(body).hexdigest() == named, f"s3://{bucket}/{key} is not what its key names"
            checked += 1
    return {"stacks": len(stacks), "objects": checked}


def report(line: str) -> None:
    """Figures for the README's Reliability section (visible with -s, and in the junit/CI log)."""
    print(f"[reliability] {line}", file=sys.stderr)
