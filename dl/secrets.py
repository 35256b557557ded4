"""Secret values: compared by a keyed hash, never shown; Datasette's signing secret derived per instance.

A manifest's ``secrets: {FUNCTION_ENV: SOURCE_ENV}`` names environment variables whose values `dl apply`
reads from its own environment (in CI: GitHub secrets) and passes to CloudFormation as NoEcho parameters
(``templates.secret_parameter``). The spec stored with the stack, the plan and the PR comment carry only a
**fingerprint** of each value: ``HMAC-SHA256(project key, project \\0 instance \\0 FUNCTION_ENV \\0 value)``.

Why a keyed hash, and why this key
----------------------------------
A plain sha256 of a secret in a PR comment (public for public repositories) or in a stack's template
Metadata could be brute-forced for short passwords. The HMAC key makes fingerprints worthless without it. The
key is 32 random bytes, one per project and region, created by the first apply as the object
``keys/secrets-hmac.key`` in the project's artifact bucket: private, encrypted, TLS-only, versioned (see
``templates.bootstrap_template``), readable by exactly the roles that can already read the artifacts (plan
and apply), with no new service, cost or IAM grant, and as long-lived as the deployments it describes. A plan
reads it with one GetObject, only when an instance has secrets. Before the first apply there is no bucket and
every instance is a create anyway, so no fingerprint is needed to compare; apply fills them in after the
bootstrap. Deleting the object rotates everything: the next plan shows every secret as changed once.

Datasette's signing secret
--------------------------
Datasette signs cookies and CSRF tokens with ``DATASETTE_SECRET``; unset, every Lambda sandbox invents its
own and signatures break between cold starts. It is ``HMAC(project key, "datasette-secret" \\0 project \\0
instance)``: generated once (from the one random key), stable across deploys, different per instance, never in
a template (a NoEcho parameter, like the user's secrets) and never in the plan. The origin secret that
CloudFront sends to an HTTP API origin (``DL_ORIGIN_SECRET``) is derived the same way. The stack ID was not
chosen for either: stack ARNs appear in plan files, logs and consoles.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as random_source
from collections.abc import Callable

import botocore.exceptions

from dl.errors import DlError

KEY_OBJECT = "keys/secrets-hmac.key"
PREFIX = "hmac-sha256:"
Log = Callable[[str], None]


def fingerprint(key: bytes, project: str, instance: str, env_name: str, value: str) -> str:
    """The keyed hash of one secret value, as stored in the spec: equal values, equal fingerprints."""
    message = "\0".join((project, instance, env_name, value)).encode()
    return PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def datasette_secret(key: bytes, project: str, instance: str) -> str:
    """The instance's Datasette signing secret (64 hex characters), stable for as long as the key exists."""
    message = "\0".join(("datasette-secret", project, instance)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def origin_secret(key: bytes, project: str, instance: str) -> str:
    """The header value CloudFront sends to an HTTP API origin and the function checks: derived like the
    signing secret (the stack ID was used before, but stack ARNs appear in plan files, logs and consoles)."""
    message = "\0".join(("origin-secret", project, instance)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def read_key(aws, bucket: str | None, key_object: str = KEY_OBJECT) -> bytes | None:
    """The project's HMAC key from the artifact bucket; None when there is no bucket or no key yet.
    ``key_object``: another key's object (the previews' own, dl/preview.py)."""
    if not bucket:
        return None
    try:
        return aws.s3.get_object(Bucket=bucket, Key=key_object)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise DlError(f"cannot read the secrets key s3://{bucket}/{key_object}: {exc}") from None


def ensure_key(aws, bucket: str, key_object: str = KEY_OBJECT) -> bytes:
    """The project's HMAC key, created (32 random bytes) when missing. Two first applies racing: the
    conditional put lets one win where S3 supports it, and both then use what the bucket holds."""
    key = read_key(aws, bucket, key_object)
    if key:
        return key
    fresh = random_source.token_bytes(32)
    try:
        aws.s3.put_object(
            Bucket=bucket, Key=key_object, Body=fresh, ContentType="application/octet-stream", IfNoneMatch="*"
        )
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            raise DlError(f"cannot create the secrets key s3://{bucket}/{key_object}: {exc}") from None
    return read_key(aws, bucket, key_object) or fresh


def deployed_fingerprints(spec: dict | None) -> dict[str, str | None]:
    """{FUNCTION_ENV: fingerprint or None} of a stored spec (older specs stored a list of names)."""
    stored = (spec or {}).get("secrets") or {}
    return dict.fromkeys(stored) if isinstance(stored, list) else dict(stored)


def seal(
    specs: dict[str, dict],
    manifest,
    key: bytes | None,
    deployed: dict[str, dict | None],
    *,
    environ=None,
    log: Log = lambda _: None,
) -> None:
    """Put each secret's fingerprint into its instance's spec (in place). A value missing from this
    environment (a plan job without the secrets) keeps the deployed fingerprint: assumed unchanged, said so;
    without a key (no bucket yet, or before the first apply with secrets) fingerprints stay None."""
    env = os.environ if environ is None else environ
    for name, spec in specs.items():
        instance = manifest.instances[name]
        before = deployed_fingerprints(deployed.get(name))
        sealed: dict[str, str | None] = {}
        for env_name, source in sorted(instance.secrets.items()):
            if source not in env:
                sealed[env_name] = before.get(env_name)
                log(
                    f"{name}: secret {env_name}: ${source} is not set here; the plan assumes its value is "
                    "unchanged (apply needs it)"
                )
            elif key is None:
                sealed[env_name] = None
            else:
                sealed[env_name] = fingerprint(key, manifest.project, name, env_name, env[source])
        spec["secrets"] = sealed
