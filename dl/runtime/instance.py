"""``dl_instance/instance.json``: what the package serves, written by ``dl package`` (format 1).

Shape::

    {"format": 1, "instance": "northwind", "prefix": "/data/", "cors": true,
     "settings": {...Datasette settings...}, "metadata": {...},
     "databases": [{"name": "northwind", "file": "northwind.db", "sha256": "<hex>", "size": 123,
                    "location": "inline" | "s3", "key": "databases/<sha256>.db"}],
     "inspect": {<Datasette inspect data keyed by database name>},
     "versions": {"datasette": "0.65.5", "mangum": "0.22.0", ...}}

Inline databases live in ``dl_instance/databases/<file>``; every database is also in the artifact bucket at
its ``key`` (downloads redirect there; ``s3`` ones are fetched from there on cold start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 1


class InstanceFileError(Exception):
    """instance.json is missing or not in a format this runtime understands."""


@dataclass(frozen=True)
class DatabaseSpec:
    """One database of the instance and where its bytes are."""

    name: str
    file: str
    sha256: str
    size: int
    location: str  # "inline" | "s3"
    key: str  # artifact bucket key

    @property
    def inline(self) -> bool:
        return self.location == "inline"


@dataclass(frozen=True)
class InstanceSpec:
    """The instance as the runtime sees it."""

    directory: Path  # the dl_instance folder
    instance: str
    prefix: str  # "/" or "/a/b/": leading and trailing slash
    cors: bool
    settings: dict
    metadata: dict
    databases: tuple[DatabaseSpec, ...]
    inspect: dict
    versions: dict = field(default_factory=dict)

    def database(self, name: str) -> DatabaseSpec | None:
        """The database with this URL name, or None."""
        return next((db for db in self.databases if db.name == name), None)

    def inline_path(self, db: DatabaseSpec) -> Path:
        """Where an inline database sits in the package."""
        return self.directory / "databases" / db.file


def load_instance(directory: Path) -> InstanceSpec:
    """Read and check ``<directory>/instance.json``."""
    path = Path(directory) / "instance.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InstanceFileError(f"cannot read {path}: {e}") from None
    if data.get("format") != FORMAT:
        raise InstanceFileError(f"{path}: format {data.get('format')!r}, this runtime reads format {FORMAT}")
    try:
        databases = tuple(
            DatabaseSpec(
                name=db["name"],
                file=db["file"],
                sha256=db["sha256"],
                size=int(db["size"]),
                location=db.get("location", "inline"),
                key=db.get("key", f"databases/{db['sha256']}.db"),
            )
            for db in data["databases"]
        )
        prefix = data.get("prefix", "/")
        return InstanceSpec(
            directory=Path(directory),
            instance=data["instance"],
            prefix=prefix if prefix.endswith("/") else prefix + "/",
            cors=bool(data.get("cors", False)),
            settings=dict(data.get("settings") or {}),
            metadata=dict(data.get("metadata") or {}),
            databases=databases,
            inspect=dict(data.get("inspect") or {}),
            versions=dict(data.get("versions") or {}),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InstanceFileError(f"{path}: malformed ({type(e).__name__}: {e})") from None
