"""The CI preview role (docs/aws-iam/preview-role-policy.json), evaluated offline: the emulator does not
evaluate IAM resources and conditions, so tests/iam_policy.py does, by the IAM policy evaluation rules.

A pull request controls its own workflow: whatever the preview job runs, with this role it can change only
``<project>--pr*`` stacks, only through the preview execution role, and write only under ``previews/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.iam_policy import allowed

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
BUCKET = "shop--bootstrap-artifactbucket-abc123"
PREVIEW_EXEC = f"arn:aws:iam::{ACCOUNT}:role/shop--cfn-preview-{REGION}"
PRODUCTION_EXEC = f"arn:aws:iam::{ACCOUNT}:role/shop--cfn-exec-{REGION}"


def policy(name: str = "preview-role-policy.json", project: str = "shop") -> dict:
    text = (ROOT / "docs" / "aws-iam" / name).read_text(encoding="utf-8")
    return json.loads(text.replace("PROJECT", project).replace("ACCOUNT_ID", ACCOUNT))


def stack(name: str) -> str:
    return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/0f0e0d0c-1111-2222-3333-444455556666"


def obj(key: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{key}"


def can(action: str, resource: str, context: dict | None = None) -> bool:
    return allowed([policy()], action, resource, context or {})


def as_role(arn: str) -> dict:
    return {"cloudformation:RoleArn": arn}


@pytest.mark.parametrize("action", ["cloudformation:CreateChangeSet", "cloudformation:DeleteStack"])
def test_preview_stacks_change_only_through_the_preview_execution_role(action):
    assert can(action, stack("shop--pr7--alpha"), as_role(PREVIEW_EXEC))
    assert not can(action, stack("shop--pr7--alpha"), as_role(PRODUCTION_EXEC))
    assert not can(action, stack("shop--pr7--alpha"))  # as the caller itself: no


@pytest.mark.parametrize(
    "name",
    [
        "shop-alpha",
        "shop--bootstrap",
        "shop--cert-0123456789abcdef",
        "shop-x--pr7--alpha",
        "other--pr7--alpha",
    ],
)
@pytest.mark.parametrize(
    "action",
    [
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteStack",
        "cloudformation:UpdateStack",
        "cloudformation:CreateStack",
    ],
)
def test_production_and_other_projects_stacks_are_refused(action, name):
    assert not can(action, stack(name), as_role(PREVIEW_EXEC))
    assert not can(action, stack(name), as_role(PRODUCTION_EXEC))


def test_only_the_preview_execution_role_may_be_passed_and_only_to_cloudformation():
    to_cfn = {"iam:PassedToService": "cloudformation.amazonaws.com"}
    assert can("iam:PassRole", PREVIEW_EXEC, to_cfn)
    assert not can("iam:PassRole", PREVIEW_EXEC, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not can("iam:PassRole", PRODUCTION_EXEC, to_cfn)
    assert not can("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/dl/shop/shop-alpha-FunctionRole-x", to_cfn)


@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject", "s3:GetObject"])
def test_artifacts_only_under_previews(action):
    assert can(action, obj("previews/packages/" + "a" * 64 + ".zip"))
    assert can(action, obj("previews/databases/" + "b" * 64 + ".db"))
    for key in (
        "packages/x.zip",
        "databases/y.db",
        "templates/z.json",
        "keys/secrets-hmac.key",
        "state/hosts/x",
    ):
        assert not can(action, obj(key)), key


def test_the_derivation_key_is_unreadable_and_the_fingerprint_key_readable():
    assert not can("s3:GetObject", obj("keys/secrets-hmac.key"))  # production's derived secrets
    assert can("s3:GetObject", obj("state/secrets-fingerprint.key"))  # as the plan role may
    assert can("s3:GetObject", obj("previews/keys/secrets.key"))  # the previews' own
    assert not can("s3:PutObject", obj("state/secrets-fingerprint.key"))


def test_the_preview_role_is_trusted_for_pull_requests_only():
    [statement] = json.loads((ROOT / "docs/aws-iam/trust-preview-role.json").read_text())["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:OWNER/REPO:pull_request",
        }
    }
