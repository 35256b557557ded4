"""Public hosts of CloudFront distributions, recorded by apply where plan and status can read them.

CloudFront's GetDistribution, GetDistributionConfig and ListDistributions all return a distribution's origin
custom headers, and an HTTP API origin's header is the origin secret. So the plan role may call none of them,
and plan and status learn a distribution's host (``dXXXX.cloudfront.net``) from apply instead: after each
deploy apply writes ``state/hosts/<instance>.json`` (``{"distribution_id", "host"}``) to the artifact bucket,
under the ``state/`` prefix the plan role may read (the secrets' derivation key is under ``keys/``, which it
may not).

Why an object and not a stack Output: an Output ``Fn::GetAtt Distribution.DomainName`` would be the natural
place, but the emulator the tests deploy to does not emulate CloudFront and fails every ``DescribeStacks`` of a
stack with such an Output (docs/FIELD-NOTES); an object written once the stack has settled works on both, and
records nothing secret. The record names its distribution: a record left from a replaced distribution is
ignored, and a destroyed instance's record is deleted with it.
"""

from __future__ import annotations

import json

import botocore.exceptions

PREFIX = "state/hosts/"


def key(instance: str, preview: int | None = None) -> str:
    """A preview's record is its own, under ``previews/`` (the only prefix the CI preview role may write)."""
    if preview is None:
        return f"{PREFIX}{instance}.json"
    return f"previews/{PREFIX}pr{preview}--{instance}.json"


def recorded(
    aws, bucket: str | None, instance: str, distribution_id: str, preview: int | None = None
) -> str | None:
    """The host apply recorded for this instance's distribution; None when there is no (current) record."""
    if not bucket:
        return None
    try:
        body = aws.s3.get_object(Bucket=bucket, Key=key(instance, preview))["Body"].read()
        record = json.loads(body)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("distribution_id") != distribution_id:
        return None
    host = record.get("host")
    return host if isinstance(host, str) and host else None


def record(aws, bucket: str, instance: str, distribution_id: str, preview: int | None = None) -> str | None:
    """Read the distribution's host (apply may call GetDistribution) and record it; None when AWS cannot say."""
    known = recorded(aws, bucket, instance, distribution_id, preview)
    if known:
        return known
    try:
        dist = aws.client("cloudfront", "us-east-1").get_distribution(Id=distribution_id)
        host = dist["Distribution"]["DomainName"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, KeyError):
        return None
    body = json.dumps({"distribution_id": distribution_id, "host": host}, sort_keys=True).encode()
    aws.put_object(bucket, key(instance, preview), body)
    return host


def forget(aws, bucket: str | None, instance: str, preview: int | None = None) -> None:
    if bucket:
        aws.delete_objects(bucket, [key(instance, preview)])
