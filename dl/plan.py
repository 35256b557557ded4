"""The plan: a pure diff of desired state against observed state, as plain frozen data.

Pipeline position: manifest -> desired state -> observed state -> **plan** -> apply -> render.

Like Terraform's ``plans.Plan``: an ``Action`` per instance (no-op, create, update, replace, destroy), each
changed attribute as before -> after, databases described by what changed *in the data*, and a versioned JSON
form (``format_version``) that ``dl apply plan.json`` executes exactly. ``make_plan`` reads nothing: it is a
function of (desired specs, observed state).
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from dl import __version__

FORMAT_VERSION = 1
IGNORED_KEYS = (
    "format",
    "tool_version",
    "project",
    "instance",
)  # informational: never a change by themselves
SCALARS = (
    "prefix",
    "cors",
    "domain",
    "certificate_arn",
    "endpoint",
    "cdn",
    "runtime",
    "architecture",
    "memory",
    "timeout",
    "log_retention_days",
    "protect",
)


class Action(enum.StrEnum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DESTROY = "destroy"


@dataclass(frozen=True)
class Change:
    """One changed attribute: `path` is dotted (config.default_page_size, metadata.title, memory...)."""

    path: str
    before: Any
    after: Any
    note: str = ""


@dataclass(frozen=True)
class DatabaseChange:
    name: str
    action: str  # "add" | "remove" | "change"
    before: dict | None  # {"sha256", "size", "tables": {t: {"rows", "columns"}}} or None
    after: dict | None
    details: tuple[str, ...] = ()  # human lines: "orders: rows 830 -> 845 (+15)", "table x added (10 rows)"


@dataclass(frozen=True)
class InstancePlan:
    name: str
    action: Action
    reason: str = ""
    changes: tuple[Change, ...] = ()
    databases: tuple[DatabaseChange, ...] = ()
    consequences: tuple[str, ...] = ()
    protected: bool = False
    stack_id: str | None = None
    stack_status: str | None = None
    before_digest: str | None = None  # digest of the observed spec (stale-plan check)
    after_digest: str | None = None  # digest of the desired spec
    desired: dict | None = None  # the desired spec (what apply deploys)


@dataclass(frozen=True)
class CertificateRemoval:
    """A certificate stack (us-east-1) no instance's domain uses any more: the apply deletes it after every
    instance stack has moved off it (ACM refuses to delete a certificate a distribution uses)."""

    stack_name: str
    stack_id: str
    domain: str | None
    reason: str
    instance: str | None = None  # a per-instance stack of earlier versions: the instance whose it was


@dataclass(frozen=True)
class Plan:
    project: str
    region: str
    instances: tuple[InstancePlan, ...]
    bootstrap: Action = Action.NOOP
    certificates: tuple[CertificateRemoval, ...] = ()  # orphaned certificate stacks the apply removes
    format_version: int = FORMAT_VERSION
    tool_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    manifest: str = ""
    preview: int | None = None  # the pull request whose previews this plan is for (dl/apply/preview.py)

    def counts(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for i in self.instances:
            counts[i.action.value] += 1
        return counts

    def is_empty(self) -> bool:
        """True when applying would change nothing."""
        return all(i.action is Action.NOOP for i in self.instances) and not self.certificates

    def summary(self) -> str:
        c = self.counts()
        if self.is_empty():
            return "No changes. The deployment matches the manifest."
        parts = [f"{c['create']} to create", f"{c['update']} to update"]
        if c["replace"]:
            parts.append(f"{c['replace']} to replace")
        parts.append(f"{c['destroy']} to destroy")
        if self.certificates:
            n = len(self.certificates)
            parts.append(f"{n} orphaned certificate stack{'s' if n != 1 else ''} to remove")
        return "Plan: " + ", ".join(parts) + "."

    def destructive(self) -> list[InstancePlan]:
        return [i for i in self.instances if i.action in (Action.DESTROY, Action.REPLACE)]

    def to_json(self) -> dict:
        data = asdict(self)
        data["bootstrap"] = self.bootstrap.value
        data["summary"] = self.summary()
        data["counts"] = self.counts()
        for entry in data["instances"]:
            entry["action"] = (
                entry["action"].value if isinstance(entry["action"], Action) else entry["action"]
            )
        return data

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        from dl.errors import DlError

        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise DlError(
                f"not a plan this version of dl can apply (format_version {data.get('format_version')!r}, "
                f"expected {FORMAT_VERSION})"
                if isinstance(data, dict)
                else "not a dl plan file"
            )
        try:
            instances = tuple(
                InstancePlan(
                    **{
                        **i,
                        "action": Action(i["action"]),
                        "changes": tuple(Change(**c) for c in i["changes"]),
                        "databases": tuple(
                            DatabaseChange(**{**d, "details": tuple(d["details"])}) for d in i["databases"]
                        ),
                        "consequences": tuple(i["consequences"]),
                    }
                )
                for i in data["instances"]
            )
            return cls(
                project=data["project"],
                region=data["region"],
                instances=instances,
                bootstrap=Action(data["bootstrap"]),
                certificates=tuple(CertificateRemoval(**c) for c in data.get("certificates") or ()),
                format_version=data["format_version"],
                tool_version=data["tool_version"],
                created_at=data["created_at"],
                manifest=data.get("manifest", ""),
                preview=data.get("preview"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DlError(f"the plan file is damaged: {exc}") from None

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def review_digest(plan: Plan) -> str:
    """The fingerprint of what a plan would do, for ``dl apply --require-reviewed-plan``: equal digests mean
    the same project and region, the same instances with the same actions, from the same observed specs
    (and stacks) to the same desired specs. The time, the tool's wording and the manifest path do not count."""
    import hashlib

    payload = {
        "project": plan.project,
        "region": plan.region,
        "bootstrap": plan.bootstrap.value,
        "instances": [
            [i.name, i.action.value, i.stack_id, i.before_digest, i.after_digest] for i in plan.instances
        ],
    }
    if plan.certificates:  # (absent when there are none: the digests of earlier plans stay the same)
        payload["certificates"] = [c.stack_id for c in plan.certificates]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


