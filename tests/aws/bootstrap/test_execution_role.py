"""The execution role grants what CloudFormation's own resource handlers call, on this project's resources only.

Handler permissions come from the resource provider schemas cfn-lint ships (``cfnlint/data/schemas/providers/
<region>.json`` maps a type to ``schemas/resources/<file>.json``; each has ``handlers.{create,read,update,
delete}.permissions``), for every resource type of every template variant, built from a real manifest. The
role's policy (from the bootstrap template, intrinsics resolved) is evaluated offline (tests/iam_policy.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import cfnlint
import pytest

from dl.aws import bootstrap
from dl.aws import names as dl_names
from dl.aws.templates import InstanceArtifacts, certificate_template, instance_template
from dl.commands.options import load
from tests.conftest import make_db
from tests.iam_policy import allowed, resolve

PROJECT = "data"
OTHER = "data-eu"  # a project whose names start with "data-": nothing of it may match
REGION = "eu-west-1"
ACCOUNT = "123456789012"
BUCKET = "data--bootstrap-artifactbucket-1a2b3c4d5e6f"
PACKAGE_KEY = "packages/" + "a" * 64 + ".zip"
CERT_ARN = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0f6c1b1e-1111-2222-3333-444455556666"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
HANDLERS = ("create", "read", "update", "delete")  # what stack operations call ("list" is for discovery)

MANIFEST = f"""\
project: data
region: eu-west-1
instances:
  plain:
    databases: [a.db]
  nocdn:
    databases: [a.db]
    cdn: false
  api:
    databases: [a.db]
    endpoint: http-api
  apinocdn:
    databases: [a.db]
    endpoint: http-api
    cdn: false
  zoned:
    databases: [a.db]
    domain: data.example.com
    prefix: /v1/
  byarn:
    databases: [a.db]
    domain: example.org
    certificate_arn: {CERT_ARN}
  secret:
    databases: [a.db]
    secrets: {{API_TOKEN: SOURCE_TOKEN}}
