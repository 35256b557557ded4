"""`dl template`: prints a stack's template as JSON, like `cdk synth`, without deploying anything."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from dl.aws.bootstrap import bootstrap_template
from dl.aws.names import bootstrap_stack_name
from dl.aws.templates import template_json
from dl.cli import main


@pytest.fixture
def manifest(tmp_path, db_factory):
    db_factory("northwind.db", {"orders": 5})
    path = tmp_path / "datasette-lambda.yml"
    path.write_text(
        "project: example-data\nregion: eu-west-1\ninstances:\n"
        "  northwind:\n    databases: [northwind.db]\n    prefix: /data/\n"
        "  secure:\n    databases: [northwind.db]\n    domain: data.example.com\n"
    )
    return path


def run(*args: str):
    return CliRunner().invoke(main, ["template", *args], catch_exceptions=False)


def test_bootstrap(manifest):
    result = run("--bootstrap", "-f", str(manifest))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == bootstrap_template("example-data")
    compact = run("--bootstrap", "--compact", "-f", str(manifest))
    assert compact.stdout == template_json(bootstrap_template("example-data")) + "\n"


def test_usage_errors(manifest):
    assert run("-f", str(manifest)).exit_code == 2
    assert run("northwind", "--bootstrap", "-f", str(manifest)).exit_code == 2
    result = run("nope", "-f", str(manifest))
    assert result.exit_code == 1
    assert "no instance 'nope'" in result.stderr and "northwind, secure" in result.stderr


def test_bucket_unknown_before_the_first_apply(aws, manifest):
    result = run("northwind", "-f", str(manifest))
    assert result.exit_code == 1
    assert f"stack {bootstrap_stack_name('example-data')} is not deployed" in result.stderr


def test_certificate_stack_of_a_domain(aws, manifest):
    result = run("secure", "--certificate", "--hosted-zone-id", "Z0123456789ABCDEFGHIJ", "-f", str(manifest))
    assert result.exit_code == 0, result.output
    options = json.loads(result.stdout)["Resources"]["Certificate"]["Properties"]["DomainValidationOptions"]
    assert options == [{"DomainName": "data.example.com", "HostedZoneId": "Z0123456789ABCDEFGHIJ"}]


@pytest.mark.slow
def test_instance_template_uses_the_built_package_and_the_deployed_bucket(aws, manifest):
    cfn = boto3.client("cloudformation")
    name = bootstrap_stack_name("example-data")
    cfn.create_stack(StackName=name, TemplateBody=template_json(bootstrap_template("example-data")))
    outputs = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
    bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "BucketName")

    result = run("northwind", "--compact", "-f", str(manifest))
    assert result.exit_code == 0, result.stderr
    template = json.loads(result.stdout)
    meta = template["Metadata"]["DatasetteLambda"]
    package = meta["spec"]["package"]
    assert template["Resources"]["Function"]["Properties"]["Code"] == {
        "S3Bucket": bucket,
        "S3Key": package["key"],
    }
    assert package["key"] == f"packages/{package['sha256']}.zip"
    assert template["Resources"]["EdgeFunction"]["Properties"]["FunctionCode"].startswith(
        'var PREFIX = "/data/";'
    )
    again = run("northwind", "--compact", "--bucket", bucket, "-f", str(manifest))
    assert again.stdout == result.stdout  # same manifest and databases: the same bytes
