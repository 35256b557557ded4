"""Distribution hosts: apply records them under state/hosts/ (it may call GetDistribution); plan and status read
the record and never call CloudFront, whose GetDistribution* and ListDistributions return the origin secret.

moto's CloudFormation does not emulate CloudFront, but its CloudFront API does: the distribution is made there."""

from __future__ import annotations

import boto3

from dl.aws import hosts
from dl.aws.client import Aws, Stack
from dl.aws.hosts import public_url

CONFIG = {
    "CallerReference": "dl-test",
    "Comment": "",
    "Enabled": True,
    "Origins": {
        "Quantity": 1,
        "Items": [
            {
                "Id": "function",
                "DomainName": "abc.lambda-url.eu-west-1.on.aws",
                "CustomOriginConfig": {
                    "HTTPPort": 80,
                    "HTTPSPort": 443,
                    "OriginProtocolPolicy": "https-only",
                },
            }
        ],
    },
    "DefaultCacheBehavior": {
        "TargetOriginId": "function",
        "ViewerProtocolPolicy": "redirect-to-https",
        "MinTTL": 0,
        "ForwardedValues": {"QueryString": True, "Cookies": {"Forward": "all"}},
    },
}


def test_apply_records_the_host_and_status_reads_it_without_cloudfront(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket="p--bootstrap-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    dist = boto3.client("cloudfront", region_name="us-east-1").create_distribution(DistributionConfig=CONFIG)
    dist_id, domain = dist["Distribution"]["Id"], dist["Distribution"]["DomainName"]

    writer = Aws("eu-west-1")
    assert hosts.record(writer, "p--bootstrap-bucket", "alpha", dist_id) == domain
    assert "cloudfront.GetDistribution" in writer.calls
    writer.calls.clear()
    assert hosts.record(writer, "p--bootstrap-bucket", "alpha", dist_id) == domain  # recorded: no call
    assert not [c for c in writer.calls if c.startswith("cloudfront.")]

    reader = Aws("eu-west-1")
    stack = Stack(
        "p-alpha", "arn:stack/p-alpha/1", "UPDATE_COMPLETE", None, {}, {"DistributionId": dist_id}, None, None
    )
    spec = {"instance": "alpha", "cdn": True, "prefix": "/data/", "endpoint": "function-url"}
    assert public_url(reader, stack, spec, "p--bootstrap-bucket") == f"https://{domain}/data/"
    assert not [c for c in reader.calls if c.startswith("cloudfront.")]
    # a record of a replaced distribution is not believed; a destroyed instance's record is gone
    replaced = Stack(
        "p-alpha", "arn:stack/p-alpha/1", "UPDATE_COMPLETE", None, {}, {"DistributionId": "E2NEW"}, None, None
    )
    assert public_url(reader, replaced, spec, "p--bootstrap-bucket") is None
    hosts.forget(writer, "p--bootstrap-bucket", "alpha")
    assert hosts.recorded(reader, "p--bootstrap-bucket", "alpha", dist_id) is None
    assert not [c for c in reader.calls if c.startswith("cloudfront.")]
