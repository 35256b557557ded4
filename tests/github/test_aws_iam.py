"""The AWS side of the GitHub setup (docs/aws-iam/*.json): OIDC trust scoped to the repository and branch,
a read-only plan role that can read no secret, and an apply role that changes the project's stacks only through
the bootstrap's execution role. Policies are evaluated offline (tests/iam_policy.py), and the calls dl itself
makes in a plan / apply / status / destroy against the emulator are checked against the role that makes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.iam_policy import allowed

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "docs" / "aws-iam"
PROVIDER = "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"
WRITE_VERB = re.compile(
    r":(Create|Update|Delete|Put|Execute|Add|Remove|Tag|Untag|Change|Publish|Request|Pass|Abort)"
)
# Actions AWS cannot restrict to named resources (or that only list): the only ones allowed on "*".
# DescribeLogGroups: the plan-time conflict check lists log groups by name prefix; it reads names only
UNSCOPABLE = {
    "cloudformation:DescribeStacks",
    "cloudformation:ListStacks",
    "route53:ListHostedZones",
    "logs:DescribeLogGroups",
    # List-level actions without a resource type (Service Authorization Reference): apply counts the
    # account's distributions and functions for its quota warning (dl/aws/quotas.py)
    "cloudfront:ListDistributions",
    "cloudfront:ListFunctions",
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


def allows(statement: dict) -> bool:
    return statement["Effect"] == "Allow"


ACCOUNT = "123456789012"  # moto's account


def policy(name: str, project: str = "data") -> dict:
    """A documented policy with its placeholders filled in, as an account would hold it."""
    text = (IAM / name).read_text(encoding="utf-8").replace("ACCOUNT_ID", ACCOUNT).replace("PROJECT", project)
    return json.loads(text)


def test_the_plan_role_cannot_change_anything():
    granted = [a for s in statements("plan-role-policy.json") if allows(s) for a in actions(s)]
    assert granted and [a for a in granted if WRITE_VERB.search(a) or a.endswith("*")] == []


@pytest.mark.parametrize("name", ["plan-role-policy.json", "apply-role-policy.json"])
def test_wildcard_resources_only_for_actions_aws_cannot_scope(name):
    for statement in filter(allows, statements(name)):
        assert not any(a == "*" or a.endswith(":*") for a in actions(statement))
        if "*" in as_list(statement["Resource"]):
            assert set(actions(statement)) <= UNSCOPABLE, statement["Sid"]
        else:
            assert all(
                # S3 bucket and Route 53 hosted zone ARNs carry no account id (AWS's ARN formats)
                "ACCOUNT_ID" in r or r.startswith(("arn:aws:s3:::PROJECT--", "arn:aws:route53:::hostedzone/"))
                for r in as_list(statement["Resource"])
            ), statement["Sid"]


def test_the_apply_role_passes_only_the_execution_role_to_cloudformation():
    [passing] = [s for s in statements("apply-role-policy.json") if "iam:PassRole" in actions(s)]
    assert actions(passing) == ["iam:PassRole"]
    assert passing["Resource"] == "arn:aws:iam::ACCOUNT_ID:role/PROJECT--cfn-exec-*"
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}


def test_the_apply_role_is_cloudformation_the_bucket_and_reads():
    """No resource service is written directly: CloudFormation does that, as the execution role."""
    granted = {a for s in filter(allows, statements("apply-role-policy.json")) for a in actions(s)}
    services = {a.split(":")[0] for a in granted}
    # logs: only DescribeLogGroups, route53: only reads (the plan-time conflict checks)
    assert services == {"cloudformation", "s3", "iam", "cloudfront", "lambda", "route53", "logs"}
    assert {a for a in granted if a.startswith("logs:")} == {"logs:DescribeLogGroups"}
    assert {a for a in granted if a.startswith("route53:")} == {
        "route53:ListHostedZones",
        "route53:ListResourceRecordSets",
    }
    assert {a for a in granted if a.startswith("iam:")} == {"iam:PassRole"}
    assert {a for a in granted if a.startswith("lambda:")} == {"lambda:GetFunctionUrlConfig"}
    assert {a for a in granted if a.startswith("cloudfront:")} == {
        "cloudfront:CreateInvalidation",
        "cloudfront:GetDistribution",
        "cloudfront:ListConflictingAliases",
        "cloudfront:ListDistributions",  # counted for the quota warning (dl/aws/quotas.py)
        "cloudfront:ListFunctions",
    }


STACK = "arn:aws:cloudformation:eu-west-1:123456789012:stack/{}/0f6c1b1e-1111-2222-3333-444455556666"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/data--cfn-exec-eu-west-1"


def test_the_apply_role_changes_stacks_only_as_the_execution_role_and_never_the_bootstrap():
    apply_role = policy("apply-role-policy.json")
    mine = {"aws:ResourceTag/dl:project": "data", "aws:RequestTag/dl:project": "data"}
    for stack in ("data-alpha", "data-alpha--certificate", "data--cert-0123456789abcdef"):
        arn = STACK.format(stack)
        assert allowed(
            [apply_role], "cloudformation:CreateChangeSet", arn, {**mine, "cloudformation:RoleArn": EXEC_ROLE}
        )
        other_role = {**mine, "cloudformation:RoleArn": f"arn:aws:iam::{ACCOUNT}:role/data-admin"}
        assert not allowed([apply_role], "cloudformation:CreateChangeSet", arn, other_role)
        assert allowed(
            [apply_role], "cloudformation:DeleteStack", arn, {**mine, "cloudformation:RoleArn": EXEC_ROLE}
        )
    bootstrap_stack = STACK.format("data--bootstrap")
    for action in ("CreateChangeSet", "ExecuteChangeSet", "DeleteStack"):
        context = {**mine, "cloudformation:RoleArn": EXEC_ROLE}
        assert not allowed([apply_role], f"cloudformation:{action}", bootstrap_stack, context), action
    assert allowed(
        [apply_role], "iam:PassRole", EXEC_ROLE, {"iam:PassedToService": "cloudformation.amazonaws.com"}
    )
    assert not allowed(
        [apply_role], "iam:PassRole", EXEC_ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}
    )
    assert not allowed([apply_role], "iam:CreateRole", "*")


def test_the_apply_role_touches_no_stack_of_a_project_whose_name_starts_alike():
    """`data-*` matches `data-eu-x`; the dl:project tag on every stack refuses it."""
    apply_role = policy("apply-role-policy.json")
    theirs = STACK.format("data-eu-x")
    context = {"aws:ResourceTag/dl:project": "data-eu", "cloudformation:RoleArn": EXEC_ROLE}
    for action in ("CreateChangeSet", "ExecuteChangeSet", "DeleteStack", "GetTemplate", "DeleteChangeSet"):
        assert not allowed([apply_role], f"cloudformation:{action}", theirs, context), action
    new = {"aws:RequestTag/dl:project": "data-eu", "cloudformation:RoleArn": EXEC_ROLE}
    assert not allowed([apply_role], "cloudformation:CreateChangeSet", STACK.format("data-eu-y"), new)
    assert not allowed(
        [apply_role],
        "cloudfront:CreateInvalidation",
        f"arn:aws:cloudfront::{ACCOUNT}:distribution/E1",
        context,
    )


def test_the_plan_role_cannot_read_the_derivation_key_or_the_origin_secret():
    plan_role = policy("plan-role-policy.json")
    bucket = "arn:aws:s3:::data--bootstrap-artifactbucket-1a2b3c4d"
    assert allowed([plan_role], "s3:GetObject", f"{bucket}/state/secrets-fingerprint.key")
    assert allowed([plan_role], "s3:GetObject", f"{bucket}/packages/{'a' * 64}.zip")
    for key in ("keys/secrets-hmac.key", "keys/anything"):
        for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes"):
            assert not allowed([plan_role], action, f"{bucket}/{key}"), (action, key)
    for action in (
        "cloudfront:GetDistribution",
        "cloudfront:GetDistributionConfig",
        "cloudfront:ListDistributions",
        "cloudfront:ListDistributionsByWebACLId",
    ):
        for resource in ("*", f"arn:aws:cloudfront::{ACCOUNT}:distribution/E1A2B3C4D5E6F7"):
            assert not allowed([plan_role], action, resource), action
    # the function roles cannot either: their boundary reads databases/ only (tests/aws/bootstrap)
