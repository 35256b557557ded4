"""A scripted history against moto's server: every step's plan asserted in text and JSON, applied, then empty.

create two instances -> no changes -> rows added + a column added -> config changed -> a prefix added ->
an instance removed (refused without --allow-destroy, then destroyed).
"""

from __future__ import annotations

import json

import boto3

from dl.aws.metadata_json import template_spec
from tests.apply.conftest import add_column, add_rows, cfn, dl, plan_json, write_manifest

MANIFEST = """\
project: hist
instances:
  alpha:
    databases: [alpha.db]
  beta:
    databases: [beta.db]
"""


def stack_names() -> set[str]:
    return {
        s["StackName"] for s in cfn().describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"
    }


def spec_of(stack: str) -> dict:
    import json

    body = cfn().get_template(StackName=stack)["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else body
    return template_spec(body)


def alpha_spec() -> dict:
    return spec_of("hist-alpha")


def assert_converged():
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes. The deployment matches the manifest." in result.output


def test_scripted_history(project, calls):
    write_manifest(project, MANIFEST)

    # 1. create two instances
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "+ alpha: create" in result.output and "+ beta: create" in result.output
    assert "+ artifact bucket (bootstrap stack): create" in result.output
    assert "Plan: 2 to create, 0 to update, 0 to destroy." in result.output
    data = plan_json()
    assert data["format_version"] == 1 and data["counts"]["create"] == 2
    assert {i["name"]: i["action"] for i in data["instances"]} == {"alpha": "create", "beta": "create"}
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    assert "Apply complete: 2 succeeded, 0 failed." in result.output
    assert {"hist--bootstrap", "hist-alpha", "hist-beta"} <= stack_names()
    stack = cfn().describe_stacks(StackName="hist-alpha")["Stacks"][0]
    tags = {t["Key"]: t["Value"] for t in stack["Tags"]}
    assert tags["dl:project"] == "hist" and tags["dl:instance"] == "alpha" and tags["dl:role"] == "instance"
    assert tags["dl:commit"] == "0123456789abcdef0123456789abcdef01234567"
    function = boto3.client("lambda").get_function_configuration(FunctionName="hist-alpha")
    assert (function["Runtime"], function["Handler"], function["MemorySize"], function["Timeout"]) == (
        "python3.13",
        "dl_runtime.handler.handler",
        1024,
        30,
    )
    code = boto3.client("lambda").get_function(FunctionName="hist-alpha")["Code"]
    assert alpha_spec()["package"]["key"] in json.dumps(code) or code.get("RepositoryType") == "S3"
    role = function["Role"].split("/")[-1]
    iam = boto3.client("iam")
    policies = iam.list_role_policies(RoleName=role)["PolicyNames"]
    documents = " ".join(
        str(iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]) for p in policies
    )
    assert "s3:GetObject" in documents and alpha_spec()["databases"][0]["key"] in documents
    assert "beta" not in documents  # nothing of the other instance
    assert "logs:PutLogEvents" in documents and "/aws/lambda/hist-alpha" in documents

    # 2. nothing changed: empty plan, and a second apply uploads nothing and runs no change set
    assert_converged()
    calls.clear()
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    writes = [
        c for c in calls if c.split(".")[1].startswith(("Put", "Create", "Execute", "Upload", "Delete"))
    ]
    assert writes == ["s3.PutObject", "s3.DeleteObject"]  # only the project lock, taken and released
    # one read per instance, and one of the bootstrap stack (its version)
    assert len([c for c in calls if c == "cloudformation.GetTemplate"]) == 3

    # 3. rows added to one table and a column to another, in alpha's database only
    add_rows(project / "alpha.db", "orders", 2)
    add_column(project / "alpha.db", "customers", "email")
    result = dl("plan")
    shown = result.output[result.output.index("Project hist") :]  # the plan, after the build's progress lines
    assert "~ alpha: update" in shown and "beta" not in shown.split("Unchanged:")[0]
    assert "orders: rows 3 -> 5 (+2)" in result.output
    assert "customers: column email added" in result.output
    assert "Plan: 0 to create, 1 to update, 0 to destroy." in result.output
    data = plan_json()
    alpha = next(i for i in data["instances"] if i["name"] == "alpha")
    (db,) = alpha["databases"]
    assert db["action"] == "change" and db["after"]["tables"]["orders"]["rows"] == 5
    assert db["before"]["tables"]["orders"]["rows"] == 3
    assert "email" in db["after"]["tables"]["customers"]["columns"]
    calls.clear()
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    uploads = [c for c in calls if c in ("s3.PutObject", "s3.CreateMultipartUpload")]
    assert (
        len(uploads) == 3
    )  # the project lock, the changed database and alpha's new package; nothing of beta
    change_sets = [c for c in calls if c == "cloudformation.ExecuteChangeSet"]
    assert len(change_sets) == 1
    assert_converged()

    # 4. config changed
    write_manifest(
        project,
        MANIFEST.replace(
            "    databases: [alpha.db]\n", "    databases: [alpha.db]\n    config: {default_page_size: 20}\n"
        ),
    )
    result = dl("plan")
    assert "+ config.default_page_size: 20" in result.output
    data = plan_json()
    alpha = next(i for i in data["instances"] if i["name"] == "alpha")
    assert {"path": "config.default_page_size", "before": None, "after": 20, "note": "added"} in alpha[
        "changes"
    ]
    assert dl("apply", "--yes").exit_code == 0
    assert_converged()

    # 5. a prefix added to beta
    manifest = MANIFEST.replace(
        "    databases: [alpha.db]\n", "    databases: [alpha.db]\n    config: {default_page_size: 20}\n"
    )
    manifest = manifest.replace("    databases: [beta.db]\n", "    databases: [beta.db]\n    prefix: data\n")
    write_manifest(project, manifest)
    result = dl("plan")
    assert "~ beta: update" in result.output and "~ prefix: / -> /data/" in result.output
    data = plan_json()
    beta = next(i for i in data["instances"] if i["name"] == "beta")
    assert {"path": "prefix", "before": "/", "after": "/data/", "note": ""} in beta["changes"]
    assert dl("apply", "--yes").exit_code == 0
    assert_converged()

    # 6. beta removed from the manifest: a loud destroy, refused without --allow-destroy
    write_manifest(project, manifest.split("  beta:")[0])
    result = dl("plan")
    assert "- beta: destroy" in result.output and "removed from the manifest" in result.output
    assert "WARNING: this plan destroys or replaces: beta" in result.output
    assert "Plan: 0 to create, 0 to update, 0 to destroy." not in result.output
    assert "Plan: 0 to create, 0 to update, 1 to destroy." in result.output
    assert plan_json()["counts"]["destroy"] == 1
    result = dl("apply", "--yes")
    assert result.exit_code == 1
    assert "beta: the plan would destroy it; pass --allow-destroy" in result.output
    assert "hist-beta" in stack_names()
    beta_keys = {db["key"] for db in spec_of("hist-beta")["databases"]}
    result = dl("apply", "--yes", "--allow-destroy")
    assert result.exit_code == 0, result.output
    assert "hist-beta" not in stack_names() and "hist-alpha" in stack_names()
    assert_converged()
    # the destroyed instance's own artifacts are gone; alpha's remain
    bucket = cfn().describe_stack_resource(StackName="hist--bootstrap", LogicalResourceId="ArtifactBucket")
    name = bucket["StackResourceDetail"]["PhysicalResourceId"]
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=name).get("Contents", [])}
    alpha_keys = {db["key"] for db in alpha_spec()["databases"]} | {alpha_spec()["package"]["key"]}
    assert alpha_keys <= keys
    assert beta_keys and not (beta_keys & keys)


# S3 operations whose IAM action has another name (https://docs.aws.amazon.com/service-authorization/)
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "DeleteObjects": "DeleteObject",
}


def test_the_documented_apply_role_allows_every_call_dl_made(every_call):
    """Runs after the history (same module): every operation dl called is in docs/aws-iam/apply-role-policy.json."""
    import fnmatch
    from pathlib import Path

    policy = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/aws-iam/apply-role-policy.json").read_text()
    )
    allowed = [
        action
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow"
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert every_call, "the history test records the calls"
    missing = []
    for call in sorted(every_call):
        service, operation = call.split(".")
        operation = S3_ACTIONS.get(operation, operation) if service == "s3" else operation
        action = f"{service}:{operation}"
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed):
            missing.append(action)
    assert missing == []
