"""`dl bootstrap` against the emulator: the stack, its version, the execution role every change set runs as,
the refusal of an older bootstrap by `dl plan`, the upgrade by an administrator's `dl apply`, and the message a
CI role gets when it may not touch the bootstrap (AccessDenied, in the shape the CloudFormation API reference
gives: moto does not enforce IAM, so the refusal is injected at botocore's before-call hook)."""

from __future__ import annotations

import json

import boto3

from dl.aws import bootstrap, names, secrets
from dl.aws.templates import template_json
from tests.apply.conftest import cfn, dl, write_manifest

MANIFEST = "project: boot\ninstances:\n  alpha:\n    databases: [alpha.db]\n"
EXEC_ROLE = "arn:aws:iam::123456789012:role/boot--cfn-exec-eu-west-1"


def bucket_of(stack: str = "boot--bootstrap") -> str:
    res = cfn().describe_stack_resource(StackName=stack, LogicalResourceId="ArtifactBucket")
    return res["StackResourceDetail"]["PhysicalResourceId"]


def legacy_bootstrap() -> None:
    """The bucket-only bootstrap stack of releases before version 2 (no version in its Metadata)."""
    template = bootstrap.bootstrap_template("boot")
    template["Resources"] = {k: template["Resources"][k] for k in ("ArtifactBucket", "ArtifactBucketPolicy")}
    template["Outputs"] = {"BucketName": template["Outputs"]["BucketName"]}
    template["Metadata"] = {"DatasetteLambda": {"format": 1, "kind": "bootstrap", "project": "boot"}}
    tags = [{"Key": "dl:project", "Value": "boot"}, {"Key": "dl:role", "Value": "bootstrap"}]
    cfn().create_stack(StackName="boot--bootstrap", TemplateBody=template_json(template), Tags=tags)


def test_bootstrap_creates_the_role_the_boundary_and_both_keys_then_apply_deploys_as_the_role(project):
    write_manifest(project, MANIFEST)
    result = dl("bootstrap")
    assert result.exit_code == 0, result.output
    assert (
        f"execution role {EXEC_ROLE}" in result.output
        and f"version {names.BOOTSTRAP_VERSION}" in result.output
    )
    iam = boto3.client("iam")
    role = iam.get_role(RoleName="boot--cfn-exec-eu-west-1")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert iam.get_policy(PolicyArn="arn:aws:iam::123456789012:policy/boot--boundary-eu-west-1")["Policy"]
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket_of())["Contents"]}
    assert {secrets.FINGERPRINT_KEY_OBJECT, secrets.DERIVATION_KEY_OBJECT} <= keys

    result = dl("apply", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "bootstrap:" not in result.output  # current: nothing to create or upgrade
    assert cfn().describe_stacks(StackName="boot-alpha")["Stacks"][0]["RoleARN"] == EXEC_ROLE
    function = boto3.client("lambda").get_function_configuration(FunctionName="boot-alpha")
    assert ":role/dl/boot/" in function["Role"]  # under the project's exact IAM path
    again = dl("bootstrap")  # idempotent: an update that changes nothing
    assert again.exit_code == 0, again.output


def test_plan_refuses_an_older_bootstrap_and_an_administrators_apply_upgrades_it(project):
    write_manifest(project, MANIFEST)
    legacy_bootstrap()
    result = dl("plan")
    assert result.exit_code == 1
    assert "is version 1; this dl needs version 2" in result.output
    assert "`dl bootstrap`" in result.output
    result = dl("apply", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "~ bootstrap stack: upgrade" in result.output
    assert "bootstrap: upgrading (version 1 to 2) the bootstrap stack boot--bootstrap" in result.output
    assert cfn().describe_stacks(StackName="boot-alpha")["Stacks"][0]["RoleARN"] == EXEC_ROLE
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output


def deny_bootstrap_changes(monkeypatch) -> list[str]:
    """Every CreateChangeSet on the bootstrap stack answered as AWS answers a role without the permission."""
    from dl.aws import client as dl_aws

    denied: list[str] = []
    original = dl_aws.Aws.client

    def refuse(params, **_):
        stack = (params.get("body") or {}).get("StackName", "")  # the serialised (query protocol) request
        if stack.endswith("--bootstrap"):
            denied.append(stack)
            message = (
                "User: arn:aws:sts::123456789012:assumed-role/datasette-lambda-apply/GitHubActions is not "
                "authorized to perform: cloudformation:CreateChangeSet on resource: "
                "arn:aws:cloudformation:eu-west-1:123456789012:stack/boot--bootstrap/* with an explicit deny"
            )
            error = {"Error": {"Code": "AccessDenied", "Message": message, "Type": "Sender"}}
            return (
                type("R", (), {"status_code": 403, "headers": {}})(),
                {**error, "ResponseMetadata": {"HTTPStatusCode": 403}},
            )
        return None

    def client(self, service, region=None, *, retries=True):
        made = original(self, service, region, retries=retries)
        if service == "cloudformation" and not getattr(made, "_dl_denies", False):
            made.meta.events.register("before-call.cloudformation.CreateChangeSet", refuse)
            made._dl_denies = True
        return made

    monkeypatch.setattr(dl_aws.Aws, "client", client)
    return denied


def test_a_ci_role_that_may_not_bootstrap_is_told_to_run_dl_bootstrap(project, monkeypatch):
    write_manifest(project, MANIFEST)
    legacy_bootstrap()
    denied = deny_bootstrap_changes(monkeypatch)
    result = dl("apply", "--yes", "--no-verify")
    assert result.exit_code == 1
    assert denied == ["boot--bootstrap"]
    assert (
        "upgrading the bootstrap stack boot--bootstrap in eu-west-1, and these credentials may not"
        in result.output
    )
    assert "run `dl bootstrap` once with administrator credentials" in result.output
    assert "Traceback" not in result.output
    names = {s["StackName"] for s in cfn().describe_stacks()["Stacks"]}
    assert "boot-alpha" not in names  # nothing deployed without a current bootstrap
