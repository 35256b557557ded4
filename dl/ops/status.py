"""What `dl status` shows (its command: dl/commands/status.py): what is live, from the manifest and AWS together;
and the public URL of a deployed instance.

Drift is the plan's verdict (an instance whose plan is not a no-op has drifted), so status and plan can never
disagree. Public URLs: the custom domain when there is one, else CloudFront's host as apply recorded it
(dl/aws/hosts.py: never cloudfront:GetDistribution, which returns the origin secret), else the front door's (HTTP
API or Function URL).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import botocore.exceptions

from dl.aws.client import Aws, Stack
from dl.manifest.tags import TAG_COMMIT, TAG_DEPLOYED_AT
from dl.plan.model import Action, short


def _output(stack: Stack, key: str) -> str | None:
    value = stack.outputs.get(key)
    return value if value not in (None, "", "None") else None


def distribution_url(aws: Aws, stack: Stack, spec: dict, bucket: str | None) -> str | None:
    """https://dXXXX.cloudfront.net/prefix/: the distribution's own host, which answers whatever the DNS of a
    custom domain says; None without a distribution (or when the host was not recorded: an emulator).

    The host is the one apply recorded in the artifact bucket (:mod:`dl.aws.hosts`), never read from CloudFront:
    GetDistribution returns the origin's secret header, which the plan role must not read."""
    from dl.aws import hosts

    distribution = _output(stack, "DistributionId")
    if not (spec.get("cdn") and distribution):
        return None
    host = hosts.recorded(aws, bucket, spec.get("instance", ""), distribution, spec.get("preview"))
    return f"https://{host}{spec.get('prefix', '/')}" if host else None


def public_url(aws: Aws, stack: Stack, spec: dict, bucket: str | None = None) -> str | None:
    """https://host/prefix/ of a deployed instance, or None when AWS (or the emulator) cannot tell.
    ``bucket``: the artifact bucket, where apply records distributions' hosts."""
    prefix = spec.get("prefix", "/")
    if _output(stack, "Url"):
        return _output(stack, "Url")
    if spec.get("cdn"):
        return distribution_url(aws, stack, spec, bucket)
    try:
        if spec.get("endpoint") == "http-api" and _output(stack, "HttpApiId"):
            return f"https://{_output(stack, 'HttpApiId')}.execute-api.{aws.region}.amazonaws.com{prefix}"
        if spec.get("endpoint", "function-url") == "function-url":
            name = _output(stack, "FunctionName") or stack.name
            url = aws.client("lambda").get_function_url_config(FunctionName=name)["FunctionUrl"]
            return url.rstrip("/") + prefix
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, KeyError):
        return None
    return None


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
