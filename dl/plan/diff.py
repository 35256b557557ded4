"""The diff: a pure function of (desired specs, observed state) that makes the plan (dl/plan/model.py).

Pipeline position: manifest -> desired state -> observed state -> **plan** -> apply -> render.

``make_plan`` reads nothing: each instance's action and changes (``plan_instance``), the domains that move
between instances and the orphaned certificate stacks (dl/plan/domains.py), and whether the bootstrap stack is
created or upgraded.
"""

from __future__ import annotations

from typing import Any

from dl.plan.domains import certificate_removals, domain_handovers, handover_lines, switch_legacy_certificate
from dl.plan.model import (
    IGNORED_KEYS,
    SCALARS,
    Action,
    Change,
    DatabaseChange,
    InstancePlan,
    Plan,
    human_size,
    short,
)


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"prefix.a.b": 1}; lists and scalars are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}"))
        return out
    return {prefix: value}


def keyed_changes(before: dict, after: dict, prefix: str) -> list[Change]:
    """Key-by-key changes of two nested mappings (metadata, config, versions)."""
    b, a = _flatten(before or {}, prefix), _flatten(after or {}, prefix)
    b.pop(prefix, None) if before in ({}, None) else None
    a.pop(prefix, None) if after in ({}, None) else None
    changes = []
    for key in sorted(set(b) | set(a)):
        old, new = b.get(key), a.get(key)
        if old != new:
            note = "added" if key not in b else "removed" if key not in a else ""
            changes.append(Change(key, old, new, note))
    return changes


def database_changes(before: list[dict], after: list[dict]) -> list[DatabaseChange]:
    """Databases described by what changed in the data."""
    old = {d["name"]: d for d in before or []}
    new = {d["name"]: d for d in after or []}
    out = []
    for name in [*new, *(n for n in old if n not in new)]:
        o, n = old.get(name), new.get(name)
        if o is None:
            tables = n.get("tables", {})
            rows = sum(t.get("rows") or 0 for t in tables.values())
            detail = (
                f"{len(tables)} table{'s' if len(tables) != 1 else ''}, {rows:,} row{'s' if rows != 1 else ''}, "
                f"{human_size(n['size'])}"
            )
            out.append(DatabaseChange(name, "add", None, _db_view(n), (detail,)))
        elif n is None:
            out.append(DatabaseChange(name, "remove", _db_view(o), None, ()))
        elif o.get("sha256") != n.get("sha256") or o.get("location") != n.get("location"):
            out.append(DatabaseChange(name, "change", _db_view(o), _db_view(n), tuple(_data_details(o, n))))
    return out


def _db_view(d: dict) -> dict:
    return {
        "sha256": d.get("sha256"),
        "size": d.get("size"),
        "location": d.get("location"),
        "tables": d.get("tables", {}),
    }


def _count(rows: int | None) -> str:
    """A row count for people: '830', or '?' when SQLite could not count the table (a missing module)."""
    return "?" if rows is None else f"{rows:,}"


def _rows(rows: int | None) -> str:
    """'1 row', '830 rows', '? rows'."""
    return f"{_count(rows)} row{'' if rows == 1 else 's'}"


def _data_details(o: dict, n: dict) -> list[str]:
    lines = []
    ot, nt = o.get("tables", {}), n.get("tables", {})
    for table in sorted(set(nt) - set(ot)):
        lines.append(f"table {table} added ({_rows(nt[table].get('rows'))})")
    for table in sorted(set(ot) - set(nt)):
        lines.append(f"table {table} dropped ({_rows(ot[table].get('rows'))})")
    for table in sorted(set(ot) & set(nt)):
        before_rows, after_rows = ot[table].get("rows"), nt[table].get("rows")
        if before_rows != after_rows:
            known = before_rows is not None and after_rows is not None
            delta = f" ({after_rows - before_rows:+,})" if known else ""
            lines.append(f"{table}: rows {_count(before_rows)} -> {_count(after_rows)}{delta}")
        old_cols, new_cols = ot[table].get("columns", []), nt[table].get("columns", [])
        added = [c for c in new_cols if c not in old_cols]
        removed = [c for c in old_cols if c not in new_cols]
        if added:
            lines.append(f"{table}: column{'s' if len(added) > 1 else ''} {', '.join(added)} added")
        if removed:
            lines.append(f"{table}: column{'s' if len(removed) > 1 else ''} {', '.join(removed)} removed")
    ov, nv = set(o.get("views", [])), set(n.get("views", []))
    lines += [f"view {v} added" for v in sorted(nv - ov)] + [f"view {v} dropped" for v in sorted(ov - nv)]
    if o.get("size") != n.get("size"):
        lines.append(f"size {human_size(o.get('size'))} -> {human_size(n.get('size'))}")
    if o.get("location") != n.get("location"):
        lines.append(f"stored {o.get('location')} -> {n.get('location')}")
    lines.append(f"sha256 {short(o.get('sha256'))} -> {short(n.get('sha256'))}")
    return lines


