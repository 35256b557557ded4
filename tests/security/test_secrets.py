"""Secret values reach the function and nothing else: not templates, tags, stored specs, plan output (text,
JSON, Markdown), the PR comment, logs or S3 objects. The plan still says when a value changed (keyed
fingerprint, dl/aws/secrets.py). Datasette's signing secret is stable across deploys and differs per instance.

moto shows NoEcho parameter values in describe_stacks (AWS masks them as ****), so the one place a value may
appear in the emulated account is the parameter (and the function's environment, its destination).
"""

from __future__ import annotations

import json

import boto3

from dl.aws import secrets
from dl.aws.metadata_json import template_spec
from dl.render.comment import compose_comment
from dl.render.plan import comment_parts
from tests.apply.conftest import add_rows, dl, write_manifest

VALUE = "hunter2-Sup3r-s3cret-value"
NEW_VALUE = "correct-horse-battery-staple"
MANIFEST = """\
project: sec
instances:
  alpha:
    databases: [alpha.db]
    secrets: {API_TOKEN: SOURCE_TOKEN}
  beta:
    databases: [beta.db]
"""


def everything_visible(outputs: list[str]) -> str:
    """All text a reviewer, a log or a reader of the account (other than the function) could see."""
    cfn, s3 = boto3.client("cloudformation"), boto3.client("s3")
    texts = list(outputs)
    for stack in cfn.describe_stacks()["Stacks"]:
        stack = {k: v for k, v in stack.items() if k != "Parameters"}  # moto echoes NoEcho values; AWS masks
        texts.append(json.dumps(stack, default=str))
        texts.append(json.dumps(cfn.get_template(StackName=stack["StackId"])["TemplateBody"], default=str))
        texts.append(json.dumps(cfn.describe_stack_events(StackName=stack["StackId"]), default=str))
    for bucket in s3.list_buckets()["Buckets"]:
        for obj in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = s3.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"].read()
            texts.append(body.decode("latin-1"))
    return "\n".join(texts)


def plan_outputs() -> list[str]:
    out = [dl("plan", fmt).output for fmt in ("--format=text", "--format=json", "--format=markdown")]
    plan = json.loads(out[1][out[1].index("{") :])
    from dl.plan.model import Plan

    parts = comment_parts(Plan.from_json(plan), manifest="datasette-lambda.yml")
    out.append(compose_comment(parts))
    return out


def function_env(name: str) -> dict:
    return boto3.client("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"]


def test_secret_values_reach_only_the_function_and_changes_show_without_values(project, monkeypatch):
    write_manifest(project, MANIFEST)
    monkeypatch.setenv("SOURCE_TOKEN", VALUE)
    outputs = plan_outputs()
    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output
    outputs.append(applied.output)
    assert function_env("sec-alpha")["API_TOKEN"] == VALUE
    outputs += plan_outputs()
    assert "No changes" in outputs[-4]
    assert VALUE not in everything_visible(outputs)

    # the stored spec has a keyed fingerprint, not the value or its plain hash
    body = boto3.client("cloudformation").get_template(StackName="sec-alpha")["TemplateBody"]
    spec = template_spec(json.loads(body) if isinstance(body, str) else body)
    stored = spec["secrets"]["API_TOKEN"]
    assert stored.startswith(secrets.PREFIX)
    import hashlib

    assert hashlib.sha256(VALUE.encode()).hexdigest() not in stored

    # a new value: the plan says the value changed, shows neither value
    first_signing = {n: function_env(f"sec-{n}")["DATASETTE_SECRET"] for n in ("alpha", "beta")}
    monkeypatch.setenv("SOURCE_TOKEN", NEW_VALUE)
    text = dl("plan").output
    assert "~ alpha: update" in text and "secrets.API_TOKEN" in text and "value changed" in text
    assert "Unchanged: beta" in text
    outputs = plan_outputs()
    add_rows(project / "beta.db", "cities", 1)  # a second deploy of beta: its signing secret must not move
    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output
    outputs.append(applied.output)
    assert function_env("sec-alpha")["API_TOKEN"] == NEW_VALUE
    outputs += plan_outputs()
    assert "No changes" in outputs[-4]
    visible = everything_visible(outputs)
    assert VALUE not in visible and NEW_VALUE not in visible

    # Datasette's signing secret: set, stable across deploys, different per instance, never visible
    signing = {n: function_env(f"sec-{n}")["DATASETTE_SECRET"] for n in ("alpha", "beta")}
    assert signing == first_signing
    assert len(signing["alpha"]) == 64 and signing["alpha"] != signing["beta"]
    assert signing["alpha"] not in visible and signing["beta"] not in visible


