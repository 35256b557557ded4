"""One apply at a time per project: a lock object in the artifact bucket, like Terraform's S3 lock file.

``apply`` and ``destroy`` take it before their first write and release it at the end (Ctrl-C included); ``plan``
and ``status`` never touch it ("writes nothing" elsewhere excludes this object). The lock is
``s3://<artifact bucket>/locks/project.json``:

``{"holder", "operation" ("apply" | "destroy"), "commit", "since", "renewed", "lease_seconds" (300), "token"}``

- **Taking it** is S3's conditional write ``PutObject`` with ``If-None-Match: *``: of two writers one gets
  ``412 PreconditionFailed`` (a ``409 ConditionalRequestConflict`` is retried). The loser fails at once naming the
  holder, or with ``--lock-timeout`` polls until the lock is free.
- **The lease**: the holder rewrites the object every third of ``lease_seconds`` (a background thread,
  ``PutObject`` with ``If-Match: <its ETag>``, so it never overwrites a lock that someone else broke and took).
  A lock whose object S3 last modified more than ``lease_seconds`` ago (both times S3's clock: the object's
  ``LastModified`` and the response's ``Date``) belongs to a holder that stopped (a cancelled CI job): the next
  apply takes it over with ``If-Match: <the stale ETag>``, so two waiting applies cannot both take it.
- **Releasing** is ``DeleteObject`` with ``If-Match: <its ETag>``: a lock broken and retaken by another apply is
  never deleted by the first holder. ``dl unlock`` shows the lock and deletes it (after confirmation).

The bucket is versioned: each renewal leaves a small noncurrent version that the bucket's lifecycle rule expires.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import botocore.exceptions

from dl.aws.names import LOCK_KEY
from dl.errors import DlError

Log = Callable[[str], None]


def lease_seconds() -> float:
    """How long a lock stays valid without renewal (``DL_LOCK_LEASE_SECONDS``, default 300)."""
    return float(os.environ.get("DL_LOCK_LEASE_SECONDS") or 300)


def poll_seconds() -> float:
    return float(os.environ.get("DL_LOCK_POLL_SECONDS") or 5)


class LockHeld(DlError):
    """Another apply or destroy of the project holds the lock."""


@dataclass(frozen=True)
class LockInfo:
    """What the lock object says, and what S3 says about it."""

    holder: str
    operation: str
    commit: str
    since: str
    lease_seconds: float
    token: str
    renewed: str = ""  # the holder's time of its last renewal (so each renewal changes the ETag)
    etag: str = ""
    last_modified: datetime | None = None  # S3's time of the last write (take or renewal)
    now: datetime | None = None  # S3's time when it was read

    @property
    def age(self) -> float | None:
        """Seconds since the holder last wrote it (S3's clock)."""
        if self.last_modified is None or self.now is None:
            return None
        return max(0.0, (self.now - self.last_modified).total_seconds())

    @property
    def expired(self) -> bool:
        return self.age is not None and self.age > self.lease_seconds

    def describe(self) -> str:
        renewed = f", renewed {self.age:.0f} s ago" if self.age is not None else ""
        state = " (its lease has expired: the holder stopped)" if self.expired else ""
        return f"{self.operation} by {self.holder}, commit {self.commit[:12]}, since {self.since}{renewed}{state}"

    def body(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if k not in ("etag", "last_modified", "now")}
        return json.dumps(fields, sort_keys=True).encode()


def holder_name() -> str:
    """Who takes the lock: the GitHub Actions run when in one, else user@host (pid)."""
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_RUN_ID"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        actor = os.environ.get("GITHUB_ACTOR", "?")
        return f"GitHub Actions {server}/{repo}/actions/runs/{os.environ['GITHUB_RUN_ID']} ({actor})"
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _server_time(response: dict) -> datetime:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).astimezone(UTC) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def read_lock(aws, bucket: str, key: str = LOCK_KEY) -> LockInfo | None:
    """The lock as it is now, or None when nobody holds it."""
    try:
        response = aws.s3.get_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise DlError(f"cannot read the lock s3://{bucket}/{key}: {exc}") from None
    try:
        data = json.loads(response["Body"].read())
        fields = {k: data[k] for k in ("holder", "operation", "commit", "since", "token")}
        fields["renewed"] = str(data.get("renewed", ""))
        lease = float(data.get("lease_seconds", lease_seconds()))
    except (ValueError, KeyError, TypeError):
        data, fields, lease = {}, None, lease_seconds()
    if fields is None:  # unreadable: treated as held by an unknown holder, breakable with `dl unlock`
        fields = {"holder": "unknown", "operation": "?", "commit": "?", "since": "?", "token": ""}
    last = response.get("LastModified")
    return LockInfo(
        **fields,
        lease_seconds=lease,
        etag=response.get("ETag", ""),
        last_modified=last.astimezone(UTC) if last else None,
        now=_server_time(response),
    )


