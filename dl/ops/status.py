"""What `dl status` shows (its command: dl/commands/status.py): what is live, from the manifest and AWS together.

Drift is the plan's verdict (an instance whose plan is not a no-op has drifted), so status and plan can never
disagree. Public URLs: dl/aws/hosts.py's :func:`~dl.aws.hosts.public_url` (the custom domain, else CloudFront's
host as apply recorded it, else the front door's).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from dl.aws.hosts import public_url
from dl.manifest.tags import TAG_COMMIT, TAG_DEPLOYED_AT
from dl.plan.model import Action, short


@dataclass(frozen=True)
class InstanceStatus:
    name: str
    state: str  # "deployed" | "not deployed" | "orphan" | "failed"
    drift: bool | None  # None when not deployed
    url: str | None
    stack_status: str | None
    deployed_at: str | None
    commit: str | None
    datasette: str | None
    databases: tuple[dict, ...]  # {"name", "sha256", "size", "tables"}


def instance_statuses(prepared) -> list[InstanceStatus]:
    """Status rows from a prepared pipeline (manifest + observed state + plan)."""
    rows = []
    for item in prepared.plan.instances:
        observed = prepared.observed.instances.get(item.name)
        stack = observed.stack if observed else None
        spec = observed.spec if observed and observed.spec else None
        if stack is None:
            state = "not deployed"
        elif item.action is Action.DESTROY:
            state = "orphan"
        elif not observed.serving:
            state = "failed"
        else:
            state = "deployed"
        rows.append(
            InstanceStatus(
                name=item.name,
                state=state,
                drift=None if spec is None else item.action is not Action.NOOP,
                url=public_url(prepared.aws, stack, spec, prepared.observed.bucket)
                if stack is not None and spec
                else None,
                stack_status=stack.status if stack else None,
                deployed_at=stack.tags.get(TAG_DEPLOYED_AT) if stack else None,
                commit=stack.tags.get(TAG_COMMIT) if stack else None,
                datasette=(spec or {}).get("versions", {}).get("datasette"),
                databases=tuple(
                    {
                        "name": d["name"],
                        "sha256": d["sha256"],
                        "size": d["size"],
                        "tables": len(d.get("tables", {})),
                    }
                    for d in (spec or {}).get("databases", [])
                ),
            )
        )
    return rows


def render_status(rows: list[InstanceStatus]) -> str:
    from dl.plan.model import human_size
    from dl.render.plan import clean

    lines = []
    for r in rows:
        drift = {None: "", True: ", drifted from the manifest", False: ", in sync"}[r.drift]
        lines.append(f"{clean(r.name)}: {r.state}{drift}")
        if r.state == "orphan":
            lines.append("    deployed but no longer in the manifest (`dl plan` shows it as a destroy)")
        if r.stack_status:
            lines.append(f"    stack     {r.stack_status}")
        if r.url:
            lines.append(f"    url       {clean(r.url)}")
        if r.deployed_at or r.commit:
            lines.append(
                f"    deployed  {r.deployed_at or '?'} from commit {short(r.commit) if r.commit else '?'}"
            )
        if r.datasette:
            lines.append(f"    datasette {r.datasette}")
        for d in r.databases:
            lines.append(
                f"    database  {clean(d['name'])}: {short(d['sha256'])} {human_size(d['size'])}, {d['tables']} table{'s' if d['tables'] != 1 else ''}"
            )
    return "\n".join(lines) + "\n"


def status_json(rows: list[InstanceStatus]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2, sort_keys=True) + "\n"


def render_certificate_orphans(plan) -> str:
    """Certificate stacks (us-east-1) no instance's domain uses: the next `dl apply` removes them."""
    from dl.render.plan import clean

    return "".join(
        f"certificate stack {clean(c.stack_name)} ({clean(c.domain or 'no domain tag')}): orphan, "
        f"{clean(c.reason)} (the next `dl apply` removes it)\n"
        for c in plan.certificates
    )
