"""The review loop on GitHub: the plan a pull request is reviewed with, and apply's check that it applies
exactly that plan.

1. ``dl plan --comment`` (``PlanReview``) names what it planned from the checkout (the pull request's head
   and the base GitHub merged it onto), refuses events whose checkout is the base branch unless the head was
   checked out, and posts the plan, or the failure (located errors included) in its place, so the comment
   never shows a plan that is not current. Only a plan made on a ``pull_request`` event is marked as
   reviewable (``state=review``, with the plan's ``review_digest``).
2. ``dl apply --require-reviewed-plan`` (``ApplyReview``) finds the pull request merged as the pushed commit
   (``GET /repos/{owner}/{repo}/commits/{sha}/pulls``), reads the digest of dl's own comment on it and goes
   on only when the plan made now has the same digest and the comment's body is exactly what dl wrote for
   that plan (its author is the bot every workflow of the repository posts as). Otherwise it refuses before anything is written,
   posts the new plan to the pull request as *not reviewed* (a state that never counts as reviewed, so
   re-running the job cannot approve itself) and the CLI exits 1. A push without a pull request is refused
   unless ``--allow-unreviewed``.
3. After apply, the outcome (applied, the URLs, or what failed) replaces the merged pull request's comment.

Pure decisions (``review_verdict``) are separate from the GitHub calls, which live in ``dl.github.client``;
what the run is about (event, checkout) is read by ``dl.github.events``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dl.errors import DlError, ManifestError
from dl.github.client import (
    CommentResult,
    GitHubClient,
    comment_author,
    comment_on_pull_request,
    full_plan_hint,
    merged_pull_request,
    post_parts,
    read_comment,
)
from dl.github.events import (
    Checkout,
    comment_state,
    complete_parts,
    event_head,
    is_fork_pull_request,
    load_event,
    planned_commit,
    planned_line,
    pull_request_number,
    read_checkout,
    repository_of,
    runs_prefix,
)
from dl.github.outputs import write_outputs, write_step_summary
from dl.plan.model import Plan, review_digest
from dl.render.comment import (
    DEFAULT_FULL_PLAN_HINT,
    PLAN,
    REVIEW,
    ApplyReport,
    apply_comment_parts,
    compose_comment,
    compose_job_summary,
    failure_parts,
    footer_commit,
    footer_timestamp,
    no_credentials_parts,
    not_reviewed_parts,
    parse_marker,
    shortened_hint,
)

Log = Callable[[str], None]
# Events whose workflows check out the base branch unless told otherwise: dl refuses to comment a plan on them
# unless the pull request's head was checked out.
BASE_CHECKOUT_EVENTS = ("pull_request_target", "issue_comment")


class NoCredentials(DlError):
    """No AWS credentials reached the job, so nothing could be compared with AWS (``reason``: plain text)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"no plan could be made: {reason}")


def describe_failure(exc: BaseException) -> tuple[str, list[str]]:
    """(headline, error lines) of why a plan failed, for the comment: every located manifest problem as
    ``file:line:col: path: message``."""
    if isinstance(exc, ManifestError):
        count = len(exc.problems)
        return (
            f"the manifest has {count} problem{'s' if count != 1 else ''}.",
            [str(p) for p in exc.problems],
        )
    if isinstance(exc, KeyboardInterrupt):
        return "the run was cancelled before the plan was made.", []
    if isinstance(exc, DlError):
        return "dl stopped with an error.", [str(exc)]
    return "dl stopped with an internal error.", [f"{type(exc).__name__}: {exc}"]


def refuse_base_checkout(
    checkout: Checkout,
    env: Mapping[str, str] = os.environ,
    event: Mapping | None = None,
    client: GitHubClient | None = None,
) -> None:
    """On pull_request_target and comment-triggered events the workflow checks out the base branch unless
    told otherwise; a plan of that, posted on the pull request, would show something the pull request does
    not contain. Refuse (DlError) unless the pull request's head was checked out."""
    name = env.get("GITHUB_EVENT_NAME", "")
    if name not in BASE_CHECKOUT_EVENTS:
        return
    event = load_event(env) if event is None else event
    number = pull_request_number(env, event)
    head = event_head(env, event)
    if head is None:  # issue_comment: the payload has no head commit; ask for the pull request
        client = client or GitHubClient.from_env(env)
        pull = client.request("GET", f"repos/{repository_of(env)}/pulls/{number}").data
        head = ((pull or {}).get("head") or {}).get("sha") if isinstance(pull, Mapping) else None
    if head and checkout.holds(head):
        return
    what = f"commit {checkout.commit}" if checkout.commit else "not a git checkout"
    raise DlError(
        f"refusing to plan pull request #{number} on a {name!r} event: what was checked out ({what}) is not "
        f"the pull request's head ({head or 'unknown'}), so the comment would show a plan of something else. "
        "Plan on the `pull_request` event (as dl's example workflow does), or check out the pull request's "
        "head; note that pull_request_target runs with write access, so do that only for trusted authors."
    )


