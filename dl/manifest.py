"""The manifest: load ``datasette-lambda.yml``, validate it, and normalise it into plain frozen data.

Pipeline position: **manifest** -> desired state -> observed state -> plan -> apply -> render.
Everything here is pure apart from reading the manifest file and the files it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

DEFAULT_MANIFEST = "datasette-lambda.yml"
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
    config: MappingProxyType  # Datasette settings, typed and checked against datasette.app.SETTINGS
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
    root: Path = field(default=Path("/"))  # the repository that holds the manifest; databases must stay inside
