"""The manifest as plain frozen data: ``Manifest``, ``Instance``, ``Database``, and the normalisation of a
validated document into them (defaults applied, paths resolved, prefix canonical).

Pipeline position: **manifest** -> desired state -> observed state -> plan -> apply -> render.
Pure: reading and validating ``datasette-lambda.yml`` is ``dl.manifest.load``; its semantic rules
(``dl.manifest.rules``) use the merging of defaults defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

MANIFEST_VERSION = 1

# Defaults for every instance field; `defaults:` in the manifest overrides them, instances override that.
INSTANCE_DEFAULTS: dict[str, Any] = {
    "metadata": {},
    "cors": False,
    "config": {},
    "domain": None,
    "certificate_arn": None,
    "prefix": "/",
    "memory": 1024,
    "timeout": 30,
    "architecture": "arm64",
    "runtime": "python3.13",
    "datasette": "0.65",  # the Datasette line (dl/manifest/lines.py)
    "plugins": [],
    "protect": False,
    "endpoint": "function-url",
    "cdn": True,
    "log_retention_days": 30,
    "secrets": {},
}


@dataclass(frozen=True)
class Database:
    """One SQLite file of an instance."""

    name: str  # URL name in Datasette (defaults to the file stem)
    path: Path  # absolute, resolved
    source: str  # the path as written in the manifest (for messages)


@dataclass(frozen=True)
class Instance:
    """One Datasette deployment, fully normalised (defaults applied, paths resolved, prefix canonical)."""

    name: str
    databases: tuple[Database, ...]
    metadata: MappingProxyType  # Datasette metadata (parsed, inline or from file)
    metadata_source: str | None  # the metadata file as written, None when inline
    cors: bool
    config: MappingProxyType  # Datasette settings, typed and checked against the line's list (dl/manifest/lines.py)
    domain: str | None
    certificate_arn: str | None
    prefix: str  # "/" or "/segment/.../" : always leading and trailing slash
    memory: int
    timeout: int
    architecture: str  # "arm64" | "x86_64"
    runtime: str  # "python3.11" | "python3.12" | "python3.13"
    plugins: tuple[str, ...]  # pip requirement strings
    protect: bool
    endpoint: str  # "function-url" | "http-api"
    cdn: bool
    log_retention_days: int
    secrets: MappingProxyType  # function env var name -> name of the env var holding the value at apply time
    datasette: str = "0.65"  # the Datasette line: "0.65" | "1.0a" (dl/manifest/lines.py)

    @property
    def python_version(self) -> str:
        """'3.13' for runtime 'python3.13'."""
        return self.runtime.removeprefix("python")


@dataclass(frozen=True)
class Manifest:
    path: Path  # absolute path of the manifest file
    version: int
    project: str
    region: str | None  # None: boto3's default region (AWS_REGION / profile)
    instances: MappingProxyType  # name -> Instance, in manifest order
    root: Path = field(
        default=Path("/")
    )  # the repository that holds the manifest; databases must stay inside
    tags: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # extra tags for every stack


def canonical_prefix(prefix: str) -> str:
    """'data', '/data' and '/data/' -> '/data/'; '' and '/' -> '/'."""
    parts = [p for p in prefix.split("/") if p]
    return "/" + "".join(f"{p}/" for p in parts)


def instance_settings(document: dict, name: str) -> dict[str, Any]:
    """One instance's raw settings with `defaults:` and the built-in defaults applied.

    `config` and `secrets` merge key by key (the instance wins); every other field is replaced whole.
    """
    defaults = document.get("defaults") or {}
    own = document["instances"][name]
    merged: dict[str, Any] = {}
    for key, builtin in INSTANCE_DEFAULTS.items():
        if key in ("config", "secrets"):
            merged[key] = {**builtin, **defaults.get(key, {}), **own.get(key, {})}
        else:
            merged[key] = own.get(key, defaults.get(key, builtin))
    merged["databases"] = own["databases"]
    return merged


def database_entries(raw: list) -> list[tuple[str, str]]:
    """[(name, path as written)] from the manifest's databases list."""
    entries = []
    for item in raw:
        source = item if isinstance(item, str) else item["path"]
        name = Path(source).stem if isinstance(item, str) else item.get("name", Path(source).stem)
        entries.append((name, source))
    return entries


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def normalise(
    document: dict, *, path: Path, root: Path, metadata: dict[str, tuple[dict, str | None]]
) -> Manifest:
    """Build the frozen Manifest from a validated document. `metadata`: instance -> (parsed, source file)."""
    instances = {}
    for name in document["instances"]:
        s = instance_settings(document, name)
        meta, meta_source = metadata.get(name, ({}, None))
        databases = tuple(
            Database(name=db_name, path=(path.parent / source).resolve(), source=source)
            for db_name, source in database_entries(s["databases"])
        )
        instances[name] = Instance(
            name=name,
            databases=databases,
            metadata=_freeze(meta),
            metadata_source=meta_source,
            cors=s["cors"],
            config=MappingProxyType(dict(s["config"])),
            domain=s["domain"],
            certificate_arn=s["certificate_arn"],
            prefix=canonical_prefix(s["prefix"]),
            memory=s["memory"],
            timeout=s["timeout"],
            architecture=s["architecture"],
            runtime=s["runtime"],
            plugins=tuple(s["plugins"]),
            protect=s["protect"],
            endpoint=s["endpoint"],
            cdn=s["cdn"],
            log_retention_days=s["log_retention_days"],
            secrets=MappingProxyType(dict(s["secrets"])),
            datasette=s["datasette"],
        )
    return Manifest(
        path=path,
        version=document.get("version", MANIFEST_VERSION),
        project=document["project"],
        region=document.get("region"),
        instances=MappingProxyType(instances),
        root=root,
        tags=MappingProxyType(dict(document.get("tags") or {})),
    )


def thaw(value: Any) -> Any:
    """Plain dicts and lists from frozen manifest values (for JSON)."""
    if isinstance(value, MappingProxyType | dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