# --- the diff -------------------------------------------------------------------------------------------------


def short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(size)


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


def secret_changes(before, after) -> list[Change]:
    """Secrets by name, and which values changed (compared by keyed fingerprint, see dl/aws/secrets.py): the
    values and their fingerprints are never part of a Change."""
    from dl.aws.secrets import deployed_fingerprints

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


@dataclass(frozen=True)
class Handover:
    """``releaser`` gives up ``domain`` (destroyed, or updated to another domain or none) and ``claimer`` takes it:
    CloudFront lets one distribution hold an alias at a time, and the Route 53 records exist once, so the claim
    may only start once the release is complete."""

    domain: str
    releaser: str
    claimer: str


def domain_handovers(
    desired: dict[str, dict | None], observed, names: list[str] | None = None
) -> list[Handover]:
    """Every domain that moves from one instance to another in this change (``desired``: instance -> spec, None or
    absent when removed). Pure."""
    names = list(desired) + [n for n in observed.instances if n not in desired] if names is None else names
    releasers: dict[str, str] = {}
    for name in names:
        o = observed.instances.get(name)
        domain = (o.spec or {}).get("domain") if o is not None and o.serving else None
        if domain and (desired.get(name) or {}).get("domain") != domain:
            releasers[domain] = name
    handovers = []
    for name in names:
        domain = (desired.get(name) or {}).get("domain")
        if domain and domain in releasers and releasers[domain] != name:
            handovers.append(Handover(domain, releasers[domain], name))
    return handovers


def handover_lines(handover: Handover, claimer_spec: dict | None) -> tuple[str, str]:
    """(line for the releaser, line for the claimer): the order, and the window in which the domain does not serve."""
    h = handover
    issued = "" if (claimer_spec or {}).get("certificate_arn") else ", plus issuing its certificate"
    order = f"{h.releaser} releases {h.domain} before {h.claimer} claims it"
    return (
        f"{order}: {h.claimer} starts only once this is done",
        f"{order}: {h.claimer} waits for it; {h.domain} does not serve from when {h.releaser} lets it go "
        f"until the distribution of {h.claimer} is deployed (CloudFront: 5-15 minutes{issued})",
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


# --- certificate stacks (one per domain, in us-east-1) ------------------------------------------------------


def issued_domain(spec: dict | None) -> str | None:
    """The domain whose certificate dl issues for an instance (none when the manifest gives certificate_arn)."""
    if not spec or not spec.get("domain") or spec.get("certificate_arn"):
        return None
    return spec["domain"]


def domains_in_use(desired: dict[str, dict | None], observed, names: list[str]) -> set[str]:
    """Domains with a dl-issued certificate once the plan is applied: the planned instances' desired ones and
    the deployed ones of instances the plan leaves alone (``--target``)."""
    used = set()
    for name in set(desired) | set(observed.instances):
        if name in names:
            spec = desired.get(name)
        else:
            o = observed.instances.get(name)
            spec = o.spec if o is not None else None
        if issued_domain(spec):
            used.add(issued_domain(spec))
    return used


def certificate_removals(
    project: str, desired: dict[str, dict | None], observed, names: list[str]
) -> tuple[CertificateRemoval, ...]:
    """The project's certificate stacks that no instance uses after this plan: per-domain stacks of a domain
    no instance has, and per-instance stacks of earlier versions once their instance is part of the plan
    (which moves its distribution to the domain's stack, or destroys it). Pure."""
    used = domains_in_use(desired, observed, names)
    out = []
    for cert in getattr(observed, "certificates", ()):
        if cert.legacy is not None:
            if cert.legacy in observed.instances and cert.legacy not in names:
                continue  # its instance is left alone (--target): its distribution still uses it
            reason = f"the per-instance certificate stack of {cert.legacy} (earlier versions): no longer used"
        elif cert.domain in used:
            continue
        else:
            reason = f"no instance of project {project} has the domain {cert.domain} any more"
        out.append(CertificateRemoval(cert.stack.name, cert.stack.stack_id, cert.domain, reason, cert.legacy))
    return tuple(out)


def switch_legacy_certificate(item: InstancePlan, observed) -> InstancePlan:
    """An unchanged instance whose distribution still uses its per-instance certificate stack of earlier
    versions is updated onto the domain's own certificate stack (so the old stack can be removed)."""
    from dataclasses import replace

    from dl.aws.names import certificate_stack_name

    domain = issued_domain(item.desired)
    legacy = [c for c in getattr(observed, "certificates", ()) if c.legacy == item.name]
    if item.action is not Action.NOOP or not domain or not legacy:
        return item
    new = certificate_stack_name(observed.project, domain)
    return replace(
        item,
        action=Action.UPDATE,
        changes=(Change("certificate", legacy[0].stack.name, new, "one certificate stack per domain"),),
        consequences=(
            f"the distribution moves to the certificate of stack {new}; then {legacy[0].stack.name} is removed",
        ),
    )
