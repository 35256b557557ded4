"""`dl plan`: what `dl apply` would change, from the shared pipeline (dl/commands/pipeline.py), rendered as text,
Markdown or JSON (dl/render/plan.py), saved for `dl apply FILE`, and posted as the pull request's sticky comment
with --comment (dl/github/review.py). Exit codes: 0, or with --detailed-exitcode 2 when there are changes.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click

from dl.commands.options import load, manifest_option, outside_paths_option, pipeline_options
from dl.commands.output import colour, label_of, manifest_label, stderr
from dl.commands.pipeline import run_pipeline
from dl.errors import DlError


@click.command("plan")
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
def plan_command(
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

        review = PlanReview(label_of(manifest_path), manifest_directory(manifest_path))
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
            review.post_failure(exc, stderr)
        raise
    label = manifest_label(manifest)
    _show_plan(result, label, out, fmt)
    if review is not None:
        outcome = review.post_plan(result, allow_destroy=allow_destroy, previews=previews)
        stderr(f"Pull request comment {outcome.action}: {outcome.url}".rstrip(": "))
    else:
        from dl.github.outputs import write_plan_summary
        from dl.render.plan import comment_parts

        write_plan_summary(
            _with_previews(comment_parts(result, manifest=label, allow_destroy=allow_destroy), previews)
        )
    if conflicts:
        from dl.aws.conflicts import render_conflicts

        stderr(render_conflicts(list(conflicts)))
        sys.exit(1)
    if detailed_exitcode and not result.is_empty():
        sys.exit(2)


def _make_plan(manifest_path, allow_outside_paths, targets, parallelism, sandbox, comment, preview=None):
    """(manifest, plan, conflicts, previews): load, check credentials (for --comment), run the pipeline; with
    `preview`, read that pull request's preview URLs (see _preview_urls)."""
    from dl.plan.model import Action

    manifest = load(manifest_path, allow_outside_paths)
    label = manifest_label(manifest)
    if comment and not sandbox:
        _require_credentials(manifest)
    with run_pipeline(
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
        stderr(f"Saved the plan to {out}: apply exactly it with `dl apply {out}`.")
    if fmt == "json":
        click.echo(render_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(result, manifest=label))
    else:
        click.echo(render_text(result, colour=colour()), nl=False)
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
        stderr(f"preview of #{number}: {name}: {url or 'not deployed'}")
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
