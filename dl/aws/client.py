"""The one AWS adapter: every boto3 call `dl` makes goes through here.

Reads (used by the observed state and the planner) and writes (used only by dl/apply/) are separate
methods, named for what they do. All clients use boto3's standard configuration (profiles, AWS_REGION,
AWS_ENDPOINT_URL, so moto's server and LocalStack work) with botocore's adaptive retry mode.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions
from botocore.config import Config

from dl import __version__
from dl.errors import DlError


def client_config(*, retries: bool = True) -> Config:
    """Retries (adaptive, 10 attempts: throttling, 5xx, resets and read timeouts are retried) and timeouts.

    ``retries=False``: a single attempt, for non-idempotent writes whose caller checks, after a transient
    failure, whether the request took effect before sending it again (see dl/apply/stacks.py ``once``).
    ``DL_AWS_READ_TIMEOUT`` (seconds, default 60) exists for the fault-injection tests.
    """
    return Config(
        retries={"mode": "adaptive", "max_attempts": 10}
        if retries
        else {"mode": "standard", "total_max_attempts": 1},
        user_agent_extra=f"datasette-lambda/{__version__}",
        connect_timeout=10,
        read_timeout=float(os.environ.get("DL_AWS_READ_TIMEOUT") or 60),
        max_pool_connections=32,
    )


NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}


@dataclass(frozen=True)
class Stack:
    """A CloudFormation stack as `describe_stacks` shows it."""

    name: str
    stack_id: str
    status: str
    status_reason: str | None
    tags: dict
    outputs: dict
    created: str | None
    updated: str | None

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"


def _stack(raw: dict) -> Stack:
    return Stack(
        name=raw["StackName"],
        stack_id=raw["StackId"],
        status=raw["StackStatus"],
        status_reason=raw.get("StackStatusReason"),
        tags={t["Key"]: t["Value"] for t in raw.get("Tags") or []},
        outputs={o["OutputKey"]: o.get("OutputValue") for o in raw.get("Outputs") or []},
        created=raw["CreationTime"].isoformat() if raw.get("CreationTime") else None,
        updated=raw["LastUpdatedTime"].isoformat() if raw.get("LastUpdatedTime") else None,
    )


def is_no_change(reason: str | None) -> bool:
    """An empty change set: AWS says "didn't contain changes" or "No updates are to be performed"."""
    return bool(reason) and any(text in reason for text in NO_CHANGES)


THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "SlowDown",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "PriorRequestNotComplete",
    }
)


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: throttling, a 5xx, a reset connection or a timeout (the request may or may
    not have taken effect)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return exc.response.get("Error", {}).get("Code") in THROTTLING_CODES or status >= 500
    return isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError))


def explain_client_error(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', str(exc))}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials found: configure a profile, AWS_* environment variables, or OIDC in CI"
    return str(exc)


def require_credentials(aws: Aws) -> None:
    """Refuse early, before anything is built, when boto3 finds no credentials (no call is made)."""
    if aws.session.get_credentials() is None:
        raise DlError(
            "no AWS credentials found: configure a profile, AWS_* environment variables, or OIDC in CI "
            "(or try it offline: --sandbox uses a local AWS emulator)"
        )


def describe_live_stack(cfn, name: str) -> dict | None:
    """DescribeStacks for one stack through a CloudFormation client (of any region): the raw description, or
    None when it does not exist or is DELETE_COMPLETE."""
    try:
        raw = cfn.describe_stacks(StackName=name)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise DlError(f"cannot describe stack {name}: {explain_client_error(exc)}") from None
    live = [s for s in raw if s["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


class Aws:
    """boto3 clients for one region (plus us-east-1 for certificates), created lazily and shared by threads."""

    def __init__(self, region: str | None = None, *, session: boto3.session.Session | None = None):
        self.session = session or boto3.session.Session()
        # botocore reads AWS_DEFAULT_REGION and profiles; AWS_REGION is what the AWS SDKs and CLI v2 document
        self.region = region or os.environ.get("AWS_REGION") or self.session.region_name
        if not self.region:
            raise DlError(
                "no AWS region: set `region` in the manifest, or AWS_REGION / a profile's region "
                "(or try it offline: --sandbox uses a local AWS emulator)"
            )
        self._clients: dict[tuple[str, str, bool], object] = {}
        self._lock = threading.Lock()
        self.calls: list[str] = []  # "service.Operation" of every API call, for tests and benchmarks
        self.on_call: Callable[[str], None] | None = None

    def client(self, service: str, region: str | None = None, *, retries: bool = True):
        """A shared client; ``retries=False``: one without botocore's retries (see client_config)."""
        key = (service, region or self.region, retries)
        with self._lock:
            if key not in self._clients:
                client = self.session.client(
                    service, region_name=key[1], config=client_config(retries=retries)
                )
                client.meta.events.register("before-call.*.*", self._count)
                self._clients[key] = client
            return self._clients[key]

    def _count(self, model, **_):
        name = f"{model.service_model.service_name}.{model.name}"
        self.calls.append(name)
        if self.on_call:
            self.on_call(name)

    @property
    def cfn(self):
        return self.client("cloudformation")

    @property
    def s3(self):
        return self.client("s3")

    # --- reads ---------------------------------------------------------------------------------------

    def stacks(self, region: str | None = None) -> Iterator[Stack]:
        """Every live stack of the account and region (deleted ones excluded); ``region``: another one (the
        certificate stacks live in us-east-1)."""
        try:
            cfn = self.client("cloudformation", region)
            for page in cfn.get_paginator("describe_stacks").paginate():
                for raw in page["Stacks"]:
                    if raw["StackStatus"] != "DELETE_COMPLETE":
                        yield _stack(raw)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise DlError(f"cannot list CloudFormation stacks: {explain_client_error(exc)}") from None

    def stack(self, name: str) -> Stack | None:
        live = describe_live_stack(self.cfn, name)
        return _stack(live) if live else None

    def template_metadata(self, stack_name: str) -> dict:
        """The top-level Metadata of a stack's current template."""
        try:
            body = self.cfn.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
        except botocore.exceptions.ClientError as exc:
            raise DlError(f"cannot read the template of {stack_name}: {explain_client_error(exc)}") from None
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                return {}
        return body.get("Metadata") or {}

    def stack_resource(self, stack_name: str, logical_id: str) -> str | None:
        """The physical id of one resource of a stack."""
        try:
            res = self.cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
        except botocore.exceptions.ClientError:
            return None
        return res["StackResourceDetail"].get("PhysicalResourceId")

    def object_exists(self, bucket: str, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise DlError(f"cannot check s3://{bucket}/{key}: {explain_client_error(exc)}") from None

    def list_objects(self, bucket: str, prefix: str) -> Iterator[dict]:
        """Objects under a prefix (Key, Size, LastModified)."""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents") or []

    def hosted_zone_for(self, domain: str) -> str | None:
        """The id of the most specific public Route 53 hosted zone holding `domain`, if any."""
        route53 = self.client("route53", "us-east-1")
        best: tuple[int, str] | None = None
        for page in route53.get_paginator("list_hosted_zones").paginate():
            for zone in page["HostedZones"]:
                if zone.get("Config", {}).get("PrivateZone"):
                    continue
                name = zone["Name"].rstrip(".")
                if domain == name or domain.endswith("." + name):
                    if best is None or len(name) > best[0]:
                        best = (len(name), zone["Id"].split("/")[-1])
        return best[1] if best else None

    # --- writes (dl/apply/ only) ------------------------------------------------------------------------------

    def upload_file(
        self, path: Path, bucket: str, key: str, *, progress: Callable[[int], None] | None = None
    ):
        """Upload a file; multipart with concurrency when large. S3 makes the key visible only when complete."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=8
        )
        try:
            self.s3.upload_file(str(path), bucket, key, Config=config, Callback=progress)
        except (botocore.exceptions.ClientError, boto3.exceptions.S3UploadFailedError) as exc:
            raise DlError(
                f"upload of {path.name} to s3://{bucket}/{key} failed: {explain_client_error(exc)}"
            ) from None

    def put_object(self, bucket: str, key: str, body: bytes, content_type: str = "application/json") -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def delete_objects(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self.s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )

    def invalidate(self, distribution_id: str, paths: list[str], reference: str) -> str:
        cloudfront = self.client("cloudfront", "us-east-1")
        res = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": paths},
                "CallerReference": reference,
            },
        )
        return res["Invalidation"]["Id"]


def wait_for(predicate: Callable[[], bool], *, timeout: float, interval: float = 2.0, what: str = "") -> None:
    """Poll until predicate() is true; DlError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DlError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
