"""`dl destroy` (named instances, --all, or a pull request's previews) and `dl unlock` (break a lock left by a
stopped apply): the two commands that remove what apply made, under the project's lock (dl/apply/lock.py).
"""

from __future__ import annotations

import sys

import click

from dl.commands.options import aws_context, load, lock_timeout_option, manifest_option, sandbox_option
from dl.commands.output import colour, confirm, report_outcomes, stderr
from dl.commands.pipeline import project_lock
from dl.errors import DlError, UnknownInstance


@click.command("destroy")
@click.argument("instances", nargs=-1)
@manifest_option
@click.option("--all", "everything", is_flag=True, help="Destroy every deployed instance of the project.")
@click.option(
    "--preview",
    "preview",
    type=click.IntRange(1),
    metavar="PR",
    help="Destroy pull request PR's previews (all of them, or the named instances'); production is not touched.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (CI=true implies it).")
@click.option(
    "--parallelism", default=4, show_default=True, type=click.IntRange(1, 64), help="Instances at once."
)
@sandbox_option
@lock_timeout_option
def destroy_command(instances, manifest_path, everything, preview, yes, parallelism, sandbox, lock_timeout):
    """Delete the named instances' stacks and their unshared artifacts (or --all of the project's)."""
    if preview is not None and everything:
        raise click.UsageError("--preview PR destroys that pull request's previews: no --all")
    if preview is None and bool(instances) == everything:
        raise click.UsageError("name the instances to destroy, or pass --all")
    manifest = load(manifest_path, check_files=False)
    with aws_context(sandbox, manifest.region):
        with project_lock(manifest, "destroy", lock_timeout, preview) as lock:
            if preview is not None:
                _destroy_preview(preview, list(dict.fromkeys(instances)), manifest, yes, parallelism, lock)
            else:
                _destroy(manifest, instances, everything, yes, parallelism, lock)


def _destroy(manifest, instances, everything: bool, yes: bool, parallelism: int, lock=None) -> None:
    from dl.apply.executor import Executor
    from dl.aws.client import Aws, require_credentials
    from dl.aws.observed import observe
    from dl.plan.domains import certificate_removals
    from dl.plan.model import Action, InstancePlan, Plan
    from dl.render.plan import render_text

    aws = Aws(manifest.region)
    require_credentials(aws)
    observed = observe(aws, manifest.project, parallelism=parallelism)
    names = list(observed.instances) if everything else list(dict.fromkeys(instances))
    unknown = [n for n in names if n not in observed.instances]
    if unknown:
        raise UnknownInstance(
            f"not deployed in project {manifest.project} ({aws.region}): {', '.join(unknown)}"
        )
    items = []
    for name in names:
        o = observed.instances[name]
        in_manifest = manifest.instances.get(name)
        protected = bool((o.spec or {}).get("protect")) or bool(in_manifest and in_manifest.protect)
        items.append(
            InstancePlan(
                name,
                Action.DESTROY,
                "dl destroy",
                protected=protected,
                stack_id=o.stack.stack_id,
                stack_status=o.stack.status,
            )
        )
    if not items:
        click.echo(
            f"Nothing to destroy: project {manifest.project} has no deployed instances in {aws.region}."
        )
        return
    removals = certificate_removals(manifest.project, {n: None for n in names}, observed, names)
    chosen = Plan(project=manifest.project, region=aws.region, instances=tuple(items), certificates=removals)
    click.echo(render_text(chosen, colour=colour()), nl=False)
    refused = [i.name for i in items if i.protected]
    if refused:
        raise DlError(f"refusing to destroy protected instances (protect: true): {', '.join(refused)}")
    confirm(
        yes,
        f"Destroy {len(items)} instance{'s' if len(items) != 1 else ''}? This cannot be undone.",
        "destroy",
    )
    executor = Executor(aws, manifest, log=stderr, parallelism=parallelism, lock=lock, operation="destroy")
    result = executor.execute(chosen, {}, observed, {})
    report_outcomes(result, "Destroy")
    if not result.ok:
        sys.exit(1)


def _destroy_preview(number: int, names: list[str], manifest, yes: bool, parallelism: int, lock=None) -> None:
    """`dl destroy --preview PR`: that pull request's previews (and their unshared artifacts), never production."""
    from dl.apply.preview import destroy_plan, destroy_previews
    from dl.aws.client import Aws, require_credentials
    from dl.aws.observed import observe
    from dl.render.plan import render_text

    aws = Aws(manifest.region)
    require_credentials(aws)
    observed = observe(aws, manifest.project, parallelism=parallelism, preview=number)
    unknown = [n for n in names if n not in observed.instances]
    if unknown:
        raise DlError(f"pull request #{number} has no preview of: {', '.join(unknown)}")
    if not observed.instances:
        click.echo(f"Nothing to destroy: pull request #{number} has no previews in {aws.region}.")
        return
    click.echo(render_text(destroy_plan(manifest.project, aws.region, observed, names or None)), nl=False)
    count = len(names or observed.instances)
    confirm(yes, f"Destroy {count} preview{'s' if count != 1 else ''} of pull request #{number}?")
    _, result = destroy_previews(
        aws, manifest, observed, names=names or None, log=stderr, parallelism=parallelism, lock=lock
    )
    report_outcomes(result, "Destroy")
    if not result.ok:
        sys.exit(1)


@click.command("unlock")
@manifest_option
@click.option("--yes", "-y", is_flag=True, help="Break the lock without asking for confirmation.")
@sandbox_option
def unlock_command(manifest_path, yes, sandbox):
    """Show the project's apply lock and break it (after confirmation): for a lock left by a stopped apply."""
    manifest = load(manifest_path, check_files=False)
    with aws_context(sandbox, manifest.region):
        _unlock(manifest, yes)


def _unlock(manifest, yes: bool) -> None:
    from dl.apply.lock import break_lock, read_lock
    from dl.aws.client import Aws
    from dl.aws.names import LOCK_KEY
    from dl.aws.observed import bootstrap_bucket

    aws = Aws(manifest.region)
    bucket = bootstrap_bucket(aws, manifest.project)
    info = read_lock(aws, bucket) if bucket else None
    if info is None:
        click.echo(f"No lock: no apply or destroy of project {manifest.project} ({aws.region}) holds it.")
        return
    click.echo(f"Lock s3://{bucket}/{LOCK_KEY}: {info.describe()}")
    if not info.expired:
        click.echo(
            f"Its lease ({info.lease_seconds:.0f} s) has not expired: the holder may still be running; breaking "
            "the lock lets another apply start beside it."
        )
    if not yes:
        if not sys.stdin.isatty():
            raise DlError("no terminal to confirm on: pass --yes to break the lock")
        if not click.confirm("Break this lock?", default=False):
            raise DlError("cancelled: the lock is kept")
    if not break_lock(aws, bucket, info):
        raise DlError("the lock changed since it was shown (renewed or released): run `dl unlock` again")
    click.echo("Lock broken.")