def test_a_plan_without_the_secret_in_its_environment_assumes_it_unchanged(project, monkeypatch):
    write_manifest(project, MANIFEST)
    monkeypatch.setenv("SOURCE_TOKEN", VALUE)
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    monkeypatch.delenv("SOURCE_TOKEN")
    result = dl("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "$SOURCE_TOKEN is not set here; the plan assumes its value is unchanged" in result.output
    refused = dl("apply", "--yes", "--no-verify")
    assert refused.exit_code == 0 and "No changes" in refused.output  # nothing to do needs no value


def test_fingerprints_are_keyed():
    a = secrets.fingerprint(b"k" * 32, "p", "i", "API_TOKEN", VALUE)
    assert a == secrets.fingerprint(b"k" * 32, "p", "i", "API_TOKEN", VALUE)
    assert a != secrets.fingerprint(b"K" * 32, "p", "i", "API_TOKEN", VALUE)
    assert a != secrets.fingerprint(b"k" * 32, "p", "j", "API_TOKEN", VALUE)


def test_the_origin_secret_of_an_http_api_behind_cloudfront_is_set_stable_and_never_visible(project):
    write_manifest(
        project, "project: sec\ninstances:\n  api:\n    databases: [beta.db]\n    endpoint: http-api\n"
    )
    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output
    first = function_env("sec-api")["DL_ORIGIN_SECRET"]
    assert len(first) == 64 and first != function_env("sec-api")["DATASETTE_SECRET"]
    add_rows(project / "beta.db", "cities", 1)
    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output
    assert function_env("sec-api")["DL_ORIGIN_SECRET"] == first  # CloudFront's header and the check agree
    stack_id = boto3.client("cloudformation").describe_stacks(StackName="sec-api")["Stacks"][0]["StackId"]
    assert stack_id.split("/")[-1] not in first  # not derived from the stack ID, which plan files carry
    assert first not in everything_visible([applied.output, *plan_outputs()])


def test_the_key_of_a_project_from_before_the_split_keeps_every_derived_value(project, monkeypatch):
    """The one key of earlier releases becomes the apply-only derivation key under its old name: the signing
    secret is unchanged (nobody is logged out); fingerprints come from the new, plan-readable key."""
    write_manifest(project, MANIFEST)
    monkeypatch.setenv("SOURCE_TOKEN", VALUE)
    assert dl("bootstrap").exit_code == 0
    cfn = boto3.client("cloudformation")
    bucket = cfn.describe_stack_resource(StackName="sec--bootstrap", LogicalResourceId="ArtifactBucket")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    s3 = boto3.client("s3")
    legacy = b"L" * 32
    s3.put_object(Bucket=bucket, Key="keys/secrets-hmac.key", Body=legacy)  # what an older release made
    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output
    assert function_env("sec-beta")["DATASETTE_SECRET"] == secrets.datasette_secret(legacy, "sec", "beta")
    fingerprint_key = s3.get_object(Bucket=bucket, Key=secrets.FINGERPRINT_KEY_OBJECT)["Body"].read()
    assert fingerprint_key != legacy and len(fingerprint_key) == 32
    body = cfn.get_template(StackName="sec-alpha")["TemplateBody"]
    spec = (json.loads(body) if isinstance(body, str) else body)["Metadata"]["DatasetteLambda"]["spec"]
    assert spec["secrets"]["API_TOKEN"] == secrets.fingerprint(
        fingerprint_key, "sec", "alpha", "API_TOKEN", VALUE
    )
    assert spec["secrets"]["API_TOKEN"] != secrets.fingerprint(legacy, "sec", "alpha", "API_TOKEN", VALUE)