class PlanReview:
    """The comment of one ``dl plan --comment`` run: what was planned, then the plan or the failure."""

    def __init__(self, label: str, directory: str | os.PathLike, env: Mapping[str, str] = os.environ):
        self.label = label
        self.env = env
        self.checkout = read_checkout(directory)
        self.planned = planned_line(self.checkout, env)
        self.commit = planned_commit(self.checkout)

    def refuse_base_checkout(self) -> None:
        """DlError unless the checkout is the pull request's head (pull_request_target, issue_comment)."""
        refuse_base_checkout(self.checkout, self.env)

    def post_plan(self, plan: Plan, *, allow_destroy: bool = False, previews=None) -> CommentResult:
        """``previews``: (pull request, ((instance, URL or None), ...)) shown beside the plan (dl/apply/preview.py)."""
        from dl.apply.preview import with_previews
        from dl.render.plan import comment_parts

        parts = comment_parts(plan, manifest=self.label, commit=self.commit, allow_destroy=allow_destroy)
        parts = replace(with_previews(parts, previews), planned=self.planned, state=self.state())
        return comment_on_pull_request(parts, manifest=self.label, env=self.env)

    def state(self) -> str:
        """REVIEW only for a plan made on a pull_request event from a checkout that holds the pull
        request's head (GitHub's test merge of it, or the head itself); PLAN for anything else."""
        named = event_head(self.env)
        if comment_state(self.env) == REVIEW and named and self.checkout.holds(named):
            return REVIEW
        return PLAN

    def post_failure(self, exc: BaseException, log: Log) -> CommentResult | None:
        """Replace the comment with why the plan failed; a failure to post is logged, not raised (the
        plan's own error is what the run reports)."""
        if isinstance(exc, NoCredentials):
            parts = no_credentials_parts(exc.reason, manifest=self.label, commit=self.commit)
            parts = replace(parts, planned=self.planned)
        else:
            headline, errors = describe_failure(exc)
            parts = failure_parts(
                headline, errors, manifest=self.label, planned=self.planned, commit=self.commit
            )
        try:
            return comment_on_pull_request(parts, manifest=self.label, env=self.env)
        except DlError as error:
            log(f"The pull request comment could not be updated with the failure: {error}")
            return None


def fork_without_credentials(env: Mapping[str, str] = os.environ) -> str | None:
    """The one line for a pull request from a fork that got no AWS credentials (its token is read-only, so
    no comment can be posted either), None for any other run."""
    if not is_fork_pull_request(env):
        return None
    return (
        "No plan: this pull request comes from a fork, and GitHub gives workflows run for forks neither "
        "secrets nor an OIDC token, so no AWS role could be assumed. A maintainer can push the branch to this "
        "repository to get a plan."
    )


# --- apply: only what was reviewed ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether apply may go on: ``ok``, and ``why`` not (plain text) when it may not."""

    ok: bool
    why: str = ""


def review_verdict(
    marker, digest: str, number: int | None, *, allow_unreviewed: bool, shown: bool = True
) -> Verdict:
    """The decision of ``--require-reviewed-plan``, from the marker of dl's comment on the merged pull
    request (None when there is none), the digest of the plan made now, the pull request's number (None
    when the push came without one) and whether the comment's body shows the plan made now (``shows_plan``).
    Pure."""
    if number is None:
        if allow_unreviewed:
            return Verdict(True)
        return Verdict(
            False,
            "This commit was not merged through a pull request, so no plan of it was reviewed "
            "(pass --allow-unreviewed, or the Action input allow-unreviewed: true, to apply such pushes).",
        )
    if marker is None:
        return Verdict(False, f"Pull request #{number} has no plan comment by dl, so nothing was reviewed.")
    if marker.state != REVIEW:
        return Verdict(
            False,
            f"The comment on pull request #{number} does not hold a plan made for review on a pull_request "
            f"event (it is {marker.state or 'from an older dl'}).",
        )
    if marker.digest != digest:
        return Verdict(
            False,
            f"The plan made now differs from the one reviewed on pull request #{number} (reviewed "
            f"{marker.digest[:12]}, now {digest[:12]}): the manifest, its files or AWS changed after the review.",
        )
    if not shown:
        return Verdict(
            False,
            f"The comment on pull request #{number} does not show the plan its digest names: it was edited "
            "after dl wrote it (every workflow of the repository can edit comments of the bot it posts as), so "
            "what was reviewed is not known.",
        )
    return Verdict(True)


def _hint_written(body: str, runs: str | None) -> str | None:
    """The hint to the full plan that dl wrote in ``body`` (any, when the body was not shortened); None when
    the body names a place dl never points to (anything but a run of this repository)."""
    hint = shortened_hint(body)
    if hint is None or hint == DEFAULT_FULL_PLAN_HINT:
        return DEFAULT_FULL_PLAN_HINT
    link = re.search(r"\]\((\S+)\)\.$", hint)
    url = link.group(1) if link else ""
    if runs and re.fullmatch(re.escape(runs) + r"\d+(?:/attempts/\d+)?", url) and full_plan_hint(url) == hint:
        return hint
    return None


