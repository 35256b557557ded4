"""The plan as data: an ``Action`` per instance, each changed attribute as before -> after, databases described
by what changed *in the data*, the certificate stacks to remove, and a versioned JSON form (``format_version``)
that ``dl apply plan.json`` executes exactly; ``review_digest`` fingerprints what a plan would do.

Like Terraform's ``plans.Plan``: ``Plan.is_empty()`` answers "any changes?". Made by dl/plan/diff.py, rendered by
dl/render/, executed by dl/apply/.
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