"""

# Actions a handler calls only for a property dl's templates never set: (type, action) -> that property. The
# test below checks that no template sets it, so this list cannot hide a real need.
UNUSED = {
    ("AWS::Lambda::Function", "ec2:*"): "VpcConfig",
    ("AWS::Lambda::Function", "elasticfilesystem:*"): "FileSystemConfigs",
    ("AWS::Lambda::Function", "s3files:*"): "FileSystemConfigs",
    ("AWS::Lambda::Function", "kms:*"): "KmsKeyArn",
    ("AWS::Logs::LogGroup", "firehose:*"): "DataProtectionPolicy",
    ("AWS::Logs::LogGroup", "s3:REST.PUT.OBJECT"): "DataProtectionPolicy",
    ("AWS::ApiGatewayV2::Api", "s3:getObject"): "BodyS3Location",
    ("AWS::ApiGatewayV2::Integration", "iam:PassRole"): "CredentialsArn",
    ("AWS::CertificateManager::Certificate", "acm-pca:*"): "CertificateAuthorityArn",
}
# Refused by design: a role of the project's stacks never loses its permissions boundary.
REFUSED = {("AWS::IAM::Role", "iam:DeleteRolePermissionsBoundary")}
# on "*" only: the Service Authorization Reference names no resource type for them
UNSCOPED = {
    "logs:DescribeLogGroups",
    "route53:ListHostedZones",
    "acm:RequestCertificate",
    "cloudfront:CreateDistribution",
    "cloudfront:CreateDistributionWithTags",
    "cloudfront:CreateFunction",
}
NO_CONDITION_KEYS = {"cloudfront:CreateFunction"}
# The Distribution handlers list the CreateDistributionWithTags API, which is no IAM action (cfn-lint's IAM
# action list refuses it, W3037): CloudFront's API permissions table authorises it as these two
AUTHORISED_AS = {
    "cloudfront:CreateDistributionWithTags": ("cloudfront:CreateDistribution", "cloudfront:TagResource"),
}  # AWS puts no tag keys in its request context


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, dict]:
    """{name: template} of every variant (instance and certificate stacks), from a real manifest."""
    folder = tmp_path_factory.mktemp("variants")
    make_db(folder / "a.db")
    (folder / "datasette-lambda.yml").write_text(MANIFEST)
    manifest = load(str(folder / "datasette-lambda.yml"))
    built = {}
    for name, instance in manifest.instances.items():
        artifacts = InstanceArtifacts(
            bucket=BUCKET,
            package_key=PACKAGE_KEY,
            database_keys=("databases/" + "b" * 64 + ".db",),
            certificate_arn=CERT_ARN if instance.domain else None,
            hosted_zone_id="Z0123456789ABCDEFGHIJ" if name == "zoned" else None,
        )
        built[name] = instance_template(PROJECT, instance, artifacts, spec={"instance": name})
        if instance.domain:
            built[f"{name}-certificate"] = certificate_template(PROJECT, instance, "Z0123456789ABCDEFGHIJ")
    return built


def names(project: str) -> dict[str, str]:
    return {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "ArtifactBucket.Arn": f"arn:aws:s3:::{BUCKET if project == PROJECT else project + '--bootstrap-x'}",
        "PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/{dl_names.boundary_policy_name(project, REGION)}",
    }


def execution_policy() -> dict:
    template = bootstrap.bootstrap_template(PROJECT)
    (policy,) = template["Resources"]["ExecutionRole"]["Properties"]["Policies"]
    return resolve(policy["PolicyDocument"], names(PROJECT))


def handler_permissions(resource_type: str) -> set[str]:
    provider = json.loads((SCHEMAS / "providers" / f"{REGION}.json").read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{provider[resource_type]}.json").read_text())
    handlers = schema.get("handlers") or {}
    return {p for h in HANDLERS for p in (handlers.get(h) or {}).get("permissions", [])}


def resource_types(templates: dict[str, dict]) -> set[str]:
    return {r["Type"] for t in templates.values() for r in t["Resources"].values()}


def own(project: str, resource_type: str, action: str) -> tuple[str, dict]:
    """The resource an action of a handler acts on, for an instance `x` of `project`, and the request context."""
    service = action.split(":")[0].lower()
    context = {"aws:ResourceTag/dl:project": project, "aws:RequestTag/dl:project": project}
    instance = f"{project}-x"
    if action in UNSCOPED:
        return "*", ({} if action in NO_CONDITION_KEYS else context)
    if service == "logs":
        return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{instance}:*", context
    if service == "lambda":
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{instance}", context
    if service == "iam":
        context["iam:PermissionsBoundary"] = names(project)["PermissionsBoundary"]
        context["iam:PassedToService"] = "lambda.amazonaws.com"
        return f"arn:aws:iam::{ACCOUNT}:role/dl/{project}/{instance}-FunctionRole-1A2B3C", context
    if service == "s3":
        return f"{names(project)['ArtifactBucket.Arn']}/{PACKAGE_KEY}", context
    if service == "apigateway":
        return f"arn:aws:apigateway:{REGION}::/apis/a1b2c3d4e5", context
    if service == "cloudfront":
        if resource_type == "AWS::CloudFront::Function":
            return f"arn:aws:cloudfront::{ACCOUNT}:function/{instance}-1a2b3c4d", context
        return f"arn:aws:cloudfront::{ACCOUNT}:distribution/E1A2B3C4D5E6F7", context
    if service == "route53":
        if action.lower() == "route53:getchange":
            return "arn:aws:route53:::change/C0123456789ABC", context
        return "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ", context
    if service == "acm":
        return CERT_ARN, context
    raise AssertionError(f"{resource_type} {action}: no resource known for this service")


def needed(templates) -> list[tuple[str, str]]:
    """(type, action) CloudFormation calls for dl's templates, without the documented exceptions."""
    from tests.iam_policy import matches

    out = []
    for rtype in sorted(resource_types(templates)):
        for listed in sorted(handler_permissions(rtype)):
            for action in AUTHORISED_AS.get(listed, (listed,)):
                if (rtype, action) in REFUSED:
                    continue
                if any(t == rtype and matches(p, action, ignore_case=True) for t, p in UNUSED):
                    continue
                out.append((rtype, action))
    return out


def test_the_variants_use_every_resource_type_dl_knows(templates):
    """Sanity: the manifest's variants really produce the types whose handlers are checked."""
    assert resource_types(templates) >= {
        "AWS::Logs::LogGroup",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::Lambda::Url",
        "AWS::Lambda::Permission",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Stage",
        "AWS::CloudFront::Function",
        "AWS::CloudFront::Distribution",
        "AWS::Route53::RecordSet",
        "AWS::CertificateManager::Certificate",
    }


def test_the_execution_role_grants_every_handler_permission(templates):
    policy = execution_policy()
    missing = []
    for rtype, action in needed(templates):
        resource, context = own(PROJECT, rtype, action)
        if not allowed([policy], action, resource, context):
            missing.append(f"{rtype}: {action} on {resource}")
    assert missing == []


def test_the_exceptions_are_for_properties_no_template_sets(templates):
    for (rtype, _), prop in UNUSED.items():
        for template in templates.values():
            for resource in template["Resources"].values():
                if resource["Type"] == rtype:
                    assert prop not in resource.get("Properties", {}), (rtype, prop)
    for template in templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::IAM::Role":
                assert resource["Properties"]["PermissionsBoundary"] == dl_names.boundary_arn_sub(PROJECT)
                assert resource["Properties"]["Path"] == "/dl/data/"


