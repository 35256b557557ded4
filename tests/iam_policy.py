"""A small offline evaluator of IAM identity policies, for the tests of dl's roles (no AWS call).

It implements what the roles in dl/aws/execution_role.py, dl/aws/preview_execution_role.py and docs/aws-iam
use, following the IAM policy reference
(docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an explicit Deny wins,
then any Allow, else the implicit deny. Action names match case-insensitively with ``*`` and ``?``; resources
case-sensitively. Conditions: the String*, Arn* and Bool operators, their ``...IfExists`` forms, ``Null`` and
``ForAllValues:``/``ForAnyValue:``. A key missing from the request context makes a condition false, except
for negated operators (true), ``...IfExists`` (true), ``Null`` and ``ForAllValues`` (true), as documented.

Also: :func:`resolve`, which turns the CloudFormation intrinsics of a policy in a template (``Fn::Sub``,
``Fn::Join``, ``Ref``, ``Fn::GetAtt``) into the strings AWS would see, for given pseudo parameters.
"""

from __future__ import annotations

import re
from functools import cache


@cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_wildcard(pattern, ignore_case).match(value))


def _list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, bool)) else list(value)


_OPERATORS = {
    "StringEquals": (lambda v, p: v == p, False),
    "StringNotEquals": (lambda v, p: v == p, True),
    "StringEqualsIgnoreCase": (lambda v, p: v.lower() == p.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda v, p: v.lower() == p.lower(), True),
    "StringLike": (lambda v, p: matches(p, v), False),
    "StringNotLike": (lambda v, p: matches(p, v), True),
    "ArnEquals": (lambda v, p: v == p, False),
    "ArnNotEquals": (lambda v, p: v == p, True),
    "ArnLike": (lambda v, p: matches(p, v), False),
    "ArnNotLike": (lambda v, p: matches(p, v), True),
    "Bool": (lambda v, p: str(v).lower() == str(p).lower(), False),
}


def _condition_holds(operator: str, key: str, wanted, context: dict) -> bool:
    present = key.lower() in context
    values = _list(context.get(key.lower()))
    if operator == "Null":
        return (not present) == (str(wanted).lower() == "true")
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    test, negated = _OPERATORS[operator]
    wanted = [str(w) if isinstance(w, bool) else w for w in _list(wanted)]
    if not present:
        return if_exists or negated or qualifier == "ForAllValues"

    def one(value) -> bool:
        hit = any(test(value, w) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in values)
    return all(one(v) for v in values)


def _applies(statement: dict, action: str, resource: str, context: dict) -> bool:
    if "Action" in statement:
        if not any(matches(a, action, ignore_case=True) for a in _list(statement["Action"])):
            return False
    elif any(matches(a, action, ignore_case=True) for a in _list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(matches(r, resource) for r in _list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(matches(r, resource) for r in _list(statement["NotResource"])):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, context):
                return False
    return True


def allowed(policies: list[dict], action: str, resource: str, context: dict | None = None) -> bool:
    """Whether identity policies ``policies`` allow ``action`` on ``resource`` with request ``context``
    (condition keys, case-insensitive, to a string or a list of strings)."""
    context = {k.lower(): v for k, v in (context or {}).items()}
    statements = [s for p in policies for s in p["Statement"]]
    if any(s["Effect"] == "Deny" and _applies(s, action, resource, context) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _applies(s, action, resource, context) for s in statements)


def resolve(value, names: dict[str, str]):
    """A template value with its intrinsics evaluated: ``names`` holds ``AWS::Region`` and the like, ``Ref``
    targets (``PermissionsBoundary``) and attributes (``ArtifactBucket.Arn``)."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(p, names) for p in parts)
    if set(value) == {"Ref"}:
        return names[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        return names[".".join(value["Fn::GetAtt"])]
    return {k: resolve(v, names) for k, v in value.items()}
