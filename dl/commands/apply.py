"""`dl apply`: plan, show, confirm, apply (dl/apply/executor.py), or apply exactly a saved plan; with --preview,
a pull request's previews (dl/apply/preview.py); with --require-reviewed-plan, only the plan reviewed on the merged
pull request (dl/github/review.py). The project's lock is held from before AWS is observed to the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dl.commands.options import (
    load,
    lock_timeout_option,
    manifest_option,
    outside_paths_option,
    pipeline_options,
)
from dl.commands.output import colour, confirm, manifest_label, report_outcomes, stderr
from dl.commands.pipeline import run_pipeline
from dl.errors import DlError


@click.command("apply")
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
def apply_command(
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

    With --preview PR: the same for a pull request's previews (see docs/github.md, "Previews")."""
    import json

    from dl.apply.executor import ApplyInterrupted, apply_plan, refuse_unsafe
    from dl.apply.preview import PreviewRequest
    from dl.plan.model import Plan
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
    label = manifest_label(manifest)
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
    with run_pipeline(
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
            stderr(_preview_choice(prepared))
        if saved and saved.region != prepared.aws.region:
            raise DlError(f"{plan_file} is a plan for region {saved.region}, not {prepared.aws.region}")
        click.echo(render_text(chosen, colour=colour()), nl=False)
        if chosen.is_empty():
            if review is not None:
                report = ApplyReport(summary="**Nothing to apply:** AWS already matches the manifest.")
                review.post_outcome(report, ok=True, log=stderr)
            return
        if review is not None:
            review.check(chosen, allow_unreviewed=allow_unreviewed, log=stderr)
        try:
            if prepared.conflicts:
                from dl.aws.conflicts import render_conflicts

                raise DlError("refusing to apply: " + render_conflicts(list(prepared.conflicts)))
            refuse_unsafe(chosen, allow_destroy=allow_destroy)
        except DlError as exc:
            _refused(review, exc, label)
            raise
        if not plan_file:
            confirm(yes, "Apply these changes?")
        try:
            result = apply_plan(
                chosen,
                prepared.desired,
                prepared.aws,
                prepared.manifest,
                allow_destroy=allow_destroy,
                parallelism=parallelism,
                log=stderr,
                observed=prepared.observed,
                verify=not no_verify,
                rollback_on_failure=rollback_on_failure,
                lock=prepared.lock,
                lock_timeout=lock_timeout,
            )
        except ApplyInterrupted as exc:  # Ctrl-C while writing: say what state was left
            stderr(str(exc))
            _refused(review, exc, label, verb="Apply interrupted")
            sys.exit(130)
        except DlError as exc:
            _refused(review, exc, label, verb="Apply failed")
            raise
        report_outcomes(result)
        report = _apply_summary(result, label)
        if review is not None:
            review.post_outcome(report, ok=result.ok, log=stderr)
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
        review.post_outcome(report, ok=False, log=stderr)


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
