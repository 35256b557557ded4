"""schema.json: the single source of truth for the manifest's shape, and friendly messages for its errors."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

Path_ = tuple[str | int, ...]


@cache
def schema() -> dict:
    """The manifest's JSON Schema (draft 2020-12), shipped inside the package."""
    return json.loads(resources.files("dl.manifest").joinpath("schema.json").read_text())


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def describe(value: Any) -> str:
    """A short, YAML-flavoured rendering of a value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "integer",
    "boolean": "true or false",
    "number": "a number",
    "null": "null",
}


def _type_name(t: str | list[str]) -> str:
    names = [_TYPE_NAMES.get(x, x) for x in ([t] if isinstance(t, str) else t)]
    return " or ".join(names)


def suggest(word: str, choices: list[str]) -> str:
    """' (did you mean 'x'?)' when a close choice exists, else ''."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _resolve(node: dict) -> dict:
    ref = node.get("$ref")
    if ref and ref.startswith("#/"):
        target: Any = schema()
        for part in ref[2:].split("/"):
            target = target[part]
        return target
    return node


def problems(document: Any) -> Iterator[tuple[Path_, bool, str]]:
    """Every schema violation as (path, located at the key?, message)."""
    seen = set()
    for error in _validator().iter_errors(document):
        for problem in _explain(error):
            if problem not in seen:
                seen.add(problem)
                yield problem


def _explain(error: jsonschema.ValidationError) -> Iterator[tuple[Path_, bool, str]]:
    path: Path_ = tuple(error.absolute_path)
    node = _resolve(error.schema) if isinstance(error.schema, dict) else {}
    kind = error.validator
    value = error.instance
    if kind == "additionalProperties" and isinstance(value, dict):
        known = sorted(node.get("properties", {}))
        patterns = node.get("patternProperties", {})
        use_instead = node.get("x-use-instead", {})
        for key in value:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            if key in use_instead:
                yield (*path, key), True, f"unknown key '{key}': {use_instead[key]}"
            else:
                yield (*path, key), True, f"unknown key '{key}'{suggest(key, known)}"
    elif kind == "required":
        missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value]
        for key in missing:
            yield path, False, f"missing required key '{key}'"
    elif kind == "type":
        yield path, False, f"expected {_type_name(error.validator_value)}, got {describe(value)}"
    elif kind == "enum":
        options = [describe(v).strip("'") for v in error.validator_value]
        hint = suggest(str(value), options) if isinstance(value, str) else ""
        yield path, False, f"expected one of {', '.join(options)}, got {describe(value)}{hint}"
    elif kind == "const":
        yield path, False, f"expected {describe(error.validator_value)}, got {describe(value)}"
    elif kind == "pattern":
        reason = node.get("x-error") or "not in the expected form"  # every pattern has an x-error (tested)
        if "propertyNames" in error.absolute_schema_path:  # a bad key: point at the key itself
            yield (*path, value), True, f"{describe(value)} is not valid: {reason}"
        else:
            yield path, False, f"{describe(value)} is not valid: {reason}"
    elif kind == "minimum":
        yield path, False, f"must be at least {error.validator_value}, got {describe(value)}"
    elif kind == "maximum":
        yield path, False, f"must be at most {error.validator_value}, got {describe(value)}"
    elif kind in ("minItems", "minProperties"):
        yield path, False, "must not be empty"
    elif kind == "minLength":
        yield path, False, "must not be an empty string"
    elif kind == "maxLength":
        yield path, False, f"must be at most {error.validator_value} characters"
    else:
        yield path, False, error.message