def shows_plan(body: str, plan: Plan, runs: str | None = None) -> bool:
    """Whether ``body`` is exactly what ``dl plan --comment`` writes for ``plan`` (with either allow-destroy
    setting). The marker's digest alone is not enough: the comment's author is the identity every workflow
    of the repository posts as, so its text could have been changed under an intact marker. The body is
    composed again from its own marker, planned line, footer (commit, time) and, when shortened, the hint
    to the full plan, which must be a run of this repository (``runs``: ``dl.github.events.runs_prefix``). Pure."""
    from dl.render.plan import comment_parts

    body = _normal(body)  # the API returns a body as it was sent; line endings and a final newline aside
    found = parse_marker(body)
    blocks = body.split("\n\n")
    if found is None or len(blocks) < 3:
        return False
    timestamp = footer_timestamp(body) or ""
    hint = _hint_written(body, runs)
    if hint is None:
        return False
    for allow_destroy in (False, True):
        parts = comment_parts(
            plan, manifest=found.manifest, commit=footer_commit(body), allow_destroy=allow_destroy
        )
        parts = replace(parts, planned=blocks[1], state=REVIEW, timestamp=timestamp)
        if _normal(compose_comment(parts, full_plan_hint=hint)) == body:
            return True
    return False


def _normal(text: str | None) -> str:
    """``text`` with LF line endings and no trailing white space: the same Markdown as rendered."""
    return (text or "").replace("\r\n", "\n").rstrip()


class ApplyReview:
    """The merged pull request of a push, read once; the gate, and where apply's outcome is posted."""

    def __init__(self, label: str, env: Mapping[str, str] = os.environ, client: GitHubClient | None = None):
        self.label = label
        self.env = env
        self.client = client or GitHubClient.from_env(env)
        self.repository = repository_of(env)
        self.sha = env.get("GITHUB_SHA", "")
        if not self.sha:
            raise DlError(
                "--require-reviewed-plan needs GITHUB_SHA (the pushed commit): run it in GitHub Actions"
            )
        pull = merged_pull_request(self.client, self.repository, self.sha)
        self.number: int | None = int(pull["number"]) if pull else None
        found = (
            read_comment(self.client, self.repository, self.number, label, comment_author(env))
            if self.number is not None
            else None
        )
        self.marker = found[1] if found else None
        self.body = (found[0].get("body") or "") if found else ""

    def check(self, plan: Plan, *, allow_unreviewed: bool, log: Log) -> None:
        """Go on, or post the plan to the pull request as not reviewed and raise DlError (nothing written to
        AWS yet)."""
        verdict = review_verdict(
            self.marker,
            review_digest(plan),
            self.number,
            allow_unreviewed=allow_unreviewed,
            shown=self.marker is None or shows_plan(self.body, plan, runs_prefix(self.env)),
        )
        if verdict.ok:
            if self.number is None:
                log("Applying an unreviewed push (--allow-unreviewed): no pull request merged this commit.")
            else:
                log(f"The plan is the one reviewed on pull request #{self.number}.")
            return
        from dl.render.plan import comment_parts

        parts = not_reviewed_parts(comment_parts(plan, manifest=self.label), verdict.why, commit=self.sha)
        parts = complete_parts(parts, manifest=self.label, env=self.env)
        write_step_summary(compose_job_summary(parts), self.env)
        if self.number is not None:
            posted = post_parts(parts, env=self.env, number=self.number, client=self.client)
            log(f"Posted the new plan to pull request #{self.number} as not reviewed: {posted.url}")
        write_outputs({"summary": "Apply refused: the plan made now is not the one reviewed."}, self.env)
        todo = (
            "Re-run the pull request's plan and review it; then re-run this job."
            if self.number is not None
            else "Merge changes through a pull request."
        )
        raise DlError(f"refusing to apply: {verdict.why} {todo}")

    def post_outcome(self, report: ApplyReport, *, ok: bool, log: Log) -> CommentResult | None:
        """The apply's outcome on the merged pull request's comment (nothing without a pull request)."""
        if self.number is None:
            return None
        parts = apply_comment_parts(
            replace(report, manifest=self.label, commit=report.commit or self.sha), ok=ok
        )
        planned = f"Applied commit {self.sha}, the merge of this pull request."
        parts = complete_parts(replace(parts, planned=planned), manifest=self.label, env=self.env)
        try:
            posted = post_parts(parts, env=self.env, number=self.number, client=self.client)
        except DlError as error:
            log(f"The pull request could not be told the outcome: {error}")
            return None
        log(f"Pull request #{self.number} comment {posted.action}: {posted.url}")
        return posted


def manifest_directory(manifest_path: str) -> Path:
    """Where the manifest lives (git is asked there); the current directory for a bare name."""
    parent = Path(manifest_path).parent
    return parent if str(parent) not in ("", ".") and parent.is_dir() else Path.cwd()
