"""The preview execution role (dl/aws/preview_execution_role.py) grants what CloudFormation's handlers call for a preview's
stack, on preview resources only; it refuses production's functions, roles, log groups, artifacts, HTTP APIs
and distributions. Evaluated offline (tests/iam_policy.py), like the production execution role."""

from __future__ import annotations

import pytest

from dl.apply.preview import preview_instance
from dl.aws import bootstrap
from dl.aws import names as dl_names
from dl.aws.templates import InstanceArtifacts, instance_template
from dl.commands.options import load
from tests.aws.bootstrap.test_execution_role import (
    ACCOUNT,
    BUCKET,
    MANIFEST,
    PROJECT,
    REGION,
    UNSCOPED,
    names,
    needed,
)
from tests.conftest import make_db
from tests.iam_policy import allowed, matches, resolve

PREVIEW_PACKAGE = "previews/packages/" + "a" * 64 + ".zip"
PREVIEW_DATABASE = "previews/databases/" + "b" * 64 + ".db"
NUMBER = 7


@pytest.fixture(scope="module")
def preview_templates(tmp_path_factory) -> dict[str, dict]:
    """Preview templates of every instance variant, with and without --preview-cdn."""
    folder = tmp_path_factory.mktemp("preview-variants")
    make_db(folder / "a.db")
    (folder / "datasette-lambda.yml").write_text(MANIFEST)
    manifest = load(str(folder / "datasette-lambda.yml"))
    built = {}
    for name, instance in manifest.instances.items():
        for cdn in (False, True):
            copy = preview_instance(instance, cdn=cdn)
            artifacts = InstanceArtifacts(
                bucket=BUCKET, package_key=PREVIEW_PACKAGE, database_keys=(PREVIEW_DATABASE,)
            )
            built[f"{name}-{cdn}"] = instance_template(
                PROJECT, copy, artifacts, spec={"instance": name, "preview": NUMBER}, preview=NUMBER
            )
    return built


def preview_names() -> dict[str, str]:
    return {
        **names(PROJECT),
        "PreviewPermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/"
        + dl_names.preview_boundary_policy_name(PROJECT, REGION),
    }


def preview_policy() -> dict:
    template = bootstrap.bootstrap_template(PROJECT)
    (policy,) = template["Resources"]["PreviewExecutionRole"]["Properties"]["Policies"]
    return resolve(policy["PolicyDocument"], preview_names())


def resource_for(rtype: str, action: str, *, production: bool) -> tuple[str, dict]:
    """What a handler's action acts on for the preview `data--pr7--x` (or, `production`, for `data-x`)."""
    service = action.split(":")[0].lower()
    function = f"{PROJECT}-x" if production else f"{PROJECT}--pr{NUMBER}--x"
    tags = {"aws:ResourceTag/dl:project": PROJECT, "aws:RequestTag/dl:project": PROJECT}
    if not production:
        tags |= {"aws:ResourceTag/dl:preview": str(NUMBER), "aws:RequestTag/dl:preview": str(NUMBER)}
    if action in UNSCOPED:
        return "*", tags
    if service == "logs":
        return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function}:*", tags
    if service == "lambda":
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}", tags
    if service == "iam":
        path = dl_names.function_role_path(PROJECT) if production else dl_names.preview_role_path(PROJECT)
        boundary = "PermissionsBoundary" if production else "PreviewPermissionsBoundary"
        context = tags | {
            "iam:PermissionsBoundary": preview_names()[boundary],
            "iam:PassedToService": "lambda.amazonaws.com",
        }
        return f"arn:aws:iam::{ACCOUNT}:role{path}{function}-FunctionRole-1A2B3C", context
    if service == "s3":
        key = PREVIEW_PACKAGE.removeprefix("previews/") if production else PREVIEW_PACKAGE
        return f"arn:aws:s3:::{BUCKET}/{key}", tags
    if service == "apigateway":
        return f"arn:aws:apigateway:{REGION}::/apis/a1b2c3d4e5", tags
    if service == "cloudfront":
        if rtype == "AWS::CloudFront::Function":
            return f"arn:aws:cloudfront::{ACCOUNT}:function/{function}-1a2b3c4d", tags
        return f"arn:aws:cloudfront::{ACCOUNT}:distribution/E1A2B3C4D5E6F7", tags
    raise AssertionError(f"{rtype} {action}: a preview has no such resource")


def test_previews_have_no_certificate_dns_or_shared_role(preview_templates):
    types = {r["Type"] for t in preview_templates.values() for r in t["Resources"].values()}
    assert not {"AWS::CertificateManager::Certificate", "AWS::Route53::RecordSet"} & types
    for template in preview_templates.values():
        role = template["Resources"]["FunctionRole"]["Properties"]
        assert role["Path"] == dl_names.preview_role_path(PROJECT)
        assert role["PermissionsBoundary"] == dl_names.preview_boundary_arn_sub(PROJECT)


