"""Artifacts: the packages and databases apply uploads, and the garbage collection of those no stack uses.

Artifacts live in the bootstrap's bucket under content-addressed keys (``packages/``, ``databases/``, large
``templates/``; a preview's under ``previews/``, :func:`dl.aws.names.artifact_prefix`), so an upload is skipped
when its key is already there (:func:`upload_artifacts`) and instances, previews and applies share them.
A destroy deletes the artifacts of the destroyed instance that nothing else references: not the other
instances, not what this very apply deploys, not the other scopes' (production's, the other pull requests'
previews': :func:`referenced_elsewhere`). After a successful apply, under the project's lock,
:func:`collect_garbage` deletes what no stack references any more once it is older than a grace period.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dl.apply.stacks import Interrupted, Log
from dl.aws.client import Aws
from dl.aws.names import artifact_prefix
from dl.aws.observed import ObservedState, observe_scopes
from dl.build.desired import DesiredInstance


def artifact_keys(spec: dict) -> set[str]:
    keys = {d["key"] for d in spec.get("databases", [])}
    if spec.get("package", {}).get("key"):
        keys.add(spec["package"]["key"])
    return keys


def upload_artifacts(
    aws: Aws,
    bucket: str,
    desired: DesiredInstance,
    *,
    cancel: threading.Event,
    step: Callable[[str], None],
    log: Log,
    print_lock: threading.Lock,
) -> int:
    """Upload the package and databases that are not in the bucket yet. Returns bytes uploaded."""
    spec = desired.spec
    uploads = [(desired.package_path, spec["package"]["key"], spec["package"]["size"])]
    sources = {d.name: d.source for d in desired.package.databases}
    uploads += [(sources[db["name"]], db["key"], db["size"]) for db in spec["databases"]]
    sent = 0
    for path, key, size in uploads:
        if cancel.is_set():
            raise Interrupted("interrupted while uploading artifacts (finished uploads are kept)")
        if aws.object_exists(bucket, key):
            continue
        step("uploading artifacts")
        log(f"{desired.name}: uploading {Path(path).name} ({size:,} bytes) to s3://{bucket}/{key}")
        aws.upload_file(Path(path), bucket, key, progress=_progress(desired.name, size, print_lock))
        sent += size
    return sent


def _progress(name: str, total: int, print_lock: threading.Lock):
    if total < 32 * 2**20 or not sys.stderr.isatty():
        return None
    state = {"done": 0, "shown": -1}

    def callback(n: int) -> None:
        state["done"] += n
        pct = int(state["done"] * 100 / total)
        if pct // 10 != state["shown"]:
            state["shown"] = pct // 10
            with print_lock:
                print(f"{name}: upload {pct}%", file=sys.stderr)

    return callback


def delete_unshared_artifacts(
    aws: Aws, name: str, observed: ObservedState, elsewhere: set[str], log: Log
) -> None:
    """Delete the destroyed instance's artifacts that no other instance of the scope uses, nor ``elsewhere``
    (what this very apply deploys: a rename, a move; and the other scopes' keys)."""
    if not observed.bucket:
        return
    gone = observed.instances.get(name)
    if gone is None or gone.spec is None:
        return
    mine = artifact_keys(gone.spec)
    others = set(elsewhere)
    for other, inst in observed.instances.items():
        if other != name and inst.spec is not None:
            others |= artifact_keys(inst.spec)
    unshared = sorted(mine - others)
    if unshared:
        aws.delete_objects(observed.bucket, unshared)
        log(
            f"{name}: deleted {len(unshared)} artifact{'s' if len(unshared) != 1 else ''} no other instance uses"
        )


def referenced_elsewhere(aws: Aws, project: str, preview: int | None, parallelism: int) -> set[str]:
    """Artifact keys the stacks of every other scope reference (production's, other pull requests')."""
    scopes = observe_scopes(aws, project, parallelism=parallelism)
    keys: set[str] = set()
    for number, observed in scopes.items():
        if number != preview:
            for inst in observed.instances.values():
                keys |= artifact_keys(inst.spec or {})
    return keys


def collect_garbage(
    aws: Aws, bucket: str, project: str, preview: int | None, parallelism: int, log: Log
) -> None:
    """Delete artifacts no stack of the project references any more, once they are older than the grace
    period (so a concurrent apply's fresh uploads are never taken). The bucket is versioned: the bytes stay
    recoverable until its lifecycle rule expires them. Previews count (their stacks' keys are
    referenced too); each scope collects under its own prefix only (a preview's: previews/)."""
    grace = timedelta(hours=float(os.environ.get("DL_ARTIFACT_GRACE_HOURS", "24")))
    scopes = observe_scopes(aws, project, parallelism=parallelism)
    referenced: set[str] = set()
    for number, observed in scopes.items():
        for inst in observed.instances.values():
            unsettled = inst.spec is None or inst.stack.status.endswith("_IN_PROGRESS")
            if unsettled and (number is None) == (preview is None):
                return  # keys unknown, or a rollback may still need the old ones: delete nothing
            referenced |= artifact_keys(inst.spec or {})  # (another scope's keys: another prefix)
    cutoff = datetime.now(UTC) - grace
    root = artifact_prefix(preview)
    stale = [
        obj["Key"]
        for prefix in ("packages/", "databases/", "templates/")
        for obj in aws.list_objects(bucket, root + prefix)
        if obj["Key"] not in referenced and obj["LastModified"] <= cutoff
    ]
    if stale:
        aws.delete_objects(bucket, stale)
        log(f"artifacts: deleted {len(stale)} no stack references any more (kept as old versions)")
