"""Loading the manifest: read -> parse YAML (with positions) -> JSON Schema -> semantic rules -> normalise.

``load_manifest`` is the one entry point: it reports *every* problem it finds as one ``ManifestError`` (each
located at its line and column) and returns the frozen ``dl.manifest.model.Manifest``. The schema is
``dl.manifest.schema``, the semantic rules ``dl.manifest.rules``; ``DEFAULT_MANIFEST`` is the file the CLI
reads unless told otherwise. Pure apart from reading the manifest file and the files it names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dl.manifest.model import Manifest, normalise

DEFAULT_MANIFEST = "datasette-lambda.yml"

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