def test_nothing_of_another_project_whose_name_starts_alike(templates):
    """`data-*` matches `data-eu-x`: the IAM path refuses by name, the dl:project tag guard refuses the rest."""
    policy = execution_policy()
    for rtype, action in needed(templates):
        resource, context = own(OTHER, rtype, action)
        if resource == "*":
            continue  # unscopable (lists, RequestCertificate): covered by the request-tag guard below
        assert not allowed([policy], action, resource, context), f"{rtype}: {action} on {resource}"
    # the IAM path alone refuses the other project's roles, whatever the tags say
    role = f"arn:aws:iam::{ACCOUNT}:role/dl/{OTHER}/{OTHER}-x-FunctionRole-1A2B3C"
    context = {"iam:PermissionsBoundary": names(PROJECT)["PermissionsBoundary"]}
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRole", "iam:PassRole"):
        assert not allowed([policy], action, role, context), action
    # creating something tagged for another project is refused
    assert not allowed([policy], "acm:RequestCertificate", "*", {"aws:RequestTag/dl:project": OTHER})


def test_roles_only_with_the_boundary_and_passed_to_lambda_only():
    policy = execution_policy()
    role = f"arn:aws:iam::{ACCOUNT}:role/dl/{PROJECT}/{PROJECT}-x-FunctionRole-1A2B3C"
    boundary = names(PROJECT)["PermissionsBoundary"]
    for action in (
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
    ):
        assert allowed([policy], action, role, {"iam:PermissionsBoundary": boundary})
        assert not allowed([policy], action, role, {})
        assert not allowed([policy], action, role, {"iam:PermissionsBoundary": boundary + "-other"})
    assert not allowed([policy], "iam:DeleteRolePermissionsBoundary", role, {})
    assert allowed([policy], "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allowed([policy], "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
    # nothing of the bootstrap itself: not the execution role, not the boundary
    for arn in (
        f"arn:aws:iam::{ACCOUNT}:role/{dl_names.execution_role_name(PROJECT, REGION)}",
        boundary,
    ):
        for action in ("iam:PutRolePolicy", "iam:DeleteRole", "iam:CreatePolicyVersion", "iam:DeletePolicy"):
            assert not allowed([policy], action, arn, {"iam:PermissionsBoundary": boundary}), (action, arn)


def test_the_boundary_allows_only_own_logs_and_databases():
    doc = bootstrap.bootstrap_template(PROJECT)["Resources"]["PermissionsBoundary"]["Properties"]
    boundary = resolve(doc["PolicyDocument"], names(PROJECT))
    bucket = names(PROJECT)["ArtifactBucket.Arn"]
    log = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{PROJECT}-x:log-stream:1"
    assert allowed([boundary], "logs:PutLogEvents", log)
    assert allowed([boundary], "s3:GetObject", f"{bucket}/databases/{'b' * 64}.db")
    assert not allowed([boundary], "s3:GetObject", f"{bucket}/keys/secrets-hmac.key")
    assert not allowed([boundary], "s3:PutObject", f"{bucket}/databases/{'b' * 64}.db")
    assert not allowed([boundary], "iam:CreateRole", "*")
    assert not allowed([boundary], "lambda:InvokeFunction", "*")


def test_the_evaluator_can_refuse():
    """The checks above can fail: an action the role lacks, a resource outside its patterns."""
    policy = execution_policy()
    assert not allowed([policy], "ec2:RunInstances", "*")
    assert not allowed(
        [policy], "lambda:CreateFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other-x"
    )
    assert not allowed(
        [policy], "s3:GetObject", f"{names(PROJECT)['ArtifactBucket.Arn']}/keys/secrets-hmac.key"
    )


def test_an_upgrade_can_remove_what_older_releases_made_per_instance():
    """Before version 2: function roles at the path / and a cache policy and OAC per instance. CloudFormation,
    as the execution role, deletes them when the instance moves to the boundary and the shared resources."""
    policy = execution_policy()
    legacy_role = f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-x-FunctionRole-1A2B3C"
    mine = {"aws:ResourceTag/dl:project": PROJECT}
    for action in ("iam:GetRole", "iam:ListRolePolicies", "iam:DeleteRolePolicy", "iam:DeleteRole"):
        assert allowed([policy], action, legacy_role, mine), action
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole"):  # never a new unbounded role
        assert not allowed([policy], action, legacy_role, {"iam:PassedToService": "lambda.amazonaws.com"})
    theirs = f"arn:aws:iam::{ACCOUNT}:role/{OTHER}-x-FunctionRole-1A2B3C"
    assert not allowed([policy], "iam:DeleteRole", theirs, {"aws:ResourceTag/dl:project": OTHER})
    for resource in ("cache-policy/658327ea-f89d-4fab-a63d-7e88639e58f6", "origin-access-control/E1A2B3C4"):
        arn = f"arn:aws:cloudfront::{ACCOUNT}:{resource}"
        kind = "CachePolicy" if "cache" in resource else "OriginAccessControl"
        assert allowed([policy], f"cloudfront:Delete{kind}", arn)
        assert not allowed([policy], f"cloudfront:Create{kind}", "*")  # the shared ones are the bootstrap's
