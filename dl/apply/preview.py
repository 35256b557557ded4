"""Preview deployments: a pull request's own live copy of the instances it changes.

A preview goes through the same pipeline as production (dl/commands/pipeline.py ``prepare(preview=N)``, then the one
executor in dl/apply/executor.py); what makes it a preview is decided here:

- **Which instances**: those whose plan against production is not empty (:func:`changed_instances`), or all.
- **What a preview is** (:func:`preview_instance`): never a custom domain or certificate, never ``protect``, no
  CloudFront unless asked (a distribution takes minutes to create, the Function URL answers in seconds), log
  retention of at most :data:`LOG_RETENTION_DAYS` days.
- **Names and tags**: stack ``<project>--pr<N>--<instance>`` (no production stack can have that name: project
  and instance names hold no ``--``), its function name hash-shortened to Lambda's 64 characters
  (``templates.function_name``); tagged ``dl:preview=<N>`` and ``dl:commit=<the pull request's head>``.
- **Artifacts** live under ``previews/`` in the project's bucket (:func:`artifact_prefix`): the CI preview role
  may write nowhere else, so a pull request can neither overwrite nor plant (content-addressed keys are
  predictable) an artifact that production deploys. Previews of different pull requests share them.
- **Lock**: preview applies and destroys hold the previews' own lock (:data:`LOCK_KEY`), which serialises them
  with each other and with the garbage collection of ``previews/``, and never delays or blocks production's.
- **Secrets**: Datasette's signing secret of a preview is derived from the previews' own key
  (``previews/keys/secrets.key``), never from production's: a preview cannot forge production's cookies.

``dl preview list`` and ``dl preview gc`` are below; ``dl apply --preview`` and ``dl destroy --preview`` are in
dl/cli.py.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import click

from dl.commands.options import aws_context, manifest_option, sandbox_option
from dl.errors import DlError
from dl.manifest.model import Instance, Manifest
from dl.plan.model import Action, InstancePlan, Plan

LOG_RETENTION_DAYS = 3  # a CloudWatch Logs retention value (templates.LOG_RETENTION_DAYS)


@dataclass(frozen=True)
class PreviewRequest:
    """`dl apply --preview N [--all] [--preview-cdn]`."""

    number: int
    every: bool = False  # every instance of the manifest, not only those whose production plan is not empty
    cdn: bool = False  # keep CloudFront for instances that have it (default: the Function URL alone)


def preview_instance(instance: Instance, *, cdn: bool = False) -> Instance:
    """The preview copy of an instance (see the module docstring)."""
    return replace(
        instance,
        domain=None,
        certificate_arn=None,
        protect=False,
        cdn=instance.cdn and cdn,
        log_retention_days=min(instance.log_retention_days, LOG_RETENTION_DAYS),
    )


def preview_manifest(manifest: Manifest, *, cdn: bool = False) -> Manifest:
    """The manifest with every instance replaced by its preview copy."""
    instances = {name: preview_instance(i, cdn=cdn) for name, i in manifest.instances.items()}
    return replace(manifest, instances=MappingProxyType(instances))


def changed_instances(plan: Plan) -> list[str]:
    """Instances of the manifest whose production plan is not empty (a destroy has nothing to preview)."""
    return [i.name for i in plan.instances if i.action in (Action.CREATE, Action.UPDATE, Action.REPLACE)]


def check_number(number: int) -> int:
    if number < 1:
        raise DlError(f"--preview {number}: a pull request number is 1 or more")
    return number


def destroy_plan(project: str, region: str, observed, names: list[str] | None = None) -> Plan:
    """A plan destroying the previews of one pull request (all of them, or the named instances')."""
    from dl.build.desired import spec_digest

    names = list(observed.instances) if names is None else names
    items = tuple(
        InstancePlan(
            name,
            Action.DESTROY,
            f"preview of pull request {observed.preview}",
            stack_id=observed.instances[name].stack.stack_id,
            stack_status=observed.instances[name].stack.status,
            # what was observed: the executor refuses it if the stack changed before it held the lock
            before_digest=spec_digest(spec) if (spec := observed.instances[name].spec) is not None else None,
        )
        for name in names
    )
    return Plan(project=project, region=region, instances=items, preview=observed.preview)


# --- the pull request comment ---------------------------------------------------------------------------


def preview_urls(aws, plan: Plan, observed) -> tuple[tuple[str, str | None], ...]:
    """(instance, URL or None when not deployed) for each instance that gets a preview (its production plan is
    not empty) and each preview that is deployed, in plan order."""
    from dl.ops.status import public_url

    names = changed_instances(plan)
    names += [n for n in observed.instances if n not in names]
    rows = []
    for name in names:
        inst = observed.instances.get(name)
        url = (
            public_url(aws, inst.stack, inst.spec, observed.bucket)
            if inst is not None and inst.serving
            else None
        )
        rows.append((name, url))
    return tuple(rows)


def previews_markdown(number: int, urls) -> str:
    """The comment's previews table: each instance's live preview URL, or "not deployed"."""
    from dl.render.markdown import escape_markdown, safe_link

    if not urls:
        return f"**Previews of #{number}:** none (no instance differs from production)."
    rows = [
        f"| {escape_markdown(name)} | {safe_link(url, url) if url else '*not deployed*'} |"
        for name, url in urls
    ]
    return "\n".join(
        [
            f"**Previews of #{number}** (unmerged data, public URLs):",
            "",
            "| Instance | Preview |",
            "| --- | --- |",
            *rows,
        ]
    )


def with_previews(parts, previews):
    """Comment parts (dl/render/comment.py) with the previews table after the summary; `previews` is
    (number, urls) or None (unchanged)."""
    if previews is None:
        return parts
    return replace(parts, summary=parts.summary + "\n\n" + previews_markdown(*previews))


# --- list and gc ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewRow:
    pull_request: int
    instance: str
    stack: str
    stack_status: str
    commit: str | None
    deployed_at: str | None  # the last deploy (tag dl:deployed-at), else the stack's creation
    age_seconds: int | None
    url: str | None


def deployed_at(stack) -> datetime | None:
    from dl.manifest.tags import TAG_DEPLOYED_AT

    raw = stack.tags.get(TAG_DEPLOYED_AT) or stack.updated or stack.created
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def preview_rows(aws, previews: dict, now: datetime) -> list[PreviewRow]:
    """One row per preview stack, by pull request then instance. Reads each public URL (one call each)."""
    from dl.manifest.tags import TAG_COMMIT
    from dl.ops.status import public_url

    rows = []
    for number, observed in sorted(previews.items()):
        for name, inst in sorted(observed.instances.items()):
            moment = deployed_at(inst.stack)
            rows.append(
                PreviewRow(
                    pull_request=number,
                    instance=name,
                    stack=inst.stack.name,
                    stack_status=inst.stack.status,
                    commit=inst.stack.tags.get(TAG_COMMIT),
                    deployed_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None,
                    age_seconds=int((now - moment).total_seconds()) if moment else None,
                    url=public_url(aws, inst.stack, inst.spec, observed.bucket)
                    if inst.spec and inst.serving
                    else None,
                )
            )
    return rows


def human_age(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def render_rows(rows: list[PreviewRow]) -> str:
    from dl.plan.model import short
    from dl.render.plan import clean

    if not rows:
        return "No previews.\n"
    lines = [f"{'PR':>6}  {'INSTANCE':<20} {'COMMIT':<12} {'AGE':>5}  URL"]
    for r in rows:
        url = clean(r.url) if r.url else f"(no URL known; stack {r.stack_status})"
        lines.append(
            f"{'#' + str(r.pull_request):>6}  {clean(r.instance):<20} {short(r.commit):<12} "
            f"{human_age(r.age_seconds):>5}  {url}"
        )
    return "\n".join(lines) + "\n"


def parse_age(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``2w`` -> a timedelta; click.BadParameter otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if not match:
        raise click.BadParameter(f"{text!r}: expected a number and a unit m, h, d or w (e.g. 7d)")
    value, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: value})


def closed_pull_requests(numbers: list[int], env=None) -> set[int]:
    """Which of these pull requests are closed (merged or not), asked of GitHub with GITHUB_TOKEN."""
    import os

    from dl.github.client import GitHubClient
    from dl.github.events import repository_of as _repository

    env = os.environ if env is None else env
    client = GitHubClient.from_env(env)
    repository = _repository(env)
    closed = set()
    for number in numbers:
        pull = client.request("GET", f"repos/{repository}/pulls/{number}").data
        if isinstance(pull, dict) and pull.get("state") == "closed":
            closed.add(number)
    return closed


def destroy_previews(
    aws,
    manifest: Manifest,
    observed,
    *,
    names=None,
    log,
    parallelism: int = 4,
    lock=None,
    sweep: bool = False,
):
    """Delete one pull request's previews (or the named ones) and the artifacts no other stack uses; `lock`:
    the previews' lock when the caller holds it (else the executor takes it). CloudFormation deletes them as
    the preview execution role (what the CI preview role may pass), or with `sweep` as production's (the
    nightly sweep runs with the apply role, which may pass only that one)."""
    from dl.apply.executor import Executor

    plan = destroy_plan(manifest.project, aws.region, observed, names)
    executor = Executor(
        aws,
        manifest,
        log=log,
        parallelism=parallelism,
        preview=observed.preview,
        lock=lock,
        operation="destroy",
    )
    executor.as_production = sweep
    return plan, executor.execute(plan, {}, observed, {})


@click.group("preview")
def preview_command() -> None:
    """Pull request previews: list them, and remove old or closed ones (`dl apply --preview PR` makes them)."""


@preview_command.command("list")
@manifest_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (pull_request, instance, url, ...).")
@sandbox_option
def list_command(manifest_path: str, as_json: bool, sandbox: bool) -> None:
    """Show every preview of the project: pull request, instance, commit, age and URL."""
    from dl.aws.client import Aws
    from dl.aws.observed import observe_previews
    from dl.commands.options import load

    manifest = load(manifest_path, check_files=False)
    with aws_context(sandbox, manifest.region):
        aws = Aws(manifest.region)
        rows = preview_rows(aws, observe_previews(aws, manifest.project), datetime.now(UTC))
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2, sort_keys=True))
    else:
        click.echo(render_rows(rows), nl=False)


