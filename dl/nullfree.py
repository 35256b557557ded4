"""JSON without nulls, and back: how a spec is stored in a CloudFormation template.

CloudFormation refuses a template with a ``null`` anywhere, Metadata included ("Template format error:
[/Metadata/...] 'null' values are not allowed in templates"), and a spec holds nulls where a value is absent
(no domain, an unknown row count, a secret not fingerprinted yet). :func:`strip` removes every null and
returns where each one was; :func:`restore` puts them back, so a spec read back from a deployed template is
equal to the one it was made from (the plan compares them: a stored spec that differed would be a change).

A place is a list of dict keys (strings) and list positions (integers, counted in the original list).
"""

from __future__ import annotations

import copy
from typing import Any

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
