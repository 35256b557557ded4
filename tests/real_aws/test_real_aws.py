"""Every variant deployed on real AWS through the CLI, as a user would: apply (which bootstraps a throwaway
project and verifies each instance over HTTPS), a data update seen over HTTPS, an empty plan, destroy, and
nothing of the project left but what is documented as retained (the bootstrap stack and its bucket), which the
test then deletes itself.

Opt-in (tests/real_aws/conftest.py): ``DL_AWS_TESTS=1`` with credentials allowed to create everything
(administrator, like `dl bootstrap`); ``DL_AWS_TEST_REGION`` (default eu-west-1); ``DL_AWS_TEST_ZONE``: a
Route 53 hosted zone name (e.g. ``example.com``) adds a custom-domain instance ``<project>.<zone>``.
Not run by us: see README "Testing on real AWS".
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest

from tests.conftest import make_db

REGION = os.environ.get("DL_AWS_TEST_REGION", "eu-west-1")
ZONE = os.environ.get("DL_AWS_TEST_ZONE", "").rstrip(".")
PROJECT = f"dlt-{secrets.token_hex(3)}"  # throwaway: a fresh project each run


def dl(folder, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI in a child process, in `folder` (the same code path a user runs)."""
    env = {**os.environ, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "dl", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=3600
    )
    if check and done.returncode != 0:
        pytest.fail(f"dl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def manifest() -> str:
    text = (
        f"project: {PROJECT}\nregion: {REGION}\ninstances:\n"
        "  url-cdn-prefix: {databases: [data.db], prefix: /data/}\n"
        "  api-cdn: {databases: [data.db], endpoint: http-api}\n"
        "  no-cdn: {databases: [data.db], cdn: false}\n"
    )
    if ZONE:
        text += f"  domain: {{databases: [data.db], domain: {PROJECT}.{ZONE}}}\n"
    return text


def rows_over_https(url: str) -> int:
    """The row count of data/items as the public URL answers it (retried while CloudFront settles)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{url}data/items.json?_size=1&_t={time.time()}", timeout=30) as r:
                return json.load(r)["filtered_table_rows_count"]
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(10)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-aws")
    (folder / ".git").mkdir()
    make_db(folder / "data.db", {"items": 3})
    (folder / "datasette-lambda.yml").write_text(manifest())
    try:
        dl(folder, "apply", "--yes")  # bootstraps the project, deploys every variant, verifies over HTTPS
        yield folder
    finally:
        dl(folder, "destroy", "--all", "--yes", check=False)
        delete_bootstrap()


def urls(folder) -> dict[str, str]:
    out = dl(folder, "status", "--json").stdout
    status = json.loads(out[out.index("[") :])  # after any progress lines
    return {entry["name"]: entry["url"] for entry in status}


def test_every_variant_serves_over_https_and_data_updates_are_seen(deployed):
    public = urls(deployed)
    assert set(public) == {"url-cdn-prefix", "api-cdn", "no-cdn", *(["domain"] if ZONE else [])}
    assert all(u.startswith("https://") for u in public.values())
    assert public["url-cdn-prefix"].endswith("/data/")
    for url in public.values():
        assert rows_over_https(url) == 3
    conn = sqlite3.connect(deployed / "data.db")
    with conn:
        conn.executemany("insert into items (name, value) values (?, ?)", [("new", 1.0)] * 4)
    conn.close()
    dl(deployed, "apply", "--yes")  # verifies the new row counts itself
    for url in public.values():
        assert rows_over_https(url) == 7


def test_the_plan_is_empty_after_apply(deployed):
    done = dl(deployed, "plan", "--detailed-exitcode", check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_destroy_leaves_only_what_is_documented_as_retained(deployed):
    dl(deployed, "destroy", "--all", "--yes")
    bootstrap = f"{PROJECT}--bootstrap"

    def unexpected(left: dict) -> list[str]:
        return (
            [s for s in left["stacks"] if s != bootstrap]
            + left["functions"]
            + left["log_groups"]
            + [arn for arn in left["tagged"] if "s3:::" not in arn and bootstrap not in arn]
        )

    deadline = time.monotonic() + 600  # the tagging API lags deletions by minutes
    while unexpected(left := project_resources()) and time.monotonic() < deadline:
        time.sleep(30)
    assert unexpected(left) == [], left
    assert left["stacks"] == [bootstrap], left  # retained, as documented: the bootstrap stack and its bucket


# --- reading and cleaning the account ------------------------------------------------------------------------


def project_resources() -> dict[str, list[str]]:
    """What of the project exists: live stacks (here and in us-east-1, where certificates live), functions, log
    groups, and any resource still tagged with the project (both regions: CloudFront is listed in us-east-1)."""
    stacks, tagged = [], []
    for region in {REGION, "us-east-1"}:
        cfn = boto3.client("cloudformation", region_name=region)
        for page in cfn.get_paginator("describe_stacks").paginate():
            for s in page["Stacks"]:
                tags = {t["Key"]: t["Value"] for t in s.get("Tags") or []}
                if tags.get("dl:project") == PROJECT and s["StackStatus"] != "DELETE_COMPLETE":
                    stacks.append(s["StackName"])
        tagging = boto3.client("resourcegroupstaggingapi", region_name=region)
        for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "dl:project", "Values": [PROJECT]}]
        ):
            tagged += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
    functions = [
        f["FunctionName"]
        for page in boto3.client("lambda", region_name=REGION).get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if f["FunctionName"].startswith(f"{PROJECT}-")
    ]
    logs = boto3.client("logs", region_name=REGION)
    log_groups = [
        g["logGroupName"]
        for page in logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix=f"/aws/lambda/{PROJECT}-"
        )
        for g in page["logGroups"]
    ]
    return {"stacks": stacks, "functions": functions, "log_groups": log_groups, "tagged": tagged}


def delete_bootstrap() -> None:
    """Remove what dl keeps on purpose (the bootstrap stack and its versioned bucket): the run was throwaway."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    name = f"{PROJECT}--bootstrap"
    try:
        bucket = cfn.describe_stack_resource(StackName=name, LogicalResourceId="ArtifactBucket")[
            "StackResourceDetail"
        ]["PhysicalResourceId"]
    except Exception:
        return
    cfn.delete_stack(StackName=name)
    cfn.get_waiter("stack_delete_complete").wait(StackName=name)
    s3 = boto3.resource("s3", region_name=REGION).Bucket(bucket)
    s3.object_versions.delete()
    s3.delete()
