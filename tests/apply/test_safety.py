"""Safety of plan/apply/destroy against moto's server: protected instances, --allow-destroy, stale saved plans,
--target, another project's stack, exit codes, and garbage collection of unreferenced artifacts."""

from __future__ import annotations

import json

import boto3

from dl.aws.metadata_json import template_spec
from tests.apply.conftest import add_rows, cfn, dl, write_manifest

TWO = """\
project: safe
instances:
  alpha:
    databases: [alpha.db]
    protect: true
  beta:
    databases: [beta.db]
"""


def live_stacks() -> set[str]:
    return {
        s["StackName"] for s in cfn().describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"
    }


def test_protected_instances_are_never_destroyed(project):
    write_manifest(project, TWO)
    assert dl("apply", "--yes").exit_code == 0
    write_manifest(project, "project: safe\ninstances:\n  beta:\n    databases: [beta.db]\n")
    result = dl("apply", "--yes", "--allow-destroy")
    assert result.exit_code == 1
    assert "alpha: protected (protect: true) and the plan would destroy it" in result.output
    assert "safe-alpha" in live_stacks()
    result = dl("destroy", "alpha", "--yes")
    assert (
        result.exit_code == 1
        and "refusing to destroy protected instances (protect: true): alpha" in result.output
    )
    assert "safe-alpha" in live_stacks()
    # destroy of an unprotected instance, by name, with confirmation skipped
    result = dl("destroy", "beta", "--yes")
    assert result.exit_code == 0, result.output
    assert "safe-beta" not in live_stacks() and "safe-alpha" in live_stacks()
    result = dl("destroy", "gamma", "--yes")
    assert result.exit_code == 2 and "not deployed in project safe" in result.output  # as an unknown --target
    assert dl("destroy", "--yes").exit_code == 2  # neither names nor --all


def test_saved_plan_applies_exactly_and_refuses_when_stale(project):
    write_manifest(project, TWO.replace("    protect: true\n", ""))
    result = dl("plan", "--out", "plan.json", "--target", "alpha")
    assert result.exit_code == 0, result.output
    saved = json.loads((project / "plan.json").read_text())
    assert [i["name"] for i in saved["instances"]] == ["alpha"]  # --target limits the plan
    result = dl("apply", "plan.json")
    assert result.exit_code == 0, result.output
    assert "safe-alpha" in live_stacks() and "safe-beta" not in live_stacks()  # and the apply

    # the database changes after the plan was made: the saved plan is stale
    add_rows(project / "alpha.db", "orders", 1)
    assert dl("plan", "--out", "plan2.json").exit_code == 0
    add_rows(project / "alpha.db", "orders", 1)
    result = dl("apply", "plan2.json")
    assert result.exit_code == 1
    assert "the plan is stale" in result.output
    assert "alpha: the manifest or its files changed since the plan was made" in result.output

    # the deployed state changes after the plan was made (another apply ran): stale too
    assert dl("plan", "--out", "plan3.json").exit_code == 0
    assert dl("apply", "--yes", "--target", "alpha").exit_code == 0
    result = dl("apply", "plan3.json")
    assert result.exit_code == 1
    assert "alpha: the deployed state changed since the plan was made" in result.output


def test_detailed_exitcode_and_errors(project):
    write_manifest(project, TWO)
    assert dl("plan", "--detailed-exitcode").exit_code == 2
    write_manifest(project, "project: safe\ninstances:\n  alpha: {databases: [missing.db]}\n")
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 1 and "missing.db file not found" in result.output
    write_manifest(project, TWO)
    result = dl("plan", "--target", "alpah")
    assert result.exit_code == 2  # a usage error, as an unknown instance is for `dl logs`
    assert (
        "--target alpah: no such instance in the manifest or deployed (did you mean 'alpha'?)"
        in result.output
    )
    (project / "bad.json").write_text('{"format_version": 99}')
    write_manifest(project, TWO)
    result = dl("apply", "bad.json")
    assert result.exit_code == 1 and "format_version 99" in result.output


