"""Pull request previews against moto's server: `dl apply --preview`, `dl preview list|gc`,
`dl destroy --preview`, and production left exactly as it was."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta

import boto3
import pytest

from tests.apply.conftest import add_rows, cfn, dl, write_manifest

MANIFEST = """\
project: shop
instances:
  alpha:
    databases: [alpha.db]
    domain: data.example.com
    certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/abc
    protect: true
    log_retention_days: 90
  beta:
    databases: [beta.db]
"""
HEAD = "feedfacefeedfacefeedfacefeedfacefeedface"


@pytest.fixture
def pull_request(project, monkeypatch):
    """A pull_request run of PR 7 whose head is HEAD (GITHUB_SHA stays the merge commit)."""
    event = project / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    return project


def stacks() -> dict[str, dict]:
    return {
        s["StackName"]: s for s in cfn().describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"
    }


def snapshot(names) -> dict:
    """What a reviewer would compare: each stack's template, tags and whether it was ever updated."""
    out = {}
    for name, s in stacks().items():
        if name in names:
            body = cfn().get_template(StackName=name)["TemplateBody"]
            out[name] = (body, sorted((t["Key"], t["Value"]) for t in s["Tags"]), s.get("LastUpdatedTime"))
    return out


def tags(stack: dict) -> dict:
    return {t["Key"]: t["Value"] for t in stack["Tags"]}


