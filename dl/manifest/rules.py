"""Semantic rules for a manifest that already matches schema.json.

Like Chalice's validate.py: one small ``rule_*`` function per rule, each yielding Findings, run in order by
``validate_document``. Rules read files the manifest names (databases, metadata) but never write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dl.errors import Problem
from dl.manifest import sqlite_file, tags, yamldoc
from dl.manifest.model import database_entries, instance_settings

RESERVED_ENV_PREFIXES = ("AWS_", "LAMBDA_", "DL_", "_")
RESERVED_ENV_NAMES = {"PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "HOME", "TZ", "LANG"}
# Variables of the machine running `dl apply` (CI runner, AWS credentials) must never become a secret's source:
# a pull request could otherwise ship the deployer's own credentials into a public function.
FORBIDDEN_SOURCE_PREFIXES = ("AWS_", "GITHUB_", "ACTIONS_", "RUNNER_", "DL_")
DATABASE_NAME_HINT = "1-64 letters, digits, '_' or '-', starting with a letter or digit"
MAX_METADATA_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    where: tuple  # path in the manifest document
    message: str
    key: bool = False  # locate at the key rather than the value
    file: str | None = None  # another file (e.g. a metadata file) with its own position
    line: int = 0
    col: int = 0

    def to_problem(self, manifest_display: str, positions: yamldoc.Positions) -> Problem:
        dotted = ".".join(str(p) for p in self.where)
        if self.file:
            return Problem(self.file, self.line, self.col, dotted, self.message)
        line, col = positions.of(tuple(self.where), key=self.key)
        return Problem(manifest_display, line, col, dotted, self.message)


@dataclass
class Context:
    manifest_dir: Path
    root: Path
    allow_outside_paths: bool = False
    check_files: bool = True
    metadata: dict[str, tuple[dict, str | None]] = field(default_factory=dict)  # filled by rule_metadata


def origin(document: dict, instance: str, key: str) -> tuple:
    """Where an instance's setting was written: its own entry, else `defaults`."""
    if key in document["instances"][instance]:
        return ("instances", instance, key)
    return ("defaults", key)


def resolve_inside(context: Context, source: str) -> tuple[Path, str | None]:
    """The absolute path of a manifest-relative file, and why it may not be used (or None)."""
    written = Path(source)
    resolved = (context.manifest_dir / written).resolve()
    if context.allow_outside_paths:
        return resolved, None
    if written.is_absolute():
        return resolved, "absolute paths are not allowed: use a path relative to the manifest"
    root = context.root.resolve()
    if not resolved.is_relative_to(root):
        return resolved, (
            f"resolves to {resolved}, outside the repository {root}: a pull request must not publish files "
            "from outside it (pass --allow-outside-paths to allow)"
        )
    return resolved, None


def rule_database_files(document: dict, context: Context) -> Iterator[Finding]:
    for name in document["instances"]:
        for i, (_, source) in enumerate(database_entries(document["instances"][name]["databases"])):
            where = ("instances", name, "databases", i)
            path, refusal = resolve_inside(context, source)
            if refusal:
                yield Finding(where, f"{source}: {refusal}")
                continue
            reason = sqlite_file.problem(path) if context.check_files else _exists_problem(path)
            if reason:
                yield Finding(where, f"{source} {reason}")


def _exists_problem(path: Path) -> str | None:
    if not path.exists():
        return "file not found"
    return "is a directory, expected a SQLite file" if path.is_dir() else None


def rule_database_names(document: dict, context: Context) -> Iterator[Finding]:
    import re

    pattern = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    for name in document["instances"]:
        seen: dict[str, int] = {}
        for i, (db_name, source) in enumerate(database_entries(document["instances"][name]["databases"])):
            where = ("instances", name, "databases", i)
            if not pattern.match(db_name):
                yield Finding(
                    where,
                    f"database name {db_name!r} (from the file name {source!r}) is not valid: a name is "
                    f"{DATABASE_NAME_HINT}; give one with {{path: {source}, name: ...}}",
                )
            elif db_name in seen:
                yield Finding(
                    where,
                    f"database name {db_name!r} is already used by databases[{seen[db_name]}] of this instance; "
                    "give one of them another name with {path: ..., name: ...}",
                )
            else:
                seen[db_name] = i


def rule_metadata(document: dict, context: Context) -> Iterator[Finding]:
    """Metadata files exist inside the repository and parse to a mapping; results are kept for normalising."""
    for name in document["instances"]:
        settings = instance_settings(document, name)
        value = settings["metadata"]
        where = origin(document, name, "metadata")
        if isinstance(value, dict):
            context.metadata[name] = (value, None)
            continue
        path, refusal = resolve_inside(context, value)
        if refusal:
            yield Finding(where, f"{value}: {refusal}")
            continue
        parsed, finding = _read_metadata(path, value, where)
        if finding:
            yield finding
        else:
            context.metadata[name] = (parsed, value)


