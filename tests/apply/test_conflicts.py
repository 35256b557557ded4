"""Conflicts with what already exists on AWS, found at plan time (dl/aws/conflicts.py).

Log groups, Route 53 records and stacks: against moto's server (it lists them as AWS does). CloudFront's
ListConflictingAliases is not in moto: botocore's Stubber, fed the response shape of the CloudFront API
reference (ConflictingAliasesList with partly hidden distribution and account ids).
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from dl.aws.conflicts import conflicting_aliases
from tests.apply.conftest import dl, write_manifest

MANIFEST = "project: cf\ninstances:\n  alpha:\n    databases: [alpha.db]\n"


def nothing_written() -> None:
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_a_log_group_named_like_the_function_fails_the_plan_and_apply_writes_nothing(project):
    write_manifest(project, MANIFEST)
    boto3.client("logs").create_log_group(logGroupName="/aws/lambda/cf-alpha")
    plan = dl("plan")
    assert plan.exit_code == 1
    assert "1 conflict with what already exists on AWS" in plan.output
    assert (
        "alpha: the log group /aws/lambda/cf-alpha exists and no stack of this project owns it" in plan.output
    )
    assert "aws logs delete-log-group --log-group-name /aws/lambda/cf-alpha --region eu-west-1" in plan.output

    apply = dl("apply", "--yes", "--no-verify")
    assert apply.exit_code == 1
    assert "refusing to apply: 1 conflict" in apply.output
    nothing_written()

    boto3.client("logs").delete_log_group(logGroupName="/aws/lambda/cf-alpha")
    assert dl("plan").exit_code == 0


def test_the_stacks_own_log_group_is_no_conflict(project):
    write_manifest(project, MANIFEST)
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    write_manifest(project, MANIFEST + "    memory: 1024\n")
    result = dl("plan")
    assert result.exit_code == 0, result.output
    assert "conflict" not in result.output


def test_route53_records_no_dl_stack_created_fail_the_plan(project):
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = route53.create_hosted_zone(Name="example.org", CallerReference="conflicts-test")["HostedZone"]
    zone_id = zone["Id"].split("/")[-1]
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "data.example.org",
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "192.0.2.10"}],
                    },
                },
                {  # a neighbour, which is no conflict
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "www.example.org",
                        "Type": "CNAME",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "example.org"}],
                    },
                },
            ]
        },
    )
    write_manifest(project, MANIFEST + "    domain: data.example.org\n")
    result = dl("plan")
    assert result.exit_code == 1
    assert (
        f"alpha: Route 53 zone {zone_id} already has A records for data.example.org that no stack of this "
        "project created" in result.output
    )
    assert "www.example.org" not in result.output

    write_manifest(project, MANIFEST + "    domain: other.example.org\n")
    assert "conflict" not in dl("plan").output


def test_a_stack_of_the_instances_name_from_elsewhere_fails_the_plan(project):
    template = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}
    boto3.client("cloudformation").create_stack(StackName="cf-alpha", TemplateBody=json.dumps(template))
    write_manifest(project, MANIFEST)
    result = dl("plan")
    assert result.exit_code == 1
    assert (
        "alpha: the stack cf-alpha exists and belongs to no datasette-lambda project (no dl:project tag)"
        in result.output
    )
    assert "rename the instance, or delete that stack" in result.output
    assert dl("apply", "--yes").exit_code == 1
    assert [s["StackName"] for s in boto3.client("cloudformation").describe_stacks()["Stacks"]] == [
        "cf-alpha"
    ]


OURS = "E2QWRUHEXAMPLE"


@pytest.fixture
def cloudfront():
    client = boto3.client(
        "cloudfront", region_name="us-east-1", endpoint_url="https://cloudfront.amazonaws.com"
    )
    with Stubber(client) as stub:
        yield client, stub


def test_an_alias_on_another_distribution_is_a_conflict(cloudfront):
    client, stub = cloudfront
    params = {"DistributionId": OURS, "Alias": "data.example.org"}
    stub.add_response(
        "list_conflicting_aliases",
        {
            "ConflictingAliasesList": {
                "MaxItems": 100,
                "Quantity": 2,
                "Items": [
                    {
                        "Alias": "data.example.org",
                        "DistributionId": "*******1A2B3C4",
                        "AccountId": "******111122",
                    },
                    {
                        "Alias": "data.example.org",
                        "DistributionId": "E2QWRUH*******",
                        "AccountId": "******123456",
                    },
                ],
                "NextMarker": "page-2",
            }
        },
        params,
    )
    stub.add_response(
        "list_conflicting_aliases",
        {"ConflictingAliasesList": {"MaxItems": 100, "Quantity": 0, "Items": []}},
        {**params, "Marker": "page-2"},
    )
    # the second item is our own distribution (its visible characters match), the first is someone else's
    (conflict,) = conflicting_aliases(client, "alpha", OURS, "data.example.org", {OURS[:-1] + "X", OURS})
    assert (
        "data.example.org is an alias of CloudFront distribution *******1A2B3C4 (account ******111122)"
        in str(conflict)
    )
    assert "CNAMEAlreadyExists" in conflict.what
    stub.assert_no_pending_responses()


def test_a_certificate_that_does_not_cover_the_alias_cannot_be_checked(cloudfront):
    client, stub = cloudfront
    stub.add_client_error(
        "list_conflicting_aliases",
        service_error_code="InvalidArgument",
        service_message="The CNAME specified is not covered by the certificate attached to the distribution.",
        http_status_code=400,
    )
    assert conflicting_aliases(client, "alpha", OURS, "data.example.org", {OURS}) == []
