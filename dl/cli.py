"""The `dl` command line: one click group, one small function per command.

Commands stay thin: they call the pipeline (manifest -> desired -> observed -> plan -> apply -> render)
and turn its errors into messages and exit codes: 0 success, 1 failure (a clear message, never a traceback),
2 usage errors (click's own).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click

from dl import __version__
from dl.commands.options import aws_context, load, manifest_option, outside_paths_option, sandbox_option
from dl.errors import DlError, ManifestError, UnknownInstance


class SummaryGroup(click.Group):
    """`--help` lists each command with its whole first sentence, wrapped (click cuts it to fit one line)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class DlGroup(SummaryGroup):
    """Turns DlError (and anything unexpected) into a message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            if os.environ.get("GITHUB_ACTIONS") == "true":  # each problem on its line of the manifest
                from dl.github.outputs import annotation

                for problem in exc.problems:
                    click.echo(annotation(problem))
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''} found.", err=True)
            sys.exit(1)
        except DlError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still no traceback for users unless they ask
            if os.environ.get("DL_DEBUG"):
                raise
            click.echo(
                f"Internal error: {type(exc).__name__}: {exc} (set DL_DEBUG=1 for the traceback)", err=True
            )
            sys.exit(1)


@click.group(cls=DlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dl")
def main() -> None:
    """datasette-lambda: publish SQLite databases with Datasette on AWS Lambda."""


@main.command()
@manifest_option
@outside_paths_option
def validate(manifest_path: str, allow_outside_paths: bool) -> None:
    """Check the manifest and every file it names; report all problems at once.

    Exit 0 when valid, 1 when not (each problem as FILE:LINE:COL: PATH: MESSAGE), 2 for usage errors.
    """
    manifest = load(manifest_path, allow_outside_paths)
    databases = sum(len(i.databases) for i in manifest.instances.values())
    count = len(manifest.instances)
    click.echo(
        f"{manifest_path}: valid (project {manifest.project}: {count} instance{'s' if count != 1 else ''}, "
        f"{databases} database{'s' if databases != 1 else ''})"
    )


# --- plan / apply / destroy ---------------------------------------------------------------------------


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _manifest_label(manifest) -> str:
    try:
        return os.path.relpath(manifest.path, manifest.root)
    except ValueError:
        return manifest.path.name


def _label_of(manifest_path: str) -> str:
    """The label ``_manifest_label`` gives, from the path alone (for a manifest that may not load)."""
    from dl.manifest.load import find_root

    path = Path(manifest_path).absolute()
    try:
        return os.path.relpath(path, find_root(path.parent))
    except ValueError:
        return path.name


def pipeline_options(f):
    """--target (repeatable), --parallelism, --sandbox: shared by plan and apply."""
    f = sandbox_option(f)
    f = click.option(
        "--parallelism",
        default=4,
        show_default=True,
        type=click.IntRange(1, 64),
        help="Instances worked on at once.",
    )(f)
    f = click.option(
        "--target", "targets", multiple=True, metavar="INSTANCE", help="Limit to this instance (repeatable)."
    )(f)
    return f


@contextmanager
def _prepared(
    manifest,
    *,
    sandbox: bool,
    targets,
    parallelism: int,
    label: str,
    lock: str | None = None,
    lock_timeout=0.0,
    preview=None,
):
    """The pipeline's result (manifest -> desired -> observed -> plan), inside the sandbox when asked: the
    emulator lives as long as the block, so `apply` can act on what it planned.

    ``lock``: the operation ("apply") that takes the project's lock (dl/apply/lock.py) for the whole block,
    before AWS is observed, so the plan shown is the plan applied; released when the block ends, Ctrl-C included.

    Targets keep their order without repeats; they may name deployed instances no longer in the manifest (to
    destroy them); names that are neither are refused by the pipeline once AWS has been read."""
    from dataclasses import replace

    from dl.commands.pipeline import prepare

    with aws_context(sandbox, manifest.region):
        number = preview.number if preview is not None else None
        with _project_lock(manifest, lock, lock_timeout, number) if lock else nullcontext() as held:
            prepared = prepare(
                manifest,
                targets=list(dict.fromkeys(targets)),
                parallelism=parallelism,
                log=_stderr,
                manifest_label=label,
                preview=preview,
            )
            yield replace(prepared, lock=held)


@contextmanager
def _project_lock(manifest, operation: str, timeout: float, preview: int | None = None):
    """The project's lock, held for the block (None when the project has no artifact bucket yet: the executor
    takes it once the bootstrap has created one); with `preview`, the previews' own lock (dl/apply/preview.py)."""
    from dl.apply.executor import current_commit
    from dl.apply.lock import ProjectLock
    from dl.aws.client import Aws
    from dl.aws.names import lock_key
    from dl.aws.observed import bootstrap_bucket

    aws = Aws(manifest.region)
    bucket = bootstrap_bucket(aws, manifest.project)
    if bucket is None:
        yield None
        return
    lock = ProjectLock(
        aws,
        bucket,
        operation=operation,
        commit=current_commit(manifest.path.parent),
        log=_stderr,
        key=lock_key(preview),
    )
    lock.acquire(timeout)
    try:
        yield lock
    finally:
        lock.release()