def _read_metadata(path: Path, source: str, where: tuple) -> tuple[dict, Finding | None]:
    try:
        if path.is_dir():
            return {}, Finding(where, f"{source} is a directory, expected a JSON or YAML file")
        if path.stat().st_size > MAX_METADATA_BYTES:
            return {}, Finding(where, f"{source} is larger than {MAX_METADATA_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}, Finding(where, f"{source}: file not found")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, Finding(where, f"{source} cannot be read: {getattr(exc, 'strerror', None) or exc}")
    display = os.path.relpath(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return {}, Finding(
                where, f"invalid JSON: {exc.msg}", file=display, line=exc.lineno, col=exc.colno
            )
    else:
        try:
            data, _, issues = yamldoc.parse(text)
        except yamldoc.YamlSyntaxError as exc:
            return {}, Finding(where, exc.message, file=display, line=exc.line, col=exc.col)
        if issues:
            i = issues[0]
            return {}, Finding(where, i.message, file=display, line=i.line, col=i.col)
    if not isinstance(data, dict):
        return {}, Finding(
            where, f"{source} must hold a mapping (title, databases, ...), not {type(data).__name__}"
        )
    return data, None


def rule_unique_domains(document: dict, context: Context) -> Iterator[Finding]:
    claimed: dict[str, str] = {}
    for name in document["instances"]:
        domain = instance_settings(document, name)["domain"]
        if domain is None:
            continue
        if domain in claimed:
            yield Finding(
                origin(document, name, "domain"),
                f"domain {domain} is already used by instance {claimed[domain]}",
            )
        else:
            claimed[domain] = name


def rule_front_door(document: dict, context: Context) -> Iterator[Finding]:
    for name in document["instances"]:
        s = instance_settings(document, name)
        if s["domain"] and not s["cdn"]:
            yield Finding(
                origin(document, name, "domain"),
                "a custom domain is served through CloudFront: set cdn: true",
            )
        if s["certificate_arn"] and not s["domain"]:
            yield Finding(origin(document, name, "certificate_arn"), "certificate_arn needs a domain")
        if s["endpoint"] == "http-api" and s["timeout"] > 30:
            yield Finding(
                origin(document, name, "timeout"),
                f"an HTTP API waits at most 30 s for the function, so timeout {s['timeout']} cannot be used: "
                "lower it or use endpoint: function-url",
            )


def rule_secrets(document: dict, context: Context) -> Iterator[Finding]:
    for name in document["instances"]:
        secrets = instance_settings(document, name)["secrets"]
        for env_name, source in secrets.items():
            if env_name in RESERVED_ENV_NAMES or env_name.startswith(RESERVED_ENV_PREFIXES):
                yield Finding(
                    (*origin(document, name, "secrets"), env_name),
                    f"{env_name} is reserved (by Lambda, AWS or datasette-lambda): choose another name",
                    key=True,
                )
            elif source.startswith(FORBIDDEN_SOURCE_PREFIXES) or source == "ACTIONS_ID_TOKEN_REQUEST_TOKEN":
                yield Finding(
                    (*origin(document, name, "secrets"), env_name),
                    f"{source} belongs to the machine running dl (AWS credentials, the CI runner): it may not be "
                    "a secret's source; put the value in a variable of its own",
                )


def rule_tags(document: dict, context: Context) -> Iterator[Finding]:
    """Tag keys and values AWS accepts on every tagged resource, and no more than leave room for dl's own."""
    manifest_tags = document.get("tags") or {}
    if not isinstance(manifest_tags, dict):
        return
    problem = tags.count_problem(len(manifest_tags))
    if problem:
        yield Finding(("tags",), problem, key=True)
    for key, value in manifest_tags.items():
        problem = tags.key_problem(str(key))
        if problem:
            yield Finding(("tags", key), problem, key=True)
        if isinstance(value, str):  # other types: the schema says what is expected
            problem = tags.value_problem(value)
            if problem:
                yield Finding(("tags", key), problem)


def rule_settings_of_the_line(document: dict, context: Context) -> Iterator[Finding]:
    """Each setting in `config` exists in the instance's Datasette line (the schema knows every line's)."""
    from dl.manifest.lines import LINES, line_of, settings

    for name in document["instances"]:
        s = instance_settings(document, name)
        line = s["datasette"]
        if line not in LINES:
            continue  # the schema reports it
        known = {setting.name for setting in settings(line)}
        for key in s["config"]:
            if key in known:
                continue
            where = ("instances", name, "config", key)
            if key not in document["instances"][name].get("config", {}):
                where = ("defaults", "config", key)
            lines = " or ".join(f'"{x}"' for x in line_of(key))
            yield Finding(
                where,
                f"{key} is a setting of Datasette {lines}, not of Datasette {line} (this instance's "
                f"`datasette:` line): remove it or set datasette: {lines}",
                key=True,
            )


RULES = (
    rule_tags,
    rule_database_files,
    rule_database_names,
    rule_metadata,
    rule_unique_domains,
    rule_front_door,
    rule_secrets,
    rule_settings_of_the_line,
)


def validate_document(document: dict[str, Any], context: Context) -> list[Finding]:
    """Run every rule; all findings, in rule order."""
    return [finding for rule in RULES for finding in rule(document, context)]
