"""AWS value limits that `dl apply` meets before AWS would refuse them: Lambda's 4 KB environment (secret
values included), templates over CloudFormation's 51,200-byte inline limit (sent through S3), the tags dl adds
itself (counted against the 50 per resource), and the account's CloudFront quotas (a warning).

moto's server is the AWS here; CloudFront's list calls go through botocore's Stubber with response shapes from
the CloudFront API reference, because moto does not deploy CloudFront resources from templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import botocore.exceptions
from botocore.stub import Stubber

from dl.aws import client as dl_aws
from dl.aws import quotas
from dl.manifest.tags import OWN_INSTANCE_STACK_TAGS
from tests.apply.conftest import cfn, dl, write_manifest

SECRETS = """\
project: lim
instances:
  alpha:
    databases: [alpha.db]
    secrets: {API_KEY: LIM_API_KEY, OTHER: LIM_OTHER}
"""


def nothing_deployed() -> bool:
    return not cfn().describe_stacks()["Stacks"] and not boto3.client("s3").list_buckets()["Buckets"]


def test_an_environment_over_4_kb_is_refused_before_anything_is_written(project, monkeypatch):
    value = "v" * 4000
    monkeypatch.setenv("LIM_API_KEY", value)
    monkeypatch.setenv("LIM_OTHER", "short")
    write_manifest(project, SECRETS)
    result = dl("apply", "--yes")
    assert result.exit_code == 1, result.output
    assert "refusing to apply (nothing was changed):" in result.output
    assert "alpha: the function's environment would take" in result.output
    assert "over Lambda's limit of 4,096 (4 KB, every name and value counted)" in result.output
    assert "largest secrets: API_KEY (4,000 bytes), OTHER (5 bytes)" in result.output
    assert value not in result.output and "short" not in result.output.replace("shorten", "")
    assert nothing_deployed()

    monkeypatch.setenv("LIM_API_KEY", "v" * 3000)  # fits, with dl's own variables
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    variables = boto3.client("lambda").get_function_configuration(FunctionName="lim-alpha")["Environment"]
    assert len(json.dumps(variables["Variables"], separators=(",", ":")).encode()) <= 4096


def test_a_template_over_51200_bytes_is_sent_through_the_artifact_bucket(project):
    """A long description in the metadata makes the stored spec, and so the template, too big to send inline:
    it goes to the artifact bucket and CloudFormation reads it from there (the emulator's template gate too)."""
    description = "A long description. " * 3000  # ~60 KB
    write_manifest(
        project,
        "project: big\ninstances:\n  alpha:\n    databases: [alpha.db]\n"
        f"    metadata: {{description: {json.dumps(description)}}}\n",
    )
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    bucket = cfn().describe_stack_resource(StackName="big--bootstrap", LogicalResourceId="ArtifactBucket")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    keys = [
        o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="templates/")["Contents"]
    ]
    [key] = keys
    stored = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(stored) > 51_200
    deployed = cfn().get_template(StackName="big-alpha")["TemplateBody"]
    deployed = json.loads(deployed) if isinstance(deployed, str) else deployed
    assert deployed == json.loads(stored)
    assert deployed["Metadata"]["DatasetteLambda"]["spec"]["metadata"]["description"] == description
    assert "No changes" in dl("plan").output  # the stored spec reads back equal from the big template


def test_dl_puts_on_an_instance_stack_exactly_the_own_tags_it_counts(project):
    """The manifest's tag allowance (50 minus dl's own, dl/manifest/tags.py) is computed from this list."""
    write_manifest(
        project, "project: own\ntags: {team: data}\ninstances:\n  alpha:\n    databases: [alpha.db]\n"
    )
    assert dl("apply", "--yes").exit_code == 0
    [stack] = cfn().describe_stacks(StackName="own-alpha")["Stacks"]
    keys = {t["Key"] for t in stack["Tags"]}
    assert {k for k in keys if k.startswith("dl:")} == set(OWN_INSTANCE_STACK_TAGS)
    assert keys - set(OWN_INSTANCE_STACK_TAGS) == {"team"}