def lock_timeout_option(f):
    return click.option(
        "--lock-timeout",
        default=0,
        show_default=True,
        type=click.IntRange(0),
        metavar="SECONDS",
        help="Wait this long for another apply or destroy of the project to release its lock (0: fail at once).",
    )(f)


@main.command()
@manifest_option
@outside_paths_option
@pipeline_options
@click.option(
    "--out", "out", type=click.Path(dir_okay=False), help="Save the plan as JSON for `dl apply FILE`."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="How to print the plan.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 2 when there are, 1 on error.",
)
@click.option(
    "--comment", is_flag=True, help="Post the plan as the pull request's sticky comment (GitHub Actions)."
)
@click.option(
    "--allow-destroy",
    is_flag=True,
    help="Say that the apply will run with --allow-destroy (only what the plan says about refusals changes).",
)
@click.option(
    "--preview",
    "preview",
    type=click.IntRange(1),
    metavar="PR",
    help="Show pull request PR's preview URLs (live, or not deployed) beside the plan and in the comment.",
)
def plan(
    manifest_path,
    allow_outside_paths,
    targets,
    parallelism,
    sandbox,
    out,
    fmt,
    detailed_exitcode,
    comment,
    allow_destroy,
    preview,
):
    """Show what `dl apply` would change: a diff of the manifest against what is deployed."""
    review = None
    if comment and not os.environ.get("GITHUB_REPOSITORY"):
        from dl.github.events import ONLY_IN_ACTIONS

        raise DlError(ONLY_IN_ACTIONS)  # before anything is built
    if comment:
        from dl.github.review import PlanReview, manifest_directory

        review = PlanReview(_label_of(manifest_path), manifest_directory(manifest_path))
        review.refuse_base_checkout()  # before anything: the comment stays as it is
    try:
        with _sigterm_as_interrupt() if comment else nullcontext():
            manifest, result, conflicts, previews = _make_plan(
                manifest_path, allow_outside_paths, targets, parallelism, sandbox, comment, preview
            )
    except (SystemExit, click.exceptions.Exit):
        raise
    except BaseException as exc:  # noqa: B036  # the comment must not keep showing an older plan
        if review is not None:
            review.post_failure(exc, _stderr)
        raise
    label = _manifest_label(manifest)
    _show_plan(result, label, out, fmt)
    if review is not None:
        outcome = review.post_plan(result, allow_destroy=allow_destroy, previews=previews)
        _stderr(f"Pull request comment {outcome.action}: {outcome.url}".rstrip(": "))
    else:
        from dl.github.outputs import write_plan_summary
        from dl.render.plan import comment_parts

        write_plan_summary(
            _with_previews(comment_parts(result, manifest=label, allow_destroy=allow_destroy), previews)
        )
    if conflicts:
        from dl.aws.conflicts import render_conflicts

        _stderr(render_conflicts(list(conflicts)))
        sys.exit(1)
    if detailed_exitcode and not result.is_empty():
        sys.exit(2)