@preview_command.command("gc")
@manifest_option
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Remove previews last deployed longer ago than this (e.g. 7d, 36h, 2w).",
)
@click.option(
    "--closed/--no-closed",
    "check_closed",
    default=None,
    help="Also remove previews whose pull request is closed (asks GitHub; default: when GITHUB_TOKEN is set).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@sandbox_option
def gc_command(manifest_path: str, older_than: str, check_closed, dry_run: bool, sandbox: bool) -> None:
    """Remove stale previews and their unshared artifacts. A pull request's previews go together: when one
    of them is older than AGE (or its pull request is closed), all of them are removed."""
    from dl.commands.options import load

    age = parse_age(older_than)
    manifest = load(manifest_path, check_files=False)
    with aws_context(sandbox, manifest.region):
        _gc(manifest, age, check_closed, dry_run)


def _gc(manifest: Manifest, age: timedelta, check_closed, dry_run: bool) -> None:
    import os

    from dl.aws.client import Aws
    from dl.aws.observed import observe_previews

    aws = Aws(manifest.region)
    previews = observe_previews(aws, manifest.project)
    now = datetime.now(UTC)
    reasons: dict[int, str] = {}
    for number, observed in previews.items():
        moments = [deployed_at(i.stack) for i in observed.instances.values()]
        newest = max((m for m in moments if m is not None), default=None)
        if newest is None or now - newest > age:
            reasons[number] = (
                f"last deployed {human_age(int((now - newest).total_seconds())) if newest else '?'} ago"
            )
    if check_closed is None:
        check_closed = bool(os.environ.get("GITHUB_TOKEN"))
    if check_closed:
        for number in closed_pull_requests(sorted(set(previews) - set(reasons))):
            reasons[number] = "pull request closed"
    if not reasons:
        click.echo(f"No previews to remove ({len(previews)} kept).")
        return
    failed = False
    for number in sorted(reasons):
        names = ", ".join(sorted(previews[number].instances))
        click.echo(
            f"pull request #{number} ({reasons[number]}): {'would remove' if dry_run else 'removing'} {names}"
        )
        if dry_run:
            continue
        _, result = destroy_previews(
            aws, manifest, previews[number], log=lambda line: click.echo(line, err=True), sweep=True
        )
        failed = failed or not result.ok
    kept = len(previews) - len(reasons)
    click.echo(
        f"{'Would remove' if dry_run else 'Removed'} the previews of {len(reasons)} pull request(s); {kept} kept."
    )
    if failed:
        sys.exit(1)