def template(name: str) -> dict:
    body = cfn().get_template(StackName=name)["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else body


def bucket_keys() -> set[str]:
    s3 = boto3.client("s3")
    [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def function_url(function: str) -> str:
    config = boto3.client("lambda").create_function_url_config(FunctionName=function, AuthType="NONE")
    return config["FunctionUrl"].rstrip("/")


def spec_keys(name: str) -> set[str]:
    spec = template(name)["Metadata"]["DatasetteLambda"]["spec"]
    return {spec["package"]["key"], *(d["key"] for d in spec["databases"])}


def test_preview_lifecycle_leaves_production_untouched(pull_request, monkeypatch):
    project = pull_request
    write_manifest(project, MANIFEST)
    shutil.copy(project / "alpha.db", project / "alpha.orig.db")
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    production = {"shop--bootstrap", "shop-alpha", "shop-beta"}
    before = snapshot(production)
    production_keys = spec_keys("shop-alpha") | spec_keys("shop-beta")

    # the pull request changes alpha's data: only alpha gets a preview
    add_rows(project / "alpha.db", "orders", 15)
    result = dl("apply", "--preview", "7", "--yes")
    assert result.exit_code == 0, result.output
    assert "Preview of pull request #7: alpha" in result.output
    assert "Project shop in eu-west-1: previews of pull request #7 (stacks shop--pr7--*)" in result.output
    assert set(stacks()) == production | {"shop--pr7--alpha"}
    preview = stacks()["shop--pr7--alpha"]
    assert tags(preview)["dl:preview"] == "7" and tags(preview)["dl:commit"] == HEAD
    assert tags(preview)["dl:instance"] == "alpha" and tags(preview)["dl:project"] == "shop"
    body = template("shop--pr7--alpha")
    resources = body["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert not any(t.startswith(("AWS::CloudFront::", "AWS::Route53::")) for t in types)  # no CDN, no domain
    assert resources["Function"]["Properties"]["FunctionName"] == "shop--pr7--alpha"
    assert resources["LogGroup"]["Properties"] == {
        "LogGroupName": "/aws/lambda/shop--pr7--alpha",
        "RetentionInDays": 3,
    }
    spec = body["Metadata"]["DatasetteLambda"]["spec"]
    assert spec["preview"] == 7 and not spec["protect"] and not spec.get("domain") and not spec["cdn"]
    assert all(k.startswith("previews/") for k in spec_keys("shop--pr7--alpha"))
    assert spec_keys("shop--pr7--alpha") <= bucket_keys()
    assert snapshot(production) == before  # same templates, same tags, never updated
    # moto does not emulate AWS::Lambda::Url: make the URL CloudFormation would have made, to read it back
    url = function_url("shop--pr7--alpha")  # (not served by moto: later applies skip the HTTP check)

    # a second push updates the preview
    add_rows(project / "alpha.db", "orders", 5)
    result = dl("apply", "--preview", "7", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "orders: rows 18 -> 23 (+5)" in result.output  # planned against the preview, not production
    [alpha] = template("shop--pr7--alpha")["Metadata"]["DatasetteLambda"]["spec"]["databases"]
    assert alpha["tables"]["orders"]["rows"] == 23  # (moto keeps a change set's stack tags as they were)
    assert snapshot(production) == before

    # pull request 8, deployed ten days ago, previews every instance (its alpha is the same as 7's)
    real = datetime

    class TenDaysAgo(datetime):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - timedelta(days=10)

    monkeypatch.setattr("dl.apply.executor.datetime", TenDaysAgo)
    result = dl("apply", "--preview", "8", "--all", "--yes", "--no-verify")
    monkeypatch.setattr("dl.apply.executor.datetime", real)
    assert result.exit_code == 0, result.output
    assert {"shop--pr8--alpha", "shop--pr8--beta"} <= set(stacks())
    assert spec_keys("shop--pr8--alpha") == spec_keys("shop--pr7--alpha")  # shared artifacts

    result = dl("preview", "list")
    assert result.exit_code == 0, result.output
    assert re.search(rf"#7  alpha +{HEAD[:12]} +\d+[sm]  {url}/\n", result.output), result.output
    assert re.search(
        rf"#8  beta +{HEAD[:12]} +10d  \(no URL known; stack CREATE_COMPLETE\)\n", result.output
    ), result.output
    listed = json.loads(dl("preview", "list", "--json").output)
    assert {(r["pull_request"], r["instance"]) for r in listed} == {(7, "alpha"), (8, "alpha"), (8, "beta")}

    # production's plan sees no previews: back on the base branch's data it is empty
    shutil.copy(project / "alpha.orig.db", project / "alpha.db")
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes" in result.output

    # gc removes only the old pull request's previews; the artifacts 7 shares stay
    result = dl("preview", "gc", "--older-than", "7d", "--no-closed")
    assert result.exit_code == 0, result.output
    assert "pull request #8 (last deployed 10d ago): removing alpha, beta" in result.output
    assert set(stacks()) == production | {"shop--pr7--alpha"}
    assert spec_keys("shop--pr7--alpha") <= bucket_keys()

    # destroy removes 7's previews and their artifacts, and nothing of production
    preview_keys = spec_keys("shop--pr7--alpha")
    result = dl("destroy", "--preview", "7", "--yes")
    assert result.exit_code == 0, result.output
    assert set(stacks()) == production
    assert not preview_keys & bucket_keys()
    assert production_keys <= bucket_keys()
    assert snapshot(production) == before
    assert "No previews." in dl("preview", "list").output


def test_preview_without_changes_deploys_nothing_and_removes_a_stale_preview(pull_request):
    project = pull_request
    write_manifest(project, MANIFEST)
    assert dl("apply", "--yes").exit_code == 0
    shutil.copy(project / "beta.db", project / "beta.orig.db")
    add_rows(project / "beta.db", "cities", 2)
    assert dl("apply", "--preview", "7", "--yes").exit_code == 0
    assert "shop--pr7--beta" in stacks()
    # the pull request reverts its change: beta no longer differs, so its preview goes
    shutil.copy(project / "beta.orig.db", project / "beta.db")
    result = dl("apply", "--preview", "7", "--yes")
    assert result.exit_code == 0, result.output
    assert "no instance differs from production" in result.output
    assert set(stacks()) == {"shop--bootstrap", "shop-alpha", "shop-beta"}


def test_preview_needs_production_bootstrap_and_refuses_bad_usage(pull_request):
    write_manifest(pull_request, MANIFEST)
    result = dl("apply", "--preview", "7", "--yes")
    assert result.exit_code == 1
    assert "previews use production's; deploy production once (`dl apply`) first" in result.output
    assert not stacks()
    assert dl("apply", "--all", "--yes").exit_code == 2
    assert dl("apply", "--preview", "0", "--yes").exit_code == 2
    assert dl("preview", "gc", "--older-than", "soon").exit_code == 2
    assert dl("destroy", "--preview", "7", "--all").exit_code == 2


def test_an_instance_removed_from_production_is_kept_from_previews(pull_request):
    """Production's destroy of an instance never deletes an artifact a preview uses, and vice versa:
    previews have their own artifact prefix; the check that counts previews' references is exercised too."""
    project = pull_request
    write_manifest(project, MANIFEST.replace("    protect: true\n", ""))
    assert dl("apply", "--yes").exit_code == 0
    add_rows(project / "beta.db", "cities", 1)
    assert dl("apply", "--preview", "9", "--yes").exit_code == 0
    kept = spec_keys("shop--pr9--beta")
    result = dl("destroy", "beta", "--yes")
    assert result.exit_code == 0, result.output
    assert "shop--pr9--beta" in stacks() and kept <= bucket_keys()


def test_previews_have_their_own_lock(pull_request):
    """A merge's apply holding production's lock never delays a preview, and the reverse."""
    from dl.apply.lock import ProjectLock
    from dl.aws.client import Aws

    project = pull_request
    write_manifest(project, MANIFEST)
    assert dl("apply", "--yes").exit_code == 0
    add_rows(project / "beta.db", "cities", 1)
    [bucket] = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    production = ProjectLock(Aws("eu-west-1"), bucket, operation="apply", commit="c" * 40, log=lambda _: None)
    production.acquire(0)
    try:
        result = dl("apply", "--preview", "7", "--yes", "--no-verify")
        assert result.exit_code == 0, result.output
        assert "shop--pr7--beta" in stacks()
        result = dl("apply", "--yes", "--no-verify")  # production's own apply is refused: its lock is held
        assert result.exit_code == 1
    finally:
        production.release()
    assert not any(k.startswith("previews/locks/") for k in bucket_keys())  # released after the preview apply