def _make_plan(manifest_path, allow_outside_paths, targets, parallelism, sandbox, comment, preview=None):
    """(manifest, plan, conflicts, previews): load, check credentials (for --comment), run the pipeline; with
    `preview`, read that pull request's preview URLs (see _preview_urls)."""
    from dl.plan import Action

    manifest = load(manifest_path, allow_outside_paths)
    label = _manifest_label(manifest)
    if comment and not sandbox:
        _require_credentials(manifest)
    with _prepared(
        manifest, sandbox=sandbox, targets=targets, parallelism=parallelism, label=label
    ) as prepared:
        if prepared.plan.bootstrap is Action.UPDATE:
            # apply may upgrade it where the caller may; a plan made to be applied later must not count on that
            from dl.aws.bootstrap import outdated_message

            observed = prepared.observed
            raise DlError(
                outdated_message(manifest.project, observed.region, observed.bootstrap_version or 1)
            )
        previews = _preview_urls(prepared, preview) if preview is not None else None
        return manifest, prepared.plan, prepared.conflicts, previews


def _show_plan(result, label: str, out, fmt: str) -> None:
    from dl.render.plan import render_json, render_markdown, render_text

    if out:
        Path(out).write_text(result.dumps(), encoding="utf-8")
        _stderr(f"Saved the plan to {out}: apply exactly it with `dl apply {out}`.")
    if fmt == "json":
        click.echo(render_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(result, manifest=label))
    else:
        click.echo(render_text(result, colour=_colour()), nl=False)
    _github_outputs(result, out)


@contextmanager
def _sigterm_as_interrupt():
    """GitHub cancels a job with SIGINT, then SIGTERM: both end the plan as an interrupt, so the comment
    says the run was cancelled instead of keeping an older plan."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _require_credentials(manifest) -> None:
    """No plan without AWS credentials (as on a pull request from a fork): one clear line for a fork, whose
    token cannot comment anyway; otherwise an error the comment shows."""
    from dl.github.events import explain_missing_credentials
    from dl.github.outputs import write_step_summary
    from dl.github.review import NoCredentials, fork_without_credentials

    reason = _missing_credentials(manifest)
    if not reason:
        return
    line = fork_without_credentials()
    if line:
        click.echo(f"::error title=datasette-lambda::{line}")
        write_step_summary(f"**datasette-lambda:** {line}")
        sys.exit(1)
    raise NoCredentials(f"{reason} {explain_missing_credentials()}")


def _preview_urls(prepared, number: int):
    """(number, ((instance, URL or None), ...)) of pull request `number`'s previews; printed to stderr."""
    from dl.apply.preview import preview_urls
    from dl.aws.observed import observe

    observed = observe(prepared.aws, prepared.manifest.project, preview=number)
    urls = preview_urls(prepared.aws, prepared.plan, observed)
    for name, url in urls:
        _stderr(f"preview of #{number}: {name}: {url or 'not deployed'}")
    return number, urls


def _with_previews(parts, previews):
    """The comment's parts with the previews table after the summary (beside the plan)."""
    from dl.apply.preview import with_previews

    return with_previews(parts, previews)


def _missing_credentials(manifest) -> str | None:
    """Why no plan can be made here (no credentials, as on a pull request from a fork), or None."""
    import boto3

    session = boto3.session.Session()
    if session.get_credentials() is None:
        return "no AWS credentials are available to this job."
    return None


def _github_outputs(result, out) -> None:
    from dl.github.outputs import write_outputs

    outputs = {"has-changes": "false" if result.is_empty() else "true", "summary": result.summary()}
    if out:
        outputs["plan-json"] = str(Path(out).resolve())
    write_outputs(outputs)


def _confirm(yes: bool, question: str, verb: str = "apply") -> None:
    if yes or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    if not sys.stdin.isatty():
        raise DlError(f"no terminal to confirm on: pass --yes to {verb} without confirmation")
    if not click.confirm(question, default=False):
        raise DlError("cancelled: nothing was changed")


