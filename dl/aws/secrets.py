"""Secret values: compared by a keyed hash, never shown; Datasette's signing secret derived per instance.

A manifest's ``secrets: {FUNCTION_ENV: SOURCE_ENV}`` names environment variables whose values `dl apply`
reads from its own environment (in CI: GitHub secrets) and passes to CloudFormation as NoEcho parameters
(``names.secret_parameter``). The spec stored with the stack, the plan and the PR comment carry only a
**fingerprint** of each value: ``HMAC-SHA256(fingerprint key, project \\0 instance \\0 FUNCTION_ENV \\0 value)``.

Why a keyed hash, and two keys
------------------------------
A plain sha256 of a secret in a PR comment (public for public repositories) or in a stack's template
Metadata could be brute-forced for short passwords. The HMAC key makes fingerprints worthless without it. Two
keys of 32 random bytes each, one pair per project and region, live in the project's artifact bucket
(private, encrypted, TLS-only, versioned; see ``dl/aws/bootstrap.py``):

- the **fingerprint key** ``state/secrets-fingerprint.key``: readable by the plan role (under the bucket's
  plan-readable ``state/`` prefix), used only for fingerprints. A plan reads it with one GetObject, only when
  an instance has secrets. Whoever can read it can test guesses against the fingerprints in a PR comment, as
  with any password hash: a weak secret stays weak;
- the **derivation key** ``keys/secrets-hmac.key`` (its name from before the split, so every derived value
  stays the same and nobody is logged out): apply only; the plan role, the function roles (their boundary)
  and pull requests cannot read ``keys/``. Datasette's signing secret and the origin secret come from it.

``dl bootstrap`` and the first apply create whichever is missing. Projects from before the split had one key
(now the derivation key): the new fingerprint key changes every fingerprint once, so the first plan after the
upgrade shows each secret as changed; applying it changes no value. Deleting a key rotates what it makes.

Before the first apply there is no bucket and every instance is a create anyway, so no fingerprint is needed
to compare; apply fills them in after the bootstrap.

Datasette's signing secret
--------------------------
Datasette signs cookies and CSRF tokens with ``DATASETTE_SECRET``; unset, every Lambda sandbox invents its
own and signatures break between cold starts. It is ``HMAC(derivation key, "datasette-secret" \\0 project \\0
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
from dataclasses import dataclass

import botocore.exceptions

from dl.errors import DlError
from dl.plan.diff import deployed_fingerprints

DERIVATION_KEY_OBJECT = "keys/secrets-hmac.key"  # apply only (the key of releases before the split)
FINGERPRINT_KEY_OBJECT = "state/secrets-fingerprint.key"  # plan-readable
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


@dataclass(frozen=True)
class Keys:
    fingerprint: bytes
    derivation: bytes


def _read(aws, bucket: str | None, key: str) -> bytes | None:
    if not bucket:
        return None
    try:
        return aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise DlError(f"cannot read the secrets key s3://{bucket}/{key}: {exc}") from None


def read_fingerprint_key(aws, bucket: str | None) -> bytes | None:
    """The project's fingerprint key (what plan reads); None when there is no bucket or no key yet."""
    return _read(aws, bucket, FINGERPRINT_KEY_OBJECT)


def _ensure(aws, bucket: str, key: str) -> bytes:
    """One key, created (32 random bytes) when missing. Two first applies racing: the conditional put lets
    one win where S3 supports it, and both then use what the bucket holds."""
    found = _read(aws, bucket, key)
    if found:
        return found
    fresh = random_source.token_bytes(32)
    try:
        aws.s3.put_object(
            Bucket=bucket, Key=key, Body=fresh, ContentType="application/octet-stream", IfNoneMatch="*"
        )
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            raise DlError(f"cannot create the secrets key s3://{bucket}/{key}: {exc}") from None
    return _read(aws, bucket, key) or fresh


def ensure_keys(aws, bucket: str) -> Keys:
    """Both keys of the project (apply and `dl bootstrap`), each created when missing."""
    return Keys(
        fingerprint=_ensure(aws, bucket, FINGERPRINT_KEY_OBJECT),
        derivation=_ensure(aws, bucket, DERIVATION_KEY_OBJECT),
    )


def preview_keys(aws, bucket: str, derivation_object: str) -> Keys:
    """A preview's keys (dl/apply/preview.py): the project's fingerprint key, read only (as plan reads it), and the
    previews' own derivation key, created when missing; never production's derivation key."""
    fingerprint = _read(aws, bucket, FINGERPRINT_KEY_OBJECT)
    if fingerprint is None:
        raise DlError(
            f"the project's fingerprint key s3://{bucket}/{FINGERPRINT_KEY_OBJECT} is missing: previews use "
            "production's; run `dl bootstrap` (or deploy production with `dl apply`) first"
        )
    return Keys(fingerprint=fingerprint, derivation=_ensure(aws, bucket, derivation_object))


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
