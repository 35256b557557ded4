"""Every call dl itself makes, with its resource, is allowed by the CI role that makes it (docs/aws-iam).

An administrator bootstraps (not checked: that is what `dl bootstrap` and administrator credentials are for);
then plan and status run as the plan role, and apply and destroy as the apply role. Each call is recorded with
its parameters at botocore's ``before-parameter-build`` hook, turned into the IAM action and resource AWS
authorises (Service Authorization Reference: S3 HeadObject is s3:GetObject, ListObjectsV2 is s3:ListBucket,
change-set operations are authorised on their stack, a service role needs iam:PassRole), and evaluated
offline against the documented policy with its placeholders filled in (tests/iam_policy.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.apply.conftest import add_rows, dl, write_manifest
from tests.iam_policy import allowed

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PROJECT = "roles"
MANIFEST = """\
project: roles
instances:
  alpha:
    databases: [alpha.db]
    secrets: {API_TOKEN: SOURCE_TOKEN}
  beta:
    databases: [beta.db]
    endpoint: http-api
    cdn: false
"""
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "DeleteObjects": "DeleteObject",
}


NOT_ON_THE_EMULATOR = {
    "cloudfront:CreateInvalidation",  # an updated instance behind CloudFront
    "cloudfront:GetDistribution",  # its host, recorded for plan (dl/aws/hosts.py)
    "route53:ListHostedZones",  # the zone of a custom domain
    "s3:AbortMultipartUpload",  # a large upload (64 MiB parts) that fails
    "s3:ListMultipartUploadParts",
    # without it S3 answers a missing key with 403, not 404 (a project whose fingerprint key is not made yet)
    "s3:ListBucket",
    "cloudformation:DeleteChangeSet",  # an empty change set on AWS (FAILED), or one an interruption left
    "lambda:GetFunctionUrlConfig",  # the HTTP check after apply (--no-verify here: moto's URLs serve nothing)
    # tags given to CreateChangeSet: AWS may authorise tag-on-create as TagResource (kept; not shown here)
    "cloudformation:TagResource",
    # plan-time conflict checks of a custom domain (dl/aws/conflicts.py): records for the domain, and an alias on
    # another distribution (moto has no CloudFront; tests/deploy/test_conflicts.py drives it with Stubber)
    "route53:ListResourceRecordSets",
    "cloudfront:ListConflictingAliases",
}


def role_policy(name: str) -> dict:
    text = (ROOT / "docs" / "aws-iam" / name).read_text(encoding="utf-8")
    return json.loads(text.replace("ACCOUNT_ID", ACCOUNT).replace("PROJECT", PROJECT))


class Recorder:
    """(IAM action, resource, context) of every call dl makes, in the phase being recorded."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.change_sets: dict[str, str] = {}  # change set id -> stack

    def stack_arn(self, name: str) -> str:
        return (
            name if name.startswith("arn:") else f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/*"
        )

    def before(self, params, model, **_):
        service, operation = model.service_model.service_name, model.name
        context = {"aws:ResourceTag/dl:project": PROJECT}
        resource = "*"
        if service == "cloudformation":
            stack = params.get("StackName") or self.change_sets.get(params.get("ChangeSetName", ""))
            if stack:
                resource = self.stack_arn(stack)
            elif params.get("ChangeSetName"):
                raise AssertionError(f"{operation} of an unknown change set")
            for tag in params.get("Tags") or []:
                context[f"aws:RequestTag/{tag['Key']}"] = tag["Value"]
            if params.get("RoleARN"):
                context["cloudformation:RoleArn"] = params["RoleARN"]
                self.requests.append(
                    (
                        "iam:PassRole",
                        params["RoleARN"],
                        {"iam:PassedToService": "cloudformation.amazonaws.com"},
                    )
                )
        elif service == "s3":
            operation = S3_ACTIONS.get(operation, operation)
            resource = f"arn:aws:s3:::{params['Bucket']}"
            if params.get("Key") or params.get("Delete"):
                keys = (
                    [params["Key"]] if params.get("Key") else [o["Key"] for o in params["Delete"]["Objects"]]
                )
                for key in keys[1:]:
                    self.requests.append((f"s3:{operation}", f"{resource}/{key}", context))
                resource = f"{resource}/{keys[0]}"
        elif service == "lambda":
            resource = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{params['FunctionName']}"
        elif service == "cloudfront" and operation.startswith("List") and "DistributionId" not in params:
            resource = "*"  # account-wide lists (the quota warning: ListDistributions, ListFunctions)
        elif service == "cloudfront":
            resource = (
                f"arn:aws:cloudfront::{ACCOUNT}:distribution/{params.get('Id') or params['DistributionId']}"
            )
        self.requests.append((f"{service}:{operation}", resource, context))

    def after(self, parsed, model, params=None, **_):
        if model.name == "CreateChangeSet" and "Id" in parsed:
            self.change_sets[parsed["Id"]] = parsed.get("StackId") or ""


def record(monkeypatch) -> Recorder:
    from dl.aws import client as dl_aws

    recorder = Recorder()
    original = dl_aws.Aws.client

    def client(self, service, region=None, *, retries=True):
        made = original(self, service, region, retries=retries)
        if not getattr(made, "_dl_recorded", False):
            made.meta.events.register("before-parameter-build.*.*", recorder.before)
            made.meta.events.register("after-call.cloudformation.CreateChangeSet", recorder.after)
            made._dl_recorded = True
        return made

    monkeypatch.setattr(dl_aws.Aws, "client", client)
    return recorder


def refused(policy: dict, requests) -> list[str]:
    return sorted({f"{a} on {r}" for a, r, c in requests if not allowed([policy], a, r, c)})


def test_each_ci_role_allows_every_call_dl_makes_with_it(project, monkeypatch):
    write_manifest(project, MANIFEST)
    monkeypatch.setenv("SOURCE_TOKEN", "s3cret-value")
    assert dl("bootstrap").exit_code == 0  # administrator credentials
    recorder = record(monkeypatch)
    plan_role, apply_role = role_policy("plan-role-policy.json"), role_policy("apply-role-policy.json")
    plan_used: set[str] = set()
    apply_used: set[str] = set()

    for phase in (
        ("plan",),
        ("apply", "--yes", "--no-verify"),
        ("plan",),
        ("status",),
        ("apply", "--yes", "--no-verify"),  # data changed: an update
        ("destroy", "beta", "--yes"),
        ("plan",),
    ):
        if phase == ("apply", "--yes", "--no-verify") and recorder.change_sets:
            add_rows(project / "alpha.db", "orders", 1)
        recorder.requests.clear()
        result = dl(*phase)
        assert result.exit_code == 0, result.output
        policy = plan_role if phase[0] in ("plan", "status") else apply_role
        assert recorder.requests, phase
        assert refused(policy, recorder.requests) == [], phase
        used = plan_used if policy is plan_role else apply_used
        used |= {a for a, _, _ in recorder.requests}

    # no grant goes unused: each is a call dl made here, or one the emulator cannot show (CloudFront and
    # custom domains: moto's CloudFormation creates no distribution)
    for name, used in (("plan-role-policy.json", plan_used), ("apply-role-policy.json", apply_used)):
        allows = [s for s in role_policy(name)["Statement"] if s["Effect"] == "Allow"]
        granted = {
            a for s in allows for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }
        assert granted - used - NOT_ON_THE_EMULATOR == set(), name

    # the plan role's calls never touched the derivation key or a distribution
    recorder.requests.clear()
    assert dl("plan").exit_code == 0
    assert not [r for a, r, _ in recorder.requests if "/keys/" in r or a.startswith("cloudfront:")]
    assert any(r.endswith("/state/secrets-fingerprint.key") for _, r, _ in recorder.requests)


def test_the_recorded_check_can_fail(project, monkeypatch):
    """The plan role would refuse what apply does (a change set): the check above is not vacuous."""
    write_manifest(project, MANIFEST.split("  beta:")[0])
    monkeypatch.setenv("SOURCE_TOKEN", "s3cret-value")
    assert dl("bootstrap").exit_code == 0
    recorder = record(monkeypatch)
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    problems = refused(role_policy("plan-role-policy.json"), recorder.requests)
    assert any(p.startswith("cloudformation:CreateChangeSet") for p in problems)
    assert any(p.startswith("iam:PassRole") for p in problems)
    assert any(p.startswith("s3:GetObject") and "/keys/" in p for p in problems)  # the derivation key
