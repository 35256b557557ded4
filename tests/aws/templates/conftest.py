"""Builders for template tests: a normalised Instance with defaults, artifacts, and the named variants."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from dl.aws.templates import InstanceArtifacts
from dl.manifest.model import INSTANCE_DEFAULTS, Database, Instance

PACKAGE_KEY = "packages/" + "a" * 64 + ".zip"
DB_KEY = "databases/" + "b" * 64 + ".db"
DB_KEY_2 = "databases/" + "c" * 64 + ".db"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f6c1b1e-1111-2222-3333-444455556666"
GIB = 1024**3


def make_instance(**overrides) -> Instance:
    """An Instance as dl.manifest.model normalises it (defaults applied), with `overrides`."""
    fields = dict(INSTANCE_DEFAULTS)
    fields.update(
        name="northwind",
        databases=(Database("northwind", Path("/data/northwind.db"), "northwind.db"),),
        metadata=MappingProxyType({}),
        metadata_source=None,
        config=MappingProxyType({}),
        plugins=(),
        secrets=MappingProxyType({}),
    )
    fields.update(overrides)
    return Instance(**fields)


def make_artifacts(**overrides) -> InstanceArtifacts:
    fields = dict(bucket="example-data--bootstrap-artifactbucket-1a2b3c4d", package_key=PACKAGE_KEY)
    fields.update(overrides)
    return InstanceArtifacts(**fields)


# Every variant the issue names: domain (with a zone, or certificate_arn only), prefix, CDN on/off, Function URL
# or HTTP API, inline-only or S3 databases, arm64 and x86_64, secrets.
VARIANTS = {
    "default": (make_instance(), make_artifacts()),
    "function-url-no-cdn": (make_instance(cdn=False), make_artifacts()),
    "http-api": (make_instance(endpoint="http-api"), make_artifacts()),
    "http-api-no-cdn": (make_instance(endpoint="http-api", cdn=False), make_artifacts()),
    "domain-hosted-zone": (
        make_instance(domain="data.example.com"),
        make_artifacts(certificate_arn=CERT_ARN, hosted_zone_id="Z0123456789ABCDEFGHIJ"),
    ),
    "domain-certificate-arn": (
        make_instance(domain="example.org", certificate_arn=CERT_ARN),
        make_artifacts(certificate_arn=CERT_ARN),
    ),
    "domain-http-api-prefix": (
        make_instance(domain="data.example.com", endpoint="http-api", prefix="/data/"),
        make_artifacts(certificate_arn=CERT_ARN, hosted_zone_id="Z0123456789ABCDEFGHIJ"),
    ),
    "prefix-s3-databases-x86": (
        make_instance(
            prefix="/v1/data/", architecture="x86_64", runtime="python3.11", memory=3008, timeout=120
        ),
        make_artifacts(database_keys=(DB_KEY, DB_KEY_2), s3_database_bytes=3 * GIB),
    ),
    "prefix-no-cdn-arm64": (
        make_instance(prefix="/data/", cdn=False, log_retention_days=365),
        make_artifacts(),
    ),
    "secrets": (
        make_instance(secrets=MappingProxyType({"DATASETTE_SECRET": "MY_SECRET", "API_KEY_2": "K"})),
        make_artifacts(database_keys=(DB_KEY,)),
    ),
}

# moto cannot evaluate Fn::GetAtt on resource types it does not emulate (CloudFront); the alias records of a
# domain in a hosted zone need the distribution's domain name, so these variants deploy on AWS only.
NOT_ON_MOTO = {"domain-hosted-zone", "domain-http-api-prefix"}

SPEC = {"format": 1, "instance": "northwind", "memory": 1024, "databases": [{"name": "northwind"}]}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    """(name, instance, artifacts) for each variant."""
    instance, artifacts = VARIANTS[request.param]
    return request.param, instance, artifacts