def test_a_stack_of_another_project_or_tool_is_never_touched(project):
    cfn().create_stack(
        StackName="safe-beta",
        TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}),
        Tags=[{"Key": "owner", "Value": "someone-else"}],
    )
    write_manifest(project, TWO.replace("    protect: true\n", ""))
    result = dl("apply", "--yes")
    assert (
        result.exit_code == 1
    )  # found at plan time (dl/aws/conflicts.py): refused before anything is written
    assert (
        "beta: the stack safe-beta exists and belongs to no datasette-lambda project (no dl:project tag)"
        in result.output
    )
    assert [s["StackName"] for s in cfn().describe_stacks()["Stacks"]] == ["safe-beta"]
    result = dl("apply", "--yes", "--target", "alpha")  # the other instance can still be deployed
    assert result.exit_code == 0, result.output
    assert "alpha: create applied" in result.output
    template = cfn().get_template(StackName="safe-beta")["TemplateBody"]
    assert "Topic" in json.dumps(template)  # untouched


def test_status_deployed_drifted_orphaned_and_never_deployed(project):
    write_manifest(project, TWO.replace("    protect: true\n", "") + "  gamma:\n    databases: [beta.db]\n")
    assert dl("apply", "--yes", "--target", "alpha", "--target", "beta").exit_code == 0
    add_rows(project / "alpha.db", "orders", 2)  # alpha drifts
    write_manifest(
        project,
        "project: safe\ninstances:\n  alpha: {databases: [alpha.db]}\n  gamma: {databases: [beta.db]}\n",
    )
    result = dl("status", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output[result.output.index("[") :])}
    assert rows["alpha"]["state"] == "deployed" and rows["alpha"]["drift"] is True
    assert rows["beta"]["state"] == "orphan"
    assert rows["gamma"]["state"] == "not deployed" and rows["gamma"]["drift"] is None
    assert rows["alpha"]["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert rows["alpha"]["datasette"] == "0.65.5"
    (db,) = rows["alpha"]["databases"]
    assert db["name"] == "alpha" and db["tables"] == 2 and len(db["sha256"]) == 64
    assert rows["alpha"]["stack_status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    text = dl("status").output
    assert "alpha: deployed, drifted from the manifest" in text
    assert "beta: orphan" in text and "gamma: not deployed" in text
    assert "deployed  " in text and "from commit 0123456789ab" in text


def test_unreferenced_artifacts_are_collected_after_the_grace_period(project, monkeypatch):
    monkeypatch.setenv("DL_ARTIFACT_GRACE_HOURS", "0")
    write_manifest(project, "project: safe\ninstances:\n  alpha: {databases: [alpha.db]}\n")
    assert dl("apply", "--yes").exit_code == 0
    bucket = cfn().describe_stack_resource(StackName="safe--bootstrap", LogicalResourceId="ArtifactBucket")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    s3 = boto3.client("s3")

    def keys():
        objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            o["Key"] for o in objects if not o["Key"].startswith(("keys/", "state/"))
        }  # keys, records stay

    first = keys()
    add_rows(project / "alpha.db", "orders", 1)
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    second = keys()
    assert not (first & second)  # the old package and database are gone from the listing
    assert len([k for k in second if k.startswith("databases/")]) == 1
    # On AWS the bucket is versioned (tests/aws/templates check the template), so the bytes stay recoverable until
    # the lifecycle rule expires them; moto ignores VersioningConfiguration set through CloudFormation.


def test_renaming_an_instance_keeps_the_artifacts_the_new_name_uses(project):
    """The destroyed instance's database is the new instance's too: it must survive the destroy."""
    write_manifest(project, "project: safe\ninstances:\n  old:\n    databases: [beta.db]\n")
    assert dl("apply", "--yes").exit_code == 0
    write_manifest(project, "project: safe\ninstances:\n  new:\n    databases: [beta.db]\n")
    result = dl("apply", "--yes", "--allow-destroy", "--parallelism", "1")
    assert result.exit_code == 0, result.output
    bucket = cfn().describe_stack_resource(StackName="safe--bootstrap", LogicalResourceId="ArtifactBucket")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])}
    body = cfn().get_template(StackName="safe-new")["TemplateBody"]
    spec = template_spec(json.loads(body) if isinstance(body, str) else body)
    assert spec["databases"][0]["key"] in keys and spec["package"]["key"] in keys


def test_a_saved_plan_is_refused_in_another_region(project, monkeypatch):
    write_manifest(project, "project: safe\ninstances:\n  alpha: {databases: [alpha.db]}\n")
    assert dl("plan", "--out", "plan.json").exit_code == 0
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    result = dl("apply", "plan.json")
    assert (
        result.exit_code == 1 and "plan.json is a plan for region eu-west-1, not us-west-2" in result.output
    )
    assert "safe-alpha" not in live_stacks()