def attribute_changes(before: dict, after: dict) -> list[Change]:
    """Every changed attribute of two specs (databases excluded: see database_changes)."""
    changes = [Change(k, before.get(k), after.get(k)) for k in SCALARS if before.get(k) != after.get(k)]
    # the Datasette line: a spec names it only when it is not the default (older specs stay comparable)
    old_line = before.get("datasette", "0.65") if before else None
    new_line = after.get("datasette", "0.65") if after else None
    if old_line != new_line and (before or new_line != "0.65"):
        changes.append(Change("datasette", old_line, new_line))
    changes += keyed_changes(before.get("config"), after.get("config"), "config")
    changes += keyed_changes(before.get("metadata"), after.get("metadata"), "metadata")
    changes += keyed_changes(before.get("versions"), after.get("versions"), "versions")
    changes += keyed_changes(before.get("tags"), after.get("tags"), "tags")
    old, new = before.get("plugins") or None, after.get("plugins") or None
    if old != new:
        changes.append(Change("plugins", old, new))
    changes += secret_changes(before.get("secrets"), after.get("secrets"))
    op, np_ = (before.get("package") or {}).get("sha256"), (after.get("package") or {}).get("sha256")
    if op != np_:
        changes.append(Change("package", short(op), short(np_)))
    return changes


def deployed_fingerprints(spec: dict | None) -> dict[str, str | None]:
    """{FUNCTION_ENV: fingerprint or None} of a stored spec (older specs stored a list of names)."""
    stored = (spec or {}).get("secrets") or {}
    return dict.fromkeys(stored) if isinstance(stored, list) else dict(stored)


def secret_changes(before, after) -> list[Change]:
    """Secrets by name, and which values changed (compared by keyed fingerprint, see dl/aws/secrets.py): the
    values and their fingerprints are never part of a Change."""
    old, new = deployed_fingerprints({"secrets": before}), deployed_fingerprints({"secrets": after})
    changes = []
    if sorted(old) != sorted(new):
        changes.append(
            Change("secrets", sorted(old) or None, sorted(new) or None, "names only; values are never shown")
        )
    for name in sorted(set(old) & set(new)):
        if old[name] != new[name]:
            changes.append(
                Change(f"secrets.{name}", "(secret)", "(secret)", "value changed; values are never shown")
            )
    return changes


def consequences(before: dict | None, after: dict) -> list[str]:
    """What the change means at the resource level (from our own template design; apply adds the change set's)."""
    out = []
    b = before or {}
    if after.get("cdn"):
        if not b.get("cdn"):
            out.append("CloudFront distribution created: takes 5-15 minutes")
        elif any(b.get(k) != after.get(k) for k in ("domain", "prefix", "endpoint", "certificate_arn")):
            out.append("CloudFront distribution updated: takes 5-15 minutes")
    elif b.get("cdn"):
        out.append("CloudFront distribution deleted: the CloudFront URL stops working")
    if after.get("domain") != b.get("domain") and after.get("domain"):
        if after.get("certificate_arn"):
            out.append(
                f"custom domain {after['domain']} uses the given certificate; create its DNS record yourself"
            )
        else:
            verb = "replaced" if b.get("domain") else "issued"
            out.append(f"certificate {verb} for {after['domain']} (validated through Route 53 DNS)")
    if before is not None:
        old_keys = {d["key"] for d in b.get("databases", [])} | {(b.get("package") or {}).get("key")}
        new_keys = {d["key"] for d in after.get("databases", [])} | {(after.get("package") or {}).get("key")}
        if old_keys != new_keys:
            out.append("IAM: the function's s3:GetObject grant moves to the new artifact keys")
        if b.get("endpoint") != after.get("endpoint"):
            out.append("IAM: the invoke permission changes with the front door")
        content = [k for k in ("databases", "metadata", "config", "package") if b.get(k) != after.get(k)]
        if after.get("cdn") and b.get("cdn") and content:
            out.append("CloudFront cache invalidated after the update (content changed)")
    return out