# --- CloudFront quotas (Stubber: shapes from the CloudFront API reference) ----------------------------------


def function_summary(i: int) -> dict:
    return {
        "Name": f"other-{i}",
        "Status": "UNASSOCIATED",
        "FunctionConfig": {"Comment": "", "Runtime": "cloudfront-js-2.0"},
        "FunctionMetadata": {
            "FunctionARN": f"arn:aws:cloudfront::123456789012:function/other-{i}",
            "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC),
        },
    }


def stubbed_cloudfront(monkeypatch, pages_of_functions: list[int] | None, *, denied: bool = False) -> Stubber:
    """dl's CloudFront client answers from a Stubber: no distributions, functions in pages of these sizes
    (None: no answer at all, so any call fails)."""
    client = boto3.client("cloudfront", region_name="us-east-1")
    stubber = Stubber(client)
    empty = {"Marker": "", "MaxItems": 100, "IsTruncated": False, "Quantity": 0}
    if pages_of_functions is None:
        pass
    elif denied:
        stubber.add_client_error("list_distributions", "AccessDenied", "not authorized", 403)
    else:
        stubber.add_response("list_distributions", {"DistributionList": empty})
        start = 0
        for n, size in enumerate(pages_of_functions):
            listing = {
                "MaxItems": 100,
                "Quantity": size,
                "Items": [function_summary(start + i) for i in range(size)],
            }
            if n < len(pages_of_functions) - 1:
                listing["NextMarker"] = f"page-{n + 1}"
            expected = {"Marker": f"page-{n}"} if n else {}
            stubber.add_response("list_functions", {"FunctionList": listing}, expected)
            start += size
    stubber.activate()
    original = dl_aws.Aws.client

    def client_for(self, service, region=None, **kwargs):
        return client if service == "cloudfront" else original(self, service, region, **kwargs)

    monkeypatch.setattr(dl_aws.Aws, "client", client_for)
    return stubber


CDN = "project: cf\ninstances:\n  alpha:\n    databases: [alpha.db]\n"


def test_apply_warns_when_new_distributions_near_the_functions_quota(project, monkeypatch):
    stubber = stubbed_cloudfront(monkeypatch, [50, 29])  # 79 functions in two pages; the apply adds one: 80
    write_manifest(project, CDN)
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    stubber.assert_no_pending_responses()  # every page was read
    assert (
        "warning: this account has 79 CloudFront Functions and this apply adds 1; the default quota is 100 per "
        "account."
    ) in result.output
    assert "CloudFront distributions and this apply" not in result.output  # 1 of 500: far from it


def test_no_warning_far_from_the_quota_and_no_calls_when_nothing_is_added(project, monkeypatch):
    stubbed_cloudfront(monkeypatch, [3])
    write_manifest(project, CDN)
    result = dl("apply", "--yes")
    assert result.exit_code == 0 and "warning:" not in result.output, result.output
    stubbed_cloudfront(monkeypatch, None)  # any CloudFront call now fails: the stubber has no responses
    (project / "alpha.db").write_bytes((project / "beta.db").read_bytes())  # an update; no new distribution
    result = dl("apply", "--yes")
    assert result.exit_code == 0 and "warning:" not in result.output, result.output
    assert "alpha: update" in result.output or "~ alpha" in result.output, result.output


def test_a_role_that_may_not_count_gets_a_note_not_a_failure(project, monkeypatch):
    stubbed_cloudfront(monkeypatch, [0], denied=True)
    write_manifest(project, CDN)
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    assert "warning: CloudFront quotas not checked:" in result.output


def test_the_warning_threshold():
    assert quotas.warnings({quotas.FUNCTIONS: 78}, 1) == []
    assert len(quotas.warnings({quotas.FUNCTIONS: 78, quotas.DISTRIBUTIONS: 399}, 2)) == 2
    assert botocore.exceptions.ClientError  # the module's errors are what a denied list raises
