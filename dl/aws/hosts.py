"""Where a deployed instance is served: the public hosts of CloudFront distributions, recorded by apply where
plan and status can read them, and the public URL of an instance (:func:`public_url`).

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

Public URLs (what status, the preview comment and apply's verification show): the custom domain when there is
one, else CloudFront's host as apply recorded it (never cloudfront:GetDistribution), else the front door's
(HTTP API or Function URL).
"""

from __future__ import annotations

import json

import botocore.exceptions

from dl.aws.client import Aws, Stack

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


def _output(stack: Stack, key: str) -> str | None:
    value = stack.outputs.get(key)
    return value if value not in (None, "", "None") else None


def distribution_url(aws: Aws, stack: Stack, spec: dict, bucket: str | None) -> str | None:
    """https://dXXXX.cloudfront.net/prefix/: the distribution's own host, which answers whatever the DNS of a
    custom domain says; None without a distribution (or when the host was not recorded: an emulator).

    The host is the one apply recorded in the artifact bucket (:func:`recorded`), never read from CloudFront:
    GetDistribution returns the origin's secret header, which the plan role must not read."""
    distribution = _output(stack, "DistributionId")
    if not (spec.get("cdn") and distribution):
        return None
    host = recorded(aws, bucket, spec.get("instance", ""), distribution, spec.get("preview"))
    return f"https://{host}{spec.get('prefix', '/')}" if host else None


def public_url(aws: Aws, stack: Stack, spec: dict, bucket: str | None = None) -> str | None:
    """https://host/prefix/ of a deployed instance, or None when AWS (or the emulator) cannot tell.
    ``bucket``: the artifact bucket, where apply records distributions' hosts."""
    prefix = spec.get("prefix", "/")
    if _output(stack, "Url"):
        return _output(stack, "Url")
    if spec.get("cdn"):
        return distribution_url(aws, stack, spec, bucket)
    try:
        if spec.get("endpoint") == "http-api" and _output(stack, "HttpApiId"):
            return f"https://{_output(stack, 'HttpApiId')}.execute-api.{aws.region}.amazonaws.com{prefix}"
        if spec.get("endpoint", "function-url") == "function-url":
            name = _output(stack, "FunctionName") or stack.name
            url = aws.client("lambda").get_function_url_config(FunctionName=name)["FunctionUrl"]
            return url.rstrip("/") + prefix
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, KeyError):
        return None
    return None
