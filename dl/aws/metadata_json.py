"""Any JSON value as a template's Metadata may hold it, and back: how a spec is stored in a template.

Two things in a spec are refused there:

* ``null``: CloudFormation refuses a template with a null anywhere, Metadata included ("Template format error:
  [/Metadata/...] 'null' values are not allowed in templates"), and a spec holds nulls where a value is
  absent (no domain, an unknown row count). :func:`strip` removes every null and returns where each one was;
  :func:`restore` puts them back. A place is a list of dict keys (strings) and list positions (integers,
  counted in the original list).
* ``${Name}`` in a string (a table, a title...) that names a parameter or pseudo parameter: cfn-lint reports
  it outside ``Fn::Sub`` (E1029). :func:`escape` writes every ``${`` as ``${!`` (CloudFormation's own literal
  form, which cfn-lint skips); :func:`unescape` turns each ``${!`` back, the exact inverse (the inserted ``!``
  can never start a new ``${``).

:func:`encode` and :func:`decode` do both, so a spec read back from a deployed template equals the one it was
made from (the plan compares them: a stored spec that differed would be a change).

The deployed spec and artifact keys live in an instance template's top-level ``Metadata["DatasetteLambda"]``
(``{"format": 1, "spec": ..., "spec_nulls": [...], "artifacts": {"bucket", "package_key", "database_keys"}}``),
so ``get_template`` returns what was deployed and a rollback rolls it back with the stack.
:func:`stored_spec` writes the entries (dl/aws/templates.py), :func:`metadata_spec` and :func:`template_spec`
read the spec back (dl/aws/observed.py), :func:`template_artifact_keys` the keys it references.
"""

from __future__ import annotations

import copy
from typing import Any

from dl.aws.names import METADATA_KEY

Place = list[str | int]


def strip(value: Any) -> tuple[Any, list[Place]]:
    """(value without nulls, the places of the nulls in depth-first order). `value` is not changed."""
    places: list[Place] = []

    def walk(item: Any, here: Place) -> Any:
        if isinstance(item, dict):
            out = {}
            for key, child in item.items():
                if child is None:
                    places.append([*here, key])
                else:
                    out[key] = walk(child, [*here, key])
            return out
        if isinstance(item, list):
            kept = []
            for index, child in enumerate(item):
                if child is None:
                    places.append([*here, index])
                else:
                    kept.append(walk(child, [*here, index]))
            return kept
        return item

    if value is None:
        raise ValueError("a null cannot be stored without nulls")
    return walk(value, []), places


def restore(value: Any, places: list[Place]) -> Any:
    """`value` with a null put back at each place (as :func:`strip` listed them); `value` is not changed."""
    out = copy.deepcopy(value)
    for place in places:
        *parents, last = place
        container = out
        for step in parents:
            container = container[step]
        if isinstance(container, list):
            container.insert(last, None)
        else:
            container[last] = None
    return out


def escape(value: Any) -> Any:
    """Every ``${`` in every string (keys included) written ``${!``."""
    return _map_strings(value, lambda text: text.replace("${", "${!"))


def unescape(value: Any) -> Any:
    """The inverse of :func:`escape`."""
    return _map_strings(value, lambda text: text.replace("${!", "${"))


def encode(value: Any) -> dict:
    """``{"value": ..., "nulls": [...]}`` ("nulls" only when there were some), safe in a template's Metadata."""
    stripped, places = strip(value)
    return escape({"value": stripped, **({"nulls": places} if places else {})})


def decode(stored: dict) -> Any:
    """The value :func:`encode` was given."""
    plain = unescape(stored)
    return restore(plain["value"], plain.get("nulls") or [])


def _map_strings(value: Any, change) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(k) if isinstance(k, str) else k: _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    return value


# --- a spec in a template's Metadata ----------------------------------------------------------------------


def template_spec(template: dict) -> dict | None:
    """The spec a deployed instance template was made from (None when it is not one of ours)."""
    return metadata_spec(template.get("Metadata") or {})


def metadata_spec(metadata: dict) -> dict | None:
    """The spec stored in a template's Metadata, exactly as :func:`stored_spec` was given it."""
    entry = metadata.get(METADATA_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict):
        return None
    return decode({"value": entry["spec"], "nulls": entry.get("spec_nulls") or []})


def stored_spec(spec: dict) -> dict:
    """The Metadata entries holding `spec` (:func:`encode`): without nulls, which CloudFormation refuses
    (their places listed apart), and with ``${`` written ``${!`` (cfn-lint reads ``${Name}`` as a forgotten
    ``Fn::Sub``)."""
    stored = encode(spec)
    return {"spec": stored["value"], **({"spec_nulls": stored["nulls"]} if "nulls" in stored else {})}


def template_artifact_keys(template: dict) -> frozenset[str]:
    """Artifact keys (package and databases) a deployed instance template references."""
    artifacts = ((template.get("Metadata") or {}).get(METADATA_KEY) or {}).get("artifacts") or {}
    keys = [artifacts.get("package_key"), *artifacts.get("database_keys", ())]
    return frozenset(k for k in keys if k)
