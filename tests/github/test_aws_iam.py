"""The AWS side of the GitHub setup (docs/aws-iam/*.json): OIDC trust scoped to the repository and branch,
a read-only plan role, and an apply role whose wildcards are limited to what AWS cannot scope."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "docs" / "aws-iam"
PROVIDER = "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"
WRITE_VERB = re.compile(
    r":(Create|Update|Delete|Put|Execute|Add|Remove|Tag|Untag|Change|Publish|Request|Pass|Abort)"
)
# Actions AWS cannot restrict to named resources (or that only list): the only ones allowed on "*".
UNSCOPABLE = {
    "cloudformation:DescribeStacks",
    "cloudformation:ListStacks",
    "logs:DescribeLogGroups",
    "route53:ListHostedZones",
    "route53:ListHostedZonesByName",
    "route53:GetHostedZone",
    "route53:ListResourceRecordSets",
    "route53:ChangeResourceRecordSets",
    "route53:GetChange",
    "cloudfront:GetDistribution",
    "lambda:GetFunctionUrlConfig",
    "acm:RequestCertificate",
    "acm:DescribeCertificate",
    "acm:DeleteCertificate",
    "acm:AddTagsToCertificate",
    "acm:ListTagsForCertificate",
}
# CloudFormation resource type prefix -> IAM service prefix.
SERVICES = {
    "ApiGatewayV2": "apigateway",
    "CertificateManager": "acm",
    "CloudFront": "cloudfront",
    "IAM": "iam",
    "Lambda": "lambda",
    "Logs": "logs",
    "Route53": "route53",
    "S3": "s3",
}


def load(name: str) -> dict:
    return json.loads((IAM / name).read_text(encoding="utf-8"))


def statements(name: str) -> list[dict]:
    policy = load(name)
    assert policy["Version"] == "2012-10-17"
    return policy["Statement"]


def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else value


def as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize(
    ("name", "subjects"),
    [
        ("trust-plan-role.json", {"repo:OWNER/REPO:pull_request", "repo:OWNER/REPO:ref:refs/heads/main"}),
        # the example workflow's apply job runs in this environment (its token names it, not the branch)
        ("trust-apply-role.json", {"repo:OWNER/REPO:environment:datasette-lambda"}),
    ],
)
def test_trust_policies_admit_only_this_repository_and_branch(name, subjects):
    [statement] = statements(name)
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(statement["Condition"]) == {"StringEquals"}  # exact matches only: no StringLike wildcards
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert set(as_list(condition["token.actions.githubusercontent.com:sub"])) == subjects


def test_the_plan_role_cannot_change_anything():
    granted = [a for s in statements("plan-role-policy.json") for a in actions(s)]
    assert granted and [a for a in granted if WRITE_VERB.search(a) or a.endswith("*")] == []


@pytest.mark.parametrize("name", ["plan-role-policy.json", "apply-role-policy.json"])
def test_wildcard_resources_only_for_actions_aws_cannot_scope(name):
    for statement in statements(name):
        assert statement["Effect"] == "Allow"
        assert not any(a == "*" or a.endswith(":*") for a in actions(statement))
        if "*" in as_list(statement["Resource"]):
            assert set(actions(statement)) <= UNSCOPABLE, statement["Sid"]
        else:
            assert all(
                "ACCOUNT_ID" in r or r.startswith("arn:aws:s3:::") or "apigateway" in r
                for r in as_list(statement["Resource"])
            ), statement["Sid"]


def test_pass_role_is_limited_to_lambda():
    [passing] = [s for s in statements("apply-role-policy.json") if "iam:PassRole" in actions(s)]
    assert actions(passing) == ["iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}


def test_the_apply_role_covers_every_service_in_the_templates():
    source = (ROOT / "dl" / "templates.py").read_text(encoding="utf-8")
    types = set(re.findall(r"AWS::(\w+)::\w+", source))
    granted = {a.split(":")[0] for s in statements("apply-role-policy.json") for a in actions(s)}
    missing = {t for t in types if SERVICES.get(t) not in granted}
    assert not missing, f"resource types {missing} need permissions in docs/aws-iam/apply-role-policy.json"