def test_the_preview_execution_role_grants_every_handler_permission_on_preview_resources(preview_templates):
    policy = preview_policy()
    missing = []
    for rtype, action in needed(preview_templates):
        resource, context = resource_for(rtype, action, production=False)
        if not allowed([policy], action, resource, context):
            missing.append(f"{rtype}: {action} on {resource}")
    assert missing == []


def test_the_preview_execution_role_refuses_production_resources(preview_templates):
    policy = preview_policy()
    for rtype, action in needed(preview_templates):
        resource, context = resource_for(rtype, action, production=True)
        if resource == "*":
            continue  # listing log groups
        assert not allowed([policy], action, resource, context), f"{rtype}: {action} on {resource}"


def test_an_untagged_api_or_distribution_cannot_be_made_a_preview():
    policy = preview_policy()
    api = f"arn:aws:apigateway:{REGION}::/apis/a1b2c3d4e5"
    # production's resources carry the project's tag (stack tags propagate); a preview may not tag them as its own
    tagging = {
        "aws:RequestTag/dl:preview": "7",
        "aws:RequestTag/dl:project": PROJECT,
        "aws:ResourceTag/dl:project": PROJECT,
    }
    assert not allowed([policy], "apigateway:POST", f"arn:aws:apigateway:{REGION}::/tags/{api}", tagging)
    distribution = f"arn:aws:cloudfront::{ACCOUNT}:distribution/E1A2B3C4D5E6F7"
    assert not allowed([policy], "cloudfront:TagResource", distribution, tagging)
    assert not allowed([policy], "cloudfront:UpdateDistribution", distribution, {})
    assert allowed(
        [policy], "cloudfront:UpdateDistribution", distribution, {"aws:ResourceTag/dl:preview": "7"}
    )


def test_the_preview_boundary_allows_only_previews_logs_and_databases():
    doc = bootstrap.bootstrap_template(PROJECT)["Resources"]["PreviewPermissionsBoundary"]["Properties"]
    boundary = resolve(doc["PolicyDocument"], preview_names())
    bucket = f"arn:aws:s3:::{BUCKET}"
    log = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{PROJECT}--pr7--x:log-stream:1"
    assert allowed([boundary], "logs:PutLogEvents", log)
    assert allowed([boundary], "s3:GetObject", f"{bucket}/{PREVIEW_DATABASE}")
    assert not allowed([boundary], "s3:GetObject", f"{bucket}/databases/{'b' * 64}.db")  # production's
    assert not allowed([boundary], "s3:GetObject", f"{bucket}/keys/secrets-hmac.key")
    production_log = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{PROJECT}-x:log-stream:1"
    assert not allowed([boundary], "logs:PutLogEvents", production_log)


def test_the_production_execution_role_cannot_be_the_previews(preview_templates):
    """The CI preview role may pass only the preview execution role (tests/github/test_preview_role.py);
    the names differ, so no wildcard of one matches the other."""
    preview = dl_names.preview_execution_role_name(PROJECT, REGION)
    production = dl_names.execution_role_name(PROJECT, REGION)
    assert not matches(f"{PROJECT}--cfn-exec-*", preview) and not matches(
        f"{PROJECT}--cfn-preview-*", production
    )


def test_the_ci_preview_role_allows_every_call_a_preview_makes(project, monkeypatch):
    """Recorded like tests/aws/bootstrap/test_ci_roles.py: every call of `dl apply --preview` (a create, then a
    second push's update) and `dl destroy --preview`, with its resource, is allowed by the CI preview role, and
    every change set and stack deletion is made as the preview execution role."""
    from tests.apply.conftest import add_rows, dl, write_manifest
    from tests.aws.bootstrap.test_ci_roles import MANIFEST as ROLES_MANIFEST
    from tests.aws.bootstrap.test_ci_roles import record, refused, role_policy

    write_manifest(project, ROLES_MANIFEST)
    monkeypatch.setenv("SOURCE_TOKEN", "s3cret-value")
    assert dl("bootstrap").exit_code == 0  # administrator credentials
    assert dl("apply", "--yes", "--no-verify").exit_code == 0  # production, as the apply role would
    recorder = record(monkeypatch)
    policy = role_policy("preview-role-policy.json")
    preview_exec = f"arn:aws:iam::{ACCOUNT}:role/{dl_names.preview_execution_role_name('roles', REGION)}"
    for phase in (
        ("apply", "--preview", "7", "--yes", "--no-verify", "--all"),
        ("apply", "--preview", "7", "--yes", "--no-verify", "--all"),  # a second push: an update
        ("destroy", "--preview", "7", "--yes"),
    ):
        add_rows(project / "alpha.db", "orders", 1)
        recorder.requests.clear()
        result = dl(*phase)
        assert result.exit_code == 0, result.output
        assert recorder.requests, phase
        assert refused(policy, recorder.requests) == [], phase
        writes = [
            c
            for a, _, c in recorder.requests
            if a in ("cloudformation:CreateChangeSet", "cloudformation:DeleteStack")
        ]
        assert writes and all(c.get("cloudformation:RoleArn") == preview_exec for c in writes), phase
