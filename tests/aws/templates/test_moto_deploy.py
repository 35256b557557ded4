"""The templates deploy on moto's server: create, describe, and update through a change set.

moto skips resource types it does not emulate (Function URL, HTTP API, CloudFront, ACM, S3 bucket policy), so
these tests prove what moto can: the stack completes, its outputs are readable, the function, role, log group
and permissions are as the template says, and a new package key is an ordinary update. Variants whose alias
records need Fn::GetAtt on the CloudFront distribution (a domain in a hosted zone) cannot run on moto.
"""

from __future__ import annotations

import ast
import dataclasses
import json

import boto3
import pytest

from dl.aws.bootstrap import bootstrap_template
from dl.aws.metadata_json import template_artifact_keys, template_spec
from dl.aws.names import bootstrap_stack_name, instance_stack_name, secret_parameter
from dl.aws.templates import instance_template, template_json
from tests.aws.templates.conftest import NOT_ON_MOTO, PACKAGE_KEY, SPEC, VARIANTS

PROJECT = "example-data"
NEW_PACKAGE_KEY = "packages/" + "e" * 64 + ".zip"
EMPTY_ZIP = b"PK\x05\x06" + b"\0" * 18


def clients():
    return {name: boto3.client(name) for name in ("cloudformation", "s3", "lambda", "iam", "logs")}


def put_packages(s3, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for key in (PACKAGE_KEY, NEW_PACKAGE_KEY):
        s3.put_object(Bucket=bucket, Key=key, Body=EMPTY_ZIP)


def parameters(template: dict) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": "s3cr3t"} for k in template.get("Parameters", {})]


def outputs(cfn, name: str) -> dict:
    (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.mark.parametrize("name", sorted(set(VARIANTS) - NOT_ON_MOTO))
def test_instance_stack_deploys_and_updates(aws, name):
    c = clients()
    instance, artifacts = VARIANTS[name]
    put_packages(c["s3"], artifacts.bucket)
    stack = instance_stack_name(PROJECT, instance.name)
    template = instance_template(PROJECT, instance, artifacts, spec=SPEC)
    c["cloudformation"].create_stack(
        StackName=stack,
        TemplateBody=template_json(template),
        Parameters=parameters(template),
        Capabilities=["CAPABILITY_IAM"],
    )
    out = outputs(c["cloudformation"], stack)
    c["cloudformation"].describe_stacks()  # listing every stack works too (a bad output breaks it on moto)
    assert out["FunctionName"] == stack
    assert out["LogGroupName"] == f"/aws/lambda/{stack}"
    if instance.domain:
        assert out["Url"] == f"https://{instance.domain}{instance.prefix}"

    config = c["lambda"].get_function(FunctionName=stack)["Configuration"]
    assert (config["Runtime"], config["Handler"], config["MemorySize"], config["Timeout"]) == (
        instance.runtime,
        "dl_runtime.handler.handler",
        instance.memory,
        instance.timeout,
    )
    variables = config.get("Environment", {}).get("Variables", {})
    assert variables["DL_ARTIFACT_BUCKET"] == artifacts.bucket  # databases, downloads, large responses
    for secret in instance.secrets:
        assert variables[secret] == "s3cr3t"  # the parameter's value, never in the template

    (group,) = c["logs"].describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{stack}")["logGroups"]
    assert group["retentionInDays"] == instance.log_retention_days

    role = config["Role"].rsplit("/", 1)[1]
    (policy_name,) = c["iam"].list_role_policies(RoleName=role)["PolicyNames"]
    document = c["iam"].get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(document, str):  # moto quirk: an inline policy made by CloudFormation comes back as repr()
        document = ast.literal_eval(document)
    resources = {
        r
        for s in document["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {
        f"arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/{stack}:*",
        *(f"arn:aws:s3:::{artifacts.bucket}/{key}" for key in artifacts.database_keys),
        f"arn:aws:s3:::{artifacts.bucket}/responses/*",
    }

    policy = json.loads(c["lambda"].get_policy(FunctionName=stack)["Policy"])
    principals = {json.dumps(s["Principal"], sort_keys=True) for s in policy["Statement"]}
    if instance.endpoint == "http-api":
        assert principals == {'{"Service": "apigateway.amazonaws.com"}'}
    elif instance.cdn:
        assert principals == {'{"Service": "cloudfront.amazonaws.com"}'}
    else:
        assert principals == {'"*"'}

    # A new package: a change set modifying the function, executed; the stack then reports the new spec.
    updated = instance_template(
        PROJECT,
        instance,
        dataclasses.replace(artifacts, package_key=NEW_PACKAGE_KEY),
        spec={**SPEC, "memory": 1},
    )
    cfn = c["cloudformation"]
    change_set = cfn.create_change_set(
        StackName=stack,
        ChangeSetName="new-package",
        TemplateBody=template_json(updated),
        Parameters=parameters(updated),
        Capabilities=["CAPABILITY_IAM"],
        ChangeSetType="UPDATE",
    )["Id"]
    changes = cfn.describe_change_set(ChangeSetName=change_set)["Changes"]
    assert [
        (ch["ResourceChange"]["Action"], ch["ResourceChange"]["LogicalResourceId"]) for ch in changes
    ] == [("Modify", "Function")]
    cfn.execute_change_set(ChangeSetName=change_set)
    outputs(cfn, stack)
    location = c["lambda"].get_function(FunctionName=stack)["Code"]["Location"]
    assert NEW_PACKAGE_KEY.split("/")[1][:40] in location
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    deployed = json.loads(body) if isinstance(body, str) else body
    assert template_spec(deployed) == {**SPEC, "memory": 1}
    assert template_artifact_keys(deployed) == {NEW_PACKAGE_KEY, *artifacts.database_keys}


def test_secret_values_arrive_as_parameters(aws):
    c = clients()
    instance, artifacts = VARIANTS["secrets"]
    put_packages(c["s3"], artifacts.bucket)
    template = instance_template(PROJECT, instance, artifacts, spec=SPEC)
    values = [
        {"ParameterKey": secret_parameter(k), "ParameterValue": f"value-of-{k}"} for k in instance.secrets
    ]
    stack = instance_stack_name(PROJECT, instance.name)
    c["cloudformation"].create_stack(
        StackName=stack,
        TemplateBody=template_json(template),
        Parameters=values,
        Capabilities=["CAPABILITY_IAM"],
    )
    variables = c["lambda"].get_function(FunctionName=stack)["Configuration"]["Environment"]["Variables"]
    assert {k: variables[k] for k in instance.secrets} == {k: f"value-of-{k}" for k in instance.secrets}
    # (moto shows NoEcho values in describe_stacks; AWS masks them: NoEcho is asserted in the template tests)


def test_bootstrap_stack_deploys_and_names_its_bucket(aws):
    c = clients()
    name = bootstrap_stack_name(PROJECT)
    c["cloudformation"].create_stack(StackName=name, TemplateBody=template_json(bootstrap_template(PROJECT)))
    bucket = outputs(c["cloudformation"], name)["BucketName"]
    assert bucket in {b["Name"] for b in c["s3"].list_buckets()["Buckets"]}
    rules = c["s3"].get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
