"""The manifest: load ``datasette-lambda.yml``, validate it, and normalise it into plain frozen data.

Pipeline position: **manifest** -> desired state -> observed state -> plan -> apply -> render.
Everything here is pure apart from reading the manifest file and the files it names.
"""

from __future__ import annotations

import os
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


# ---------------------------------------------------------------------------------------------------
# Loading: read -> parse YAML (with positions) -> JSON Schema -> semantic rules -> normalise.

MAX_MANIFEST_BYTES = 1024 * 1024  # a manifest is a page of YAML; anything larger is a mistake


def find_root(directory: Path) -> Path:
    """The repository holding the manifest: the nearest ancestor with a .git entry, else the manifest's folder."""
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate
    return directory


def read_manifest_text(path: Path, display: str) -> str:
    """The manifest's text, or a ManifestError saying why it cannot be read."""
    from dl.errors import ManifestError, Problem

    def fail(message: str) -> ManifestError:
        return ManifestError([Problem(display, 0, 0, "", message)])

    try:
        if path.is_dir():
            raise fail("is a directory, expected the manifest file (datasette-lambda.yml)")
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise fail(f"is {size:,} bytes; a manifest is at most {MAX_MANIFEST_BYTES:,} bytes")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("file not found (use -f/--manifest or DL_MANIFEST to name another file)") from None
    except PermissionError:
        raise fail("permission denied: cannot read the manifest") from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ManifestError(
            [Problem(display, line, col, "", "not UTF-8 text (is this a binary file?)")]
        ) from None


def load_manifest(
    path: str | Path, *, allow_outside_paths: bool = False, check_files: bool = True
) -> Manifest:
    """Load, validate and normalise a manifest. Raises ManifestError listing *every* problem found.

    `check_files=False` skips opening the databases (their existence and location are still checked).
    """
    from dl.errors import ManifestError, Problem
    from dl.manifest import rules as validate
    from dl.manifest import schema, yamldoc

    path = Path(path).absolute()
    relative = os.path.relpath(path)
    display = relative if not relative.startswith("..") else str(path)
    text = read_manifest_text(path, display)
    try:
        document, positions, yaml_issues = yamldoc.parse(text)
    except yamldoc.YamlSyntaxError as exc:
        raise ManifestError([Problem(display, exc.line, exc.col, "", exc.message)]) from None

    def located(where: tuple, message: str, *, key: bool = False) -> Problem:
        line, col = positions.of(tuple(where), key=key)
        return Problem(display, line, col, ".".join(str(p) for p in where), message)

    problems = [Problem(display, i.line, i.col, ".".join(map(str, i.path)), i.message) for i in yaml_issues]
    if document is None:
        problems.append(
            Problem(display, 1, 1, "", "the manifest is empty: expected 'project' and 'instances'")
        )
        raise ManifestError(problems)
    shape = list(schema.problems(document))
    problems += [located(where, message, key=key) for where, key, message in shape]

    # Semantic rules need a well-shaped document: run them on the instances the schema found no fault in,
    # so one run still reports every problem it can.
    clean = _schema_clean_part(document, [where for where, _, _ in shape])
    root = find_root(path.parent)
    context = validate.Context(
        manifest_dir=path.parent,
        root=root,
        allow_outside_paths=allow_outside_paths,
        check_files=check_files,
    )
    if clean is not None:
        findings = validate.validate_document(clean, context)
        problems += [f.to_problem(display, positions) for f in findings]
    if problems:
        raise ManifestError(problems)
    return normalise(document, path=path, root=root, metadata=context.metadata)


def _schema_clean_part(document: Any, faults: list[tuple]) -> dict | None:
    """The document without what has schema faults, so the semantic rules still check everything else.

    A faulty setting is left out (of an instance, or of `defaults`: the built-in default stands in); inside a
    mapping (`config`, `secrets`) only the faulty entry is, so its neighbours are still checked; a malformed
    instance is left out whole. None when the document's shape is beyond that (no `instances` mapping).
    """
    import copy

    if not isinstance(document, dict) or not isinstance(document.get("instances"), dict):
        return None
    clean = copy.deepcopy(document)
    if not isinstance(clean.get("defaults", {}), dict):
        clean.pop("defaults")
    dropped_instances = set()
    for where in faults:
        if not where or where[0] in ("project", "region", "version", "tags"):
            continue  # these do not feed the semantic rules
        if where[0] == "defaults":
            _drop(clean.get("defaults"), where[1:])
        elif where[0] == "instances":
            if len(where) < 3 or not isinstance(clean["instances"].get(where[1]), dict):
                dropped_instances.add(where[1] if len(where) > 1 else None)
            elif where[2] == "databases":
                clean["instances"][where[1]]["databases"] = []  # their own problems are already reported
            else:
                _drop(clean["instances"][where[1]], where[2:])
        else:
            return None
    for name in dropped_instances:
        clean["instances"].pop(name, None)
    for name, entry in list(clean["instances"].items()):
        if not isinstance(entry, dict):
            clean["instances"].pop(name)
        else:
            entry.setdefault("databases", [])
    return clean


def _drop(settings: Any, where: tuple) -> None:
    """Remove the faulty setting ``where[0]`` of ``settings``, or only its entry ``where[1]`` in a mapping."""
    if not isinstance(settings, dict) or not where or where[0] not in settings:
        return
    value = settings[where[0]]
    if len(where) > 1 and isinstance(value, dict) and not isinstance(value.get(where[1], {}), (dict, list)):
        value.pop(where[1], None)
    else:
        settings.pop(where[0])


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