def _url_changes(before: dict, after: dict) -> bool:
    """The public URL changes: the front door is replaced when it is what users reach, or the custom domain
    users reach goes away or moves."""
    if before.get("domain") and before.get("domain") != after.get("domain"):
        return True
    if before.get("cdn") != after.get("cdn"):
        return not after.get("domain") or before.get("domain") != after.get("domain")
    if not after.get("cdn") and before.get("endpoint") != after.get("endpoint"):
        return True
    return False


def comparable(spec: dict | None) -> dict | None:
    return None if spec is None else {k: v for k, v in spec.items() if k not in IGNORED_KEYS}


def plan_instance(name: str, desired: dict | None, observed) -> InstancePlan:
    """The plan for one instance from its desired spec (None: removed) and observed instance (None: absent)."""
    from dl.build.desired import spec_digest

    stack = observed.stack if observed is not None else None
    before = observed.spec if observed is not None else None
    common = {
        "stack_id": stack.stack_id if stack else None,
        "stack_status": stack.status if stack else None,
        "before_digest": spec_digest(before) if before is not None else None,
        "after_digest": spec_digest(desired) if desired is not None else None,
        "desired": desired,
    }
    if desired is None:
        protected = bool(before and before.get("protect"))
        return InstancePlan(
            name,
            Action.DESTROY,
            "removed from the manifest",
            protected=protected,
            **common,
        )
    if observed is None or not observed.serving:
        reason = "not deployed yet"
        if stack is not None:
            reason = f"the stack is in {stack.status} (nothing is serving): it is deleted and created again"
        return InstancePlan(
            name,
            Action.CREATE,
            reason,
            changes=tuple(attribute_changes({}, desired)),
            databases=tuple(database_changes([], desired.get("databases", []))),
            consequences=tuple(consequences(None, desired)),
            protected=bool(desired.get("protect")),
            **common,
        )
    if comparable(before) == comparable(desired):
        return InstancePlan(name, Action.NOOP, protected=bool(desired.get("protect")), **common)
    changes = attribute_changes(before, desired)
    databases = database_changes(before.get("databases", []), desired.get("databases", []))
    replace = _url_changes(before, desired)
    return InstancePlan(
        name,
        Action.REPLACE if replace else Action.UPDATE,
        "the public URL changes: the old front door is deleted" if replace else "",
        changes=tuple(changes),
        databases=tuple(databases),
        consequences=tuple(consequences(before, desired)),
        protected=bool(before.get("protect")) or bool(desired.get("protect")),
        **common,
    )


def make_plan(
    project: str,
    region: str,
    desired: dict[str, dict],
    observed,
    *,
    targets: list[str] | None = None,
    manifest: str = "",
    preview: int | None = None,
) -> Plan:
    """The plan for a project. desired: instance -> spec; observed: an ObservedState. Pure."""
    names = list(desired)
    names += [n for n in observed.instances if n not in desired]
    if targets:
        names = [n for n in names if n in targets]
    instances = tuple(plan_instance(n, desired.get(n), observed.instances.get(n)) for n in names)
    extra: dict[str, list[str]] = {}
    for h in domain_handovers(desired, observed, names):
        released, claimed = handover_lines(h, desired.get(h.claimer))
        extra.setdefault(h.releaser, []).append(released)
        extra.setdefault(h.claimer, []).append(claimed)
    if extra:
        from dataclasses import replace

        instances = tuple(
            replace(i, consequences=(*i.consequences, *extra[i.name])) if i.name in extra else i
            for i in instances
        )
    instances = tuple(switch_legacy_certificate(i, observed) for i in instances)
    from dl.aws.names import BOOTSTRAP_VERSION

    deploys = any(i.action is not Action.DESTROY for i in instances)
    bootstrap = Action.NOOP
    if observed.bucket is None and deploys:
        bootstrap = Action.CREATE
    elif observed.bucket and (observed.bootstrap_version or 0) < BOOTSTRAP_VERSION and deploys:
        bootstrap = Action.UPDATE  # `dl plan` refuses this; `dl apply` upgrades it where the caller may
    return Plan(
        project=project,
        region=region,
        instances=instances,
        bootstrap=bootstrap,
        certificates=certificate_removals(project, desired, observed, names),
        manifest=manifest,
        preview=preview,
    )
