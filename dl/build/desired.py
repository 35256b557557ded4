"""Desired state: what each instance of the manifest should be once deployed, with content hashes.

Pipeline position: manifest -> **desired state** -> observed state -> plan -> apply -> render.

For every instance the deployment package is built (deterministic, cached: see dl/build/package.py; an unchanged
instance reuses its earlier zip without building) so that its sha256 is known, and a *spec* is derived: a plain JSON document with everything that, when it changes, changes
the deployment (databases by content and a summary of their data, metadata, settings, front door, runtime,
package). The spec is stored with the deployed stack (template Metadata) and is what `dl plan` diffs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from dl import __version__
from dl.build.hashing import cache_dir, read_cache_entry, write_cache_entry
from dl.build.inspection import inspect_database
from dl.manifest.lines import DEFAULT_LINE
from dl.manifest.model import Instance, Manifest, thaw

SPEC_FORMAT = 1

Log = Callable[[str], None]


@dataclass(frozen=True)
class DesiredInstance:
    instance: Instance
    spec: dict  # JSON-able; see instance_spec()
    package_path: Path  # the built zip (content-addressed file in the cache)
    package: object  # dl.build.package.PackageResult

    @property
    def name(self) -> str:
        return self.instance.name


def spec_digest(spec: dict) -> str:
    """sha256 of a spec's canonical JSON: equal specs, equal digests."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def database_summary(inspection: dict) -> dict:
    """The part of a database's inspection that a reviewer reads in a plan: tables, rows, columns, views."""
    return {
        "tables": {
            name: {"rows": entry.get("count"), "columns": list(entry.get("columns", []))}
            for name, entry in sorted(inspection.get("tables", {}).items())
        },
        "views": sorted(inspection.get("views", {})),
    }


def instance_spec(
    project: str,
    instance: Instance,
    package,
    *,
    tags: dict | None = None,
    key_prefix: str = "",
    preview: int | None = None,
) -> dict:
    """The normalised spec of one instance: what was (or will be) deployed. Pure given its inputs.

    `tags`: the manifest's extra stack tags (a change of them is a change of the deployment). `preview`: the
    pull request a preview copy is for (dl/apply/preview.py); its artifacts live under `key_prefix`."""
    databases = []
    for decision in package.databases:
        inspection = inspect_database(decision.source)
        databases.append(
            {
                "name": decision.name,
                "file": decision.file,
                "sha256": decision.sha256,
                "size": decision.size,
                "key": decision.key,
                "location": decision.location,
                **database_summary(inspection),
            }
        )
    return {
        "format": SPEC_FORMAT,
        "project": project,
        "instance": instance.name,
        "databases": databases,
        "metadata": thaw(instance.metadata),
        "config": thaw(instance.config),
        "cors": instance.cors,
        "domain": instance.domain,
        "certificate_arn": instance.certificate_arn,
        "prefix": instance.prefix,
        "runtime": instance.runtime,
        "architecture": instance.architecture,
        "memory": instance.memory,
        "timeout": instance.timeout,
        "endpoint": instance.endpoint,
        "cdn": instance.cdn,
        "log_retention_days": instance.log_retention_days,
        "plugins": list(instance.plugins),
        "protect": instance.protect,
        "secrets": dict.fromkeys(
            sorted(instance.secrets)
        ),  # fingerprints: dl.aws.secrets.seal, after observing
        "versions": dict(sorted(package.versions.items())),
        "package": {
            "sha256": package.sha256,
            "key": f"{key_prefix}packages/{package.sha256}.zip",
            "size": package.zipped_size,
        },
        "tags": dict(sorted((tags or {}).items())),
        "tool_version": __version__,
        # the Datasette line, only when not the default (specs deployed before lines existed stay equal)
        **({"datasette": instance.datasette} if instance.datasette != DEFAULT_LINE else {}),
        **({"preview": preview} if preview is not None else {}),
    }


def packages_dir() -> Path:
    return cache_dir() / "packages"


def build_instance(
    project: str,
    instance: Instance,
    *,
    target: str = "lambda",
    log: Log = print,
    tags: dict | None = None,
    preview: int | None = None,
) -> DesiredInstance:
    """Build the instance's package (into the content-addressed package cache) and derive its spec.

    An unchanged instance is not built again: :func:`dl.build.package.build_key` names everything the zip depends on,
    and ``<cache>/builds/<key>`` records the zip it gave (in ``packages/``) and the build's result.
    """
    from dl.aws.names import artifact_prefix
    from dl.build.dependencies import unpinned_plugins
    from dl.build.package import build_key, build_package, result_from_record, result_record

    key_prefix = artifact_prefix(preview)
    out_dir = packages_dir()
    key = build_key(instance, target=target, key_prefix=key_prefix)
    record = read_cache_entry("builds", key)
    package = result_from_record(record, out_dir / f"{record.get('sha256')}.zip") if record else None
    if package is not None:
        log(f"{instance.name}: package unchanged, reusing {package.path.name}")
        for warning in unpinned_plugins(instance.plugins, package.versions):  # said on every build
            log(f"{instance.name}: warning: {warning}")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{instance.name}-", suffix=".zip.tmp", dir=out_dir)
        os.close(fd)
        try:
            built = build_package(instance, Path(tmp), target=target, log=log, key_prefix=key_prefix)
            final = out_dir / f"{built.sha256}.zip"
            shutil.move(tmp, final)
        finally:
            Path(tmp).unlink(missing_ok=True)
        package = replace(built, path=final)
        write_cache_entry("builds", key, result_record(package))
    spec = instance_spec(project, instance, package, tags=tags, key_prefix=key_prefix, preview=preview)
    return DesiredInstance(instance=instance, spec=spec, package_path=package.path, package=package)


def desired_state(
    manifest: Manifest,
    names: list[str] | None = None,
    *,
    target: str = "lambda",
    parallelism: int = 4,
    log: Log = print,
    preview: int | None = None,
) -> dict[str, DesiredInstance]:
    """DesiredInstance for each named (default: every) instance, built in parallel, in manifest order.

    `preview`: build the preview copies for that pull request (the manifest is already the preview's,
    dl/apply/preview.py `preview_manifest`)."""
    names = list(manifest.instances) if names is None else names
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        futures = {
            name: pool.submit(
                build_instance,
                manifest.project,
                manifest.instances[name],
                target=target,
                log=log,
                tags=dict(manifest.tags),
                preview=preview,
            )
            for name in names
        }
        return {name: futures[name].result() for name in names}
