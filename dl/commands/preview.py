"""`dl preview list` and `dl preview gc`: the pull request previews of a project, and the removal of stale ones.

``list`` shows each preview (pull request, instance, commit, age, URL); ``gc`` removes the previews of pull
requests last deployed longer ago than an age, or closed (asked of GitHub), with their unshared artifacts
(dl/apply/preview.py :func:`~dl.apply.preview.destroy_previews`). ``dl apply --preview`` makes previews and
``dl destroy --preview`` removes one pull request's.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import click

from dl.apply.preview import destroy_previews
from dl.commands.options import aws_context, manifest_option, sandbox_option
from dl.manifest.model import Manifest


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
    from dl.aws.hosts import public_url
    from dl.manifest.tags import TAG_COMMIT

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


# --- the commands ---------------------------------------------------------------------------------------


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