@main.command()
@click.argument("plan_file", required=False, type=click.Path(exists=True, dir_okay=False))
@manifest_option
@outside_paths_option
@pipeline_options
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation (CI=true implies it).")
@click.option("--allow-destroy", is_flag=True, help="Allow the plan to destroy or replace instances.")
@click.option("--no-verify", is_flag=True, help="Skip the HTTP check of changed instances after apply.")
@click.option(
    "--rollback-on-failure",
    is_flag=True,
    help="When the HTTP check of an updated instance fails, re-deploy its previous spec.",
)
@click.option(
    "--require-reviewed-plan",
    is_flag=True,
    help="Apply only the plan reviewed on the pull request merged as GITHUB_SHA (GitHub Actions).",
)
@click.option(
    "--allow-unreviewed",
    is_flag=True,
    help="With --require-reviewed-plan: also apply a push that no pull request merged.",
)
@lock_timeout_option
@click.option(
    "--preview",
    "preview",
    type=click.IntRange(1),
    metavar="PR",
    help="Deploy pull request PR's preview copies (stacks <project>--pr<PR>--<instance>) of the instances "
    "whose plan against production is not empty; production is not touched.",
)
@click.option("--all", "every", is_flag=True, help="With --preview: a preview of every instance.")
@click.option(
    "--preview-cdn", is_flag=True, help="With --preview: keep CloudFront for instances that have it."
)
def apply(
    plan_file,
    manifest_path,
    allow_outside_paths,
    targets,
    parallelism,
    sandbox,
    yes,
    allow_destroy,
    no_verify,
    rollback_on_failure,
    require_reviewed_plan,
    allow_unreviewed,
    lock_timeout,
    preview,
    every,
    preview_cdn,
):
    """Make AWS match the manifest: plan, show, confirm, apply. With PLAN_FILE, apply exactly that saved plan.

    With --preview PR: the same for a pull request's previews (see the README's "Previews")."""
    import json

    from dl.apply.executor import ApplyInterrupted, apply_plan, refuse_unsafe
    from dl.apply.preview import PreviewRequest
    from dl.plan import Plan
    from dl.render.comment import ApplyReport
    from dl.render.plan import render_text

    if (every or preview_cdn) and preview is None:
        raise click.UsageError("--all and --preview-cdn go with --preview PR")
    if plan_file and preview is not None:
        raise click.UsageError("--preview makes its own plan: give no PLAN_FILE")
    if require_reviewed_plan and preview is not None:
        raise click.UsageError("--require-reviewed-plan is for production; a preview is never reviewed first")
    request = PreviewRequest(preview, every=every, cdn=preview_cdn) if preview is not None else None
    allow_destroy = allow_destroy or request is not None  # previews are disposable and never protected
    manifest = load(manifest_path, allow_outside_paths)
    label = _manifest_label(manifest)
    saved = None
    if plan_file:
        try:
            saved = Plan.from_json(json.loads(Path(plan_file).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise DlError(f"{plan_file}: not a readable plan file ({exc})") from None
        if saved.project != manifest.project:
            raise DlError(f"{plan_file} is a plan for project {saved.project}, not {manifest.project}")
        targets = tuple(
            i.name for i in saved.instances if i.name in manifest.instances or i.action.value == "destroy"
        )
    review = None
    if require_reviewed_plan:
        from dl.github.review import ApplyReview

        review = ApplyReview(label)  # reads GitHub only; fails before AWS is touched
    elif allow_unreviewed:
        raise click.UsageError("--allow-unreviewed only means something with --require-reviewed-plan")
    with _prepared(
        manifest,
        sandbox=sandbox,
        targets=targets,
        parallelism=parallelism,
        label=label,
        lock="apply",
        lock_timeout=lock_timeout,
        preview=request,
    ) as prepared:
        chosen = saved or prepared.plan
        if request is not None:
            _stderr(_preview_choice(prepared))
        if saved and saved.region != prepared.aws.region:
            raise DlError(f"{plan_file} is a plan for region {saved.region}, not {prepared.aws.region}")
        click.echo(render_text(chosen, colour=_colour()), nl=False)
        if chosen.is_empty():
            if review is not None:
                report = ApplyReport(summary="**Nothing to apply:** AWS already matches the manifest.")
                review.post_outcome(report, ok=True, log=_stderr)
            return
        if review is not None:
            review.check(chosen, allow_unreviewed=allow_unreviewed, log=_stderr)
        try:
            if prepared.conflicts:
                from dl.aws.conflicts import render_conflicts

                raise DlError("refusing to apply: " + render_conflicts(list(prepared.conflicts)))
            refuse_unsafe(chosen, allow_destroy=allow_destroy)
        except DlError as exc:
            _refused(review, exc, label)
            raise
        if not plan_file:
            _confirm(yes, "Apply these changes?")
        try:
            result = apply_plan(
                chosen,
                prepared.desired,
                prepared.aws,
                prepared.manifest,
                allow_destroy=allow_destroy,
                parallelism=parallelism,
                log=_stderr,
                observed=prepared.observed,
                verify=not no_verify,
                rollback_on_failure=rollback_on_failure,
                lock=prepared.lock,
                lock_timeout=lock_timeout,
            )
        except ApplyInterrupted as exc:  # Ctrl-C while writing: say what state was left
            _stderr(str(exc))
            _refused(review, exc, label, verb="Apply interrupted")
            sys.exit(130)
        except DlError as exc:
            _refused(review, exc, label, verb="Apply failed")
            raise
        _report(result)
        report = _apply_summary(result, label)
        if review is not None:
            review.post_outcome(report, ok=result.ok, log=_stderr)
        if sandbox and result.ok:
            from dl.commands.pipeline import prepare

            after = prepare(
                manifest,
                targets=list(targets) or None,
                parallelism=parallelism,
                log=lambda _: None,
                preview=request,
            )
            click.echo(f"Sandbox: planning again after the apply: {after.plan.summary()}")
    if not result.ok:
        sys.exit(1)


def _preview_choice(prepared) -> str:
    """Which instances get a preview, and why (stderr, before the plan)."""
    chosen = list(prepared.desired)
    number = prepared.plan.preview
    if not chosen:
        return f"Preview of pull request #{number}: no instance differs from production."
    return f"Preview of pull request #{number}: {', '.join(chosen)} (plan against production not empty)."


def _refused(review, exc: Exception, label: str, *, verb: str = "Apply refused") -> None:
    """An apply that stopped before or while writing: the job summary and the merged pull request say why."""
    from dl.github.outputs import write_apply_summary, write_outputs
    from dl.render.comment import ApplyReport
    from dl.render.markdown import code_block

    report = ApplyReport(summary=f"**{verb}.**\n\n" + code_block(str(exc)), manifest=label)
    write_apply_summary(report)
    write_outputs({"summary": f"{verb}: {str(exc).splitlines()[0]}"})
    if review is not None:
        review.post_outcome(report, ok=False, log=_stderr)


def _apply_summary(result, label: str):
    """The job summary and the `summary` output after apply (GitHub Actions only): what changed and the
    public URLs. Returns the report (the merged pull request's comment shows it too)."""
    from dl.github.outputs import write_apply_summary, write_outputs
    from dl.render.comment import ApplyReport

    ok = [o for o in result.outcomes if o.ok]
    verb = "Apply complete" if result.ok else "Apply failed"
    changes = tuple(
        (o.name, f"{o.action.value}: {o.message}" if o.ok else f"FAILED: {o.message}")
        for o in result.outcomes
    )
    report = ApplyReport(
        summary=f"{verb}: {len(ok)} succeeded, {len(result.outcomes) - len(ok)} failed.",
        changes=changes,
        urls=tuple((o.name, o.url) for o in result.outcomes if o.url),
        manifest=label,
    )
    write_apply_summary(report)
    write_outputs({"summary": f"{verb}: {len(ok)} succeeded, {len(result.outcomes) - len(ok)} failed."})
    return report


def _report(result, command: str = "Apply") -> None:
    """One line per instance, then `Apply complete: ...` (or `Destroy complete: ...` for `dl destroy`)."""
    ok = [o for o in result.outcomes if o.ok]
    failed = [o for o in result.outcomes if not o.ok]
    for o in ok:
        done = o.message if o.message == "destroyed" else f"{o.action.value} {o.message}"
        click.echo(f"{o.name}: {done}" + (f" -> {o.url}" if o.url else ""))
    for o in failed:
        click.echo(f"{o.name}: FAILED ({o.action.value}): {o.message}", err=True)
    for line in result.certificates:  # orphaned certificate stacks: removed, or left for the next apply
        click.echo(line)
    verb = f"{command} complete" if not failed else f"{command} failed"
    click.echo(f"{verb}: {len(ok)} succeeded, {len(failed)} failed.")


@main.command()
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
def destroy(instances, manifest_path, everything, preview, yes, parallelism, sandbox, lock_timeout):
    """Delete the named instances' stacks and their unshared artifacts (or --all of the project's)."""
    if preview is not None and everything:
        raise click.UsageError("--preview PR destroys that pull request's previews: no --all")
    if preview is None and bool(instances) == everything:
        raise click.UsageError("name the instances to destroy, or pass --all")
    manifest = load(manifest_path, check_files=False)
    with aws_context(sandbox, manifest.region):
        with _project_lock(manifest, "destroy", lock_timeout, preview) as lock:
            if preview is not None:
                _destroy_preview(preview, list(dict.fromkeys(instances)), manifest, yes, parallelism, lock)
            else:
                _destroy(manifest, instances, everything, yes, parallelism, lock)


def _destroy(manifest, instances, everything: bool, yes: bool, parallelism: int, lock=None) -> None:
    from dl.apply.executor import Executor
    from dl.aws.client import Aws, require_credentials
    from dl.aws.observed import observe
    from dl.plan import Action, InstancePlan, Plan, certificate_removals
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
    click.echo(render_text(chosen, colour=_colour()), nl=False)
    refused = [i.name for i in items if i.protected]
    if refused:
        raise DlError(f"refusing to destroy protected instances (protect: true): {', '.join(refused)}")
    _confirm(
        yes,
        f"Destroy {len(items)} instance{'s' if len(items) != 1 else ''}? This cannot be undone.",
        "destroy",
    )
    executor = Executor(aws, manifest, log=_stderr, parallelism=parallelism, lock=lock, operation="destroy")
    result = executor.execute(chosen, {}, observed, {})
    _report(result, "Destroy")
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
    _confirm(yes, f"Destroy {count} preview{'s' if count != 1 else ''} of pull request #{number}?")
    _, result = destroy_previews(
        aws, manifest, observed, names=names or None, log=_stderr, parallelism=parallelism, lock=lock
    )
    _report(result, "Destroy")
    if not result.ok:
        sys.exit(1)


@main.command()
@manifest_option
@click.option("--yes", "-y", is_flag=True, help="Break the lock without asking for confirmation.")
@sandbox_option
def unlock(manifest_path, yes, sandbox):
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


# --- the sandbox: a local AWS emulator that lasts ------------------------------------------------------


@main.group(cls=SummaryGroup)
def sandbox() -> None:
    """Run a local AWS emulator in the background, for --sandbox (state in memory, address in .dl/)."""


@sandbox.command("up")
def sandbox_up() -> None:
    """Start the local AWS emulator in the background (or say where the running one is)."""
    from dl.local.sandbox import state_dir, up

    found, started = up()
    where = os.path.relpath(state_dir())
    if started:
        click.echo(f"Sandbox started at {found.url} (pid {found.pid}; recorded in {where}/).")
    else:
        click.echo(f"Sandbox already running at {found.url} (pid {found.pid}; recorded in {where}/).")
    click.echo("Commands with --sandbox use it; `dl sandbox down` stops it and forgets everything it holds.")


@sandbox.command("down")
def sandbox_down() -> None:
    """Stop the local AWS emulator; everything deployed to it is gone."""
    from dl.local.sandbox import down

    stopped = down()
    if stopped is None:
        click.echo("No sandbox is running.")
    else:
        click.echo(f"Sandbox at {stopped.url} (pid {stopped.pid}) stopped.")


# --- command registration: one line per command module -------------------------------------------
from dl.commands.bootstrap import bootstrap_command; main.add_command(bootstrap_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.ops.logs import logs_command; main.add_command(logs_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.package import package_command; main.add_command(package_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.serve import serve_command; main.add_command(serve_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.template import template_command; main.add_command(template_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.ops.status import status_command; main.add_command(status_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.apply.preview import preview_command; main.add_command(preview_command)  # noqa: E402, E702, I001  # fmt: skip
