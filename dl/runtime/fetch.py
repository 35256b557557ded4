"""Databases kept in S3 (location ``s3``): fetched into a local folder on cold start, verified, reused.

A database is written to a temporary name while its sha256 is computed on the stream, and renamed to its
final name (``<sha256>.db``) only when complete and verified, so a partial or wrong file is never opened.
A file already at the final name (fetched by an earlier invocation of this sandbox) is reused. Several
databases are fetched in parallel; transient failures (connection resets, 5xx, throttling, truncated
streams) are retried a few times, and anything else is reported as one ``FetchError`` naming every
database that could not be fetched. Nothing is cached about failures: the next request tries again.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .instance import DatabaseSpec

ATTEMPTS = 3
CHUNK = 1024 * 1024
MAX_PARALLEL = 8
PERMANENT_S3_ERRORS = {"NoSuchKey", "NoSuchBucket", "AccessDenied", "403", "404", "InvalidObjectState"}


class FetchError(Exception):
    """One or more databases could not be fetched; the message names each and why."""


class _Mismatch(Exception):
    """The bytes fetched are not the database the package expects."""


class _WriteError(Exception):
    """The local copy cannot be written (a full or missing /tmp): not S3's fault, not worth retrying."""


def s3_client():
    """A boto3 S3 client with standard retries (boto3 comes with the Lambda runtime: imported lazily)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=float(os.environ.get("DL_FETCH_READ_TIMEOUT", "30")),
        signature_version="s3v4",  # presigned URLs: SigV2 is refused by newer regions
    )
    return boto3.client("s3", config=config)


def local_path(directory: Path, db: DatabaseSpec) -> Path:
    """Where a fetched database lives once verified."""
    return Path(directory) / f"{db.sha256}.db"


def fetch_databases(
    databases: list[DatabaseSpec], bucket: str | None, directory: Path, client_factory=s3_client
) -> dict[str, Path]:
    """Make every database available locally, in parallel; returns {name: path} or raises FetchError."""
    pending = [db for db in databases if not _present(local_path(directory, db), db)]
    paths = {db.name: local_path(directory, db) for db in databases}
    if not pending:
        return paths
    if not bucket:
        raise FetchError("databases are kept in S3 but DL_ARTIFACT_BUCKET is not set")
    client = client_factory()
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pending))) as pool:
        outcomes = list(pool.map(lambda db: _fetch_reporting(client, bucket, db, directory), pending))
    problems = [problem for problem in outcomes if problem]
    if problems:
        raise FetchError("; ".join(problems))
    return paths


def _present(path: Path, db: DatabaseSpec) -> bool:
    """A verified copy is already there (only complete, verified files ever get the final name)."""
    try:
        return path.stat().st_size == db.size
    except OSError:
        return False


def _fetch_reporting(client, bucket: str, db: DatabaseSpec, directory: Path) -> str | None:
    """Fetch one database; returns None on success or a one-line problem description."""
    try:
        fetch_database(client, bucket, db, directory)
        return None
    except _Mismatch as e:
        return f"database {db.name!r} (s3://{bucket}/{db.key}): {e}"
    except _WriteError as e:
        return f"database {db.name!r}: cannot write {directory} ({e}); is ephemeral storage large enough?"
    except Exception as e:  # botocore errors: report, never crash the sandbox
        return f"database {db.name!r} (s3://{bucket}/{db.key}): {_describe(e)}"


def fetch_database(client, bucket: str, db: DatabaseSpec, directory: Path) -> Path:
    """Download, verify and atomically install one database, retrying transient failures."""
    final = local_path(directory, db)
    Path(directory).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, ATTEMPTS + 1):
        temporary = Path(directory) / f".{db.sha256}.{uuid.uuid4().hex}.part"
        try:
            _download(client, bucket, db, temporary)
            os.replace(temporary, final)
            return final
        except Exception as e:
            if attempt == ATTEMPTS or not _transient(e):
                raise
            time.sleep(0.2 * 2**attempt)
        finally:
            temporary.unlink(missing_ok=True)
    raise AssertionError("unreachable")


def _download(client, bucket: str, db: DatabaseSpec, temporary: Path) -> None:
    """Stream the object to ``temporary``, hashing as it goes; raise _Mismatch on a wrong size or hash."""
    digest = hashlib.sha256()
    size = 0
    body = client.get_object(Bucket=bucket, Key=db.key)["Body"]
    try:
        out = open(temporary, "wb")  # noqa: SIM115 (closed below; errors here are local, not S3's)
    except OSError as e:
        raise _WriteError(e.strerror or str(e)) from e
    with out:
        for chunk in body.iter_chunks(CHUNK):  # network errors (timeouts, truncation) propagate as they are
            digest.update(chunk)
            size += len(chunk)
            try:
                out.write(chunk)
            except OSError as e:
                raise _WriteError(e.strerror or str(e)) from e
    if digest.hexdigest() != db.sha256:
        raise _Mismatch(
            f"content does not match the package (sha256 {digest.hexdigest()[:12]}..., {size} bytes; "
            f"expected {db.sha256[:12]}..., {db.size} bytes)"
        )


def _transient(error: Exception) -> bool:
    """Worth another attempt: network trouble, truncated streams, S3 5xx or throttling."""
    if isinstance(error, _Mismatch | _WriteError):
        return False
    code = _error_code(error)
    return code is None or code not in PERMANENT_S3_ERRORS


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code"))
    return None


def _describe(error: Exception) -> str:
    code = _error_code(error)
    if code in ("NoSuchKey", "404"):
        return "not found in the artifact bucket"
    if code in ("AccessDenied", "403"):
        return "access denied (does the function's role allow s3:GetObject on the artifact bucket?)"
    return f"could not be fetched ({type(error).__name__}: {error})"


def presigned_download_url(client, bucket: str, key: str, filename: str, expires: int = 300) -> str:
    """A short-lived URL that downloads ``key`` from the bucket as ``filename``."""
    return client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": "application/octet-stream",
        },
        ExpiresIn=expires,
    )