class ProjectLock:
    """The lock of one project, held by this process between :meth:`acquire` and :meth:`release`."""

    def __init__(
        self, aws, bucket: str, *, operation: str, commit: str, log: Log = print, key: str = LOCK_KEY
    ):
        self.aws = aws
        self.key = key  # the object holding it: previews have their own (dl/apply/preview.py LOCK_KEY)
        self.bucket = bucket
        self.log = log
        self.info = LockInfo(
            holder=holder_name(),
            operation=operation,
            commit=commit,
            since=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            lease_seconds=lease_seconds(),
            token=uuid.uuid4().hex,
        )
        self.etag: str | None = None
        self.lost = threading.Event()  # set when the lock was broken (and maybe retaken) while we held it
        self.on_lost: Callable[[str], None] | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self.etag is not None and not self.lost.is_set()

    def _put(self, **condition) -> str | None:
        """Write our lock under a condition; its ETag, or None when the condition failed (412)."""
        for attempt in range(5):
            try:
                response = self.aws.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=self.info.body(),
                    ContentType="application/json",
                    **condition,
                )
                return response["ETag"]
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code == "PreconditionFailed":
                    return None
                if code == "ConditionalRequestConflict" and attempt < 4:  # S3: retry a 409
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise DlError(f"cannot write the lock s3://{self.bucket}/{self.key}: {exc}") from None
            except botocore.exceptions.BotoCoreError as exc:
                raise DlError(f"cannot write the lock s3://{self.bucket}/{self.key}: {exc}") from None
        return None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock; wait up to ``timeout`` seconds for the holder to release it. :class:`LockHeld` when
        it is still held then (nothing else has been written)."""
        deadline = time.monotonic() + timeout
        announced = None
        while True:
            etag = self._put(IfNoneMatch="*")
            if etag is None:
                current = read_lock(self.aws, self.bucket, self.key)
                if current is None:
                    continue  # released between our write and our read: try again at once
                if current.token == self.info.token:  # our own write landed; a retry of it was refused
                    etag = current.etag
                elif current.expired:
                    self.log(f"lock: taking over a lock whose lease expired: {current.describe()}")
                    etag = self._put(IfMatch=current.etag)
            if etag is not None:
                self.etag = etag
                self._start_renewing()
                return
            current = current or read_lock(self.aws, self.bucket, self.key)
            if current is None:
                continue
            if time.monotonic() >= deadline:
                waited = f" (waited {timeout:.0f} s)" if timeout else ""
                raise LockHeld(
                    f"another {current.operation} of this project holds the lock{waited}: {current.describe()}.\n"
                    "  Nothing was changed. Wait for it (`--lock-timeout SECONDS`), or, if it is stale, "
                    "break it with `dl unlock`."
                )
            if announced != current.token:
                self.log(f"lock: waiting for {current.describe()}")
                announced = current.token
            time.sleep(min(poll_seconds(), max(0.05, deadline - time.monotonic())))

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="dl-lock-lease", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        interval = max(0.05, self.info.lease_seconds / 3)
        while not self._stop.wait(interval):
            self.info = replace(self.info, renewed=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            try:
                etag = self._put(IfMatch=self.etag)
            except DlError as exc:  # transient after botocore's retries: try again at the next tick
                self.log(f"lock: could not renew the lease ({exc}); retrying")
                continue
            if etag is None:  # refused: unless our own renewal landed before a retry of it, it is not ours
                try:
                    current = read_lock(self.aws, self.bucket, self.key)
                except DlError:
                    continue
                etag = current.etag if current is not None and current.token == self.info.token else None
            if etag is None:
                self.lost.set()
                message = "the lock was broken by someone else (`dl unlock`?) while this apply held it"
                self.log(f"lock: {message}; stopping at the next safe point")
                if self.on_lost:
                    self.on_lost(message)
                return
            self.etag = etag

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if self.etag is None or self.lost.is_set():
            return
        try:
            self.aws.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "NoSuchKey", "404"):
                self.log(
                    f"lock: could not release s3://{self.bucket}/{self.key}: {exc}; `dl unlock` breaks it"
                )
        self.etag = None

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def break_lock(aws, bucket: str, info: LockInfo) -> bool:
    """Delete the lock shown to the user, only if it is still that lock (a renewal changes it). True if deleted."""
    try:
        aws.s3.delete_object(Bucket=bucket, Key=LOCK_KEY, IfMatch=info.etag)
        return True
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in ("PreconditionFailed", "NoSuchKey", "404"):
            return False
        raise DlError(f"cannot delete the lock s3://{bucket}/{LOCK_KEY}: {exc}") from None
