"""Markdown bodies for GitHub: the sticky plan comment and the job summaries of plan and apply.

Pure: every input arrives as an argument (including the time), nothing is read or written here;
``dl.github.client`` does the I/O. The plan renderer hands over already-rendered Markdown (``CommentParts``);
plain-text fields (titles, names, the manifest path) are escaped here with ``dl.render.markdown``.

A plan comment reads, top to bottom::

    <!-- datasette-lambda:plan manifest=datasette-lambda.yml state=review digest=... -->   hidden
    ### datasette-lambda plan for `datasette-lambda.yml`
    what was planned (the pull request's head and the base it was merged onto)
    summary (counts and callouts, from the renderer)
    > [!WARNING] instances planned for destroy
    <details> per instance
    > [!NOTE] only when shortened: where the full plan is
    footer: commit, time, tool version

The marker names the manifest (one comment per manifest), the body's *state* and, for bodies that show a plan,
the plan's digest (``dl.plan.model.review_digest``). Only ``state=review`` (a plan made on a ``pull_request`` event)
is what ``dl apply --require-reviewed-plan`` accepts as reviewed; every other state (a failed plan, a plan
apply refused as not reviewed, an apply's outcome) never counts, so re-running a job cannot approve itself.
The marker is only trusted on comments dl wrote itself (``dl.github.client`` checks the author).

When the whole body exceeds the limit, per-instance details are shortened (at line boundaries, code fences
closed) with a fair share of the room each, then dropped to a list of titles; the summary is never cut
unless it alone exceeds the limit.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dl import __version__
from dl.render.markdown import (
    code_block,
    code_span,
    cut_markdown,
    escape_html,
    escape_markdown,
    safe_link,
    text_length,
    utf8_length,
)

COMMENT_LIMIT = 65_536  # characters: GitHub refuses longer issue comment bodies
STEP_SUMMARY_LIMIT = 1_048_576  # bytes: GitHub refuses a larger job summary for a step
MARKER_TAG = "datasette-lambda:plan"
DEFAULT_FULL_PLAN_HINT = "The full plan is in this workflow run's job summary."
# The states of a comment body (the marker's ``state=``).
REVIEW = "review"  # a plan made on a pull_request event: what a reviewer approves by merging
PLAN = "plan"  # a plan made on another event (pull_request_target, issue_comment): shown, never "reviewed"
FAILED = "failed"  # the plan could not be made: the body says why
NOT_REVIEWED = "not-reviewed"  # apply refused: the plan made after the merge differs from the reviewed one
APPLIED = "applied"  # the apply's outcome after merge
APPLY_FAILED = "apply-failed"  # the apply failed or was refused after merge
STATES = (REVIEW, PLAN, FAILED, NOT_REVIEWED, APPLIED, APPLY_FAILED)
_MARKER_RE = re.compile(
    rf"^<!-- {re.escape(MARKER_TAG)} manifest=(\S+)(?: state=([a-z-]+))? digest=([0-9a-f]*) -->"
)
_FOOTER_TIME_RE = re.compile(r"<sub>(?:[^<]*? · )?(\d{4}\\-\d\d\\-\d\d \d\d\\:\d\d UTC) · ")
_FOOTER_COMMIT_RE = re.compile(r"<sub>Commit ([0-9a-f]{7,40}) · ")
_SHORTENED_PREFIX = "This comment was shortened to fit GitHub's size limit. "
_SHORTENED_HINT_RE = re.compile(rf"^> {re.escape(_SHORTENED_PREFIX)}(.*)$", re.M)
_MIN_DETAIL = 400  # below this many characters a shortened section shows no details at all
_SHORTENED = "*Shortened to fit GitHub's comment size limit.*"
_OMITTED = "*Details omitted to fit GitHub's comment size limit.*"


@dataclass(frozen=True)
class CommentParts:
    """A plan as the renderer hands it over.

    summary: Markdown, already escaped, e.g. "Plan: 1 to create, 2 to update, 0 to destroy." and callouts.
    sections: (title, body) per instance; title is plain text (escaped here), body is escaped Markdown
        without raw HTML blocks (it goes inside ``<details>``).
    destroys: names (plain text) of the instances planned for destroy: shown in a warning callout.
    manifest: the manifest path relative to the repository root (plain text); one comment per manifest.
    commit: the commit the plan was made for (shown in the footer), None when unknown.
    timestamp: when the plan was made, as shown in the footer (e.g. "2025-05-01 12:00 UTC").
    title: the heading's word, e.g. "plan" or "drift check".
    planned: Markdown line naming what was planned (head and base commits), shown under the heading.
    state: what the body is (``REVIEW``, ``PLAN``, ``FAILED``, ...), recorded in the marker.
    digest: the plan's review digest (``dl.plan.model.review_digest``) for bodies that show a plan, else "".
    """

    summary: str
    sections: tuple[tuple[str, str], ...] = ()
    destroys: tuple[str, ...] = ()
    manifest: str = "datasette-lambda.yml"
    commit: str | None = None
    timestamp: str = ""
    title: str = "plan"
    planned: str = ""
    state: str = REVIEW
    digest: str = ""


@dataclass(frozen=True)
class Marker:
    """What a comment's hidden first line says: the manifest, the body's state and the plan digest."""

    manifest: str
    state: str
    digest: str


@dataclass(frozen=True)
class ApplyReport:
    """What an apply did, for the job summary.

    summary: Markdown one-liner, e.g. "Apply complete: 1 created, 1 updated, 0 destroyed."
    changes: (instance, change) pairs in plain text, e.g. ("northwind", "updated: 2 databases").
    urls: (instance, public URL) for every instance of the manifest.
    sections: optional (title, Markdown body) details per instance, as in ``CommentParts``.
    """

    summary: str
    changes: tuple[tuple[str, str], ...] = ()
    urls: tuple[tuple[str, str], ...] = ()
    manifest: str = "datasette-lambda.yml"
    commit: str | None = None
    timestamp: str = ""
    sections: tuple[tuple[str, str], ...] = ()


def marker(manifest: str, state: str = REVIEW, digest: str = "") -> str:
    """The hidden first line identifying the comment of one manifest (the path is URL-quoted: no ``-->``)."""
    if state not in STATES or not re.fullmatch(r"[0-9a-f]*", digest):
        raise ValueError(f"bad marker state {state!r} or digest {digest!r}")
    quoted = urllib.parse.quote(manifest, safe="/")
    return f"<!-- {MARKER_TAG} manifest={quoted} state={state} digest={digest} -->"


def parse_marker(body: str) -> Marker | None:
    """The marker of a comment body that starts with ours; None for any other comment.

    A marker of an older dl without ``state=`` parses with state "" (never reviewed)."""
    match = _MARKER_RE.match(body or "")
    if not match:
        return None
    return Marker(urllib.parse.unquote(match.group(1)), match.group(2) or "", match.group(3))


def footer_timestamp(body: str) -> str | None:
    """The time shown in a body's footer ("2025-05-01 12:00 UTC"), None when it has none."""
    match = _FOOTER_TIME_RE.search(body or "")
    return match.group(1).replace("\\", "") if match else None


def footer_commit(body: str) -> str | None:
    """The commit named in a body's footer ("Commit <sha>"), None when it names none."""
    match = _FOOTER_COMMIT_RE.search(body or "")
    return match.group(1) if match else None


def shortened_hint(body: str) -> str | None:
    """Where a shortened body says the full plan is (the hint ``compose_comment`` was given), else None."""
    match = _SHORTENED_HINT_RE.search(body or "")
    return match.group(1) if match else None


def compose_comment(
    parts: CommentParts,
    *,
    limit: int = COMMENT_LIMIT,
    full_plan_hint: str = DEFAULT_FULL_PLAN_HINT,
    measure: Callable[[str], int] = text_length,
    with_marker: bool = True,
) -> str:
    """The comment body for ``parts``, at most ``limit`` long as counted by ``measure``.

    ``full_plan_hint`` (Markdown) says where the full plan is; it is shown only when details were shortened.
    """
    head = _head(parts, with_marker)
    foot = _footer(parts.commit, parts.timestamp)
    full = _join([*head, *(_details(t, b) for t, b in parts.sections), foot])
    if measure(full) <= limit:
        return full
    note = _note(full_plan_hint)
    for candidate in (
        _with_short_details(head, parts.sections, note, foot, limit, measure),
        _with_title_list(head, parts.sections, note, foot, limit, measure),
    ):
        if candidate is not None and measure(candidate) <= limit:
            return candidate
    return _summary_only(head, note, foot, limit, measure)


def compose_job_summary(parts: CommentParts, *, full_plan_hint: str | None = None) -> str:
    """The plan for the job summary: same layout as the comment, without the marker, up to 1 MiB."""
    hint = full_plan_hint or "The full plan is in the plan JSON file written by `dl plan --out`."
    return compose_comment(
        parts, limit=STEP_SUMMARY_LIMIT, full_plan_hint=hint, measure=utf8_length, with_marker=False
    )


def no_credentials_parts(
    reason: str, *, manifest: str, commit: str | None = None, timestamp: str = ""
) -> CommentParts:
    """Parts for a comment saying the plan could not be made, and why (``reason`` is plain text)."""
    summary = "\n".join(
        [
            "> [!CAUTION]",
            "> **The plan could not be made: no AWS credentials were available.**",
            f"> {escape_markdown(reason)}",
            ">",
            "> Nothing was compared with AWS, so this comment says nothing about what merging would change.",
        ]
    )
    return CommentParts(summary=summary, manifest=manifest, commit=commit, timestamp=timestamp, state=FAILED)


def failure_parts(
    headline: str,
    errors: Sequence[str],
    *,
    manifest: str,
    planned: str = "",
    commit: str | None = None,
    timestamp: str = "",
) -> CommentParts:
    """Parts for a plan that failed: the headline (plain text) and every error, located ones included
    (``file:line:col: path: message``), in a code block; any earlier plan in the comment is replaced."""
    summary = "\n".join(
        [
            "> [!CAUTION]",
            f"> **The plan failed: {escape_markdown(headline)}**",
            ">",
            "> No plan is shown: an earlier plan in this comment is no longer current. Fix what is below and "
            "push again.",
        ]
    )
    if errors:
        summary += "\n\n" + code_block("\n".join(errors))
    return CommentParts(
        summary=summary,
        manifest=manifest,
        planned=planned,
        commit=commit,
        timestamp=timestamp,
        state=FAILED,
    )


def not_reviewed_parts(plan_parts: CommentParts, why: str, *, commit: str | None) -> CommentParts:
    """The plan made after a merge, posted back to the pull request because apply refused it (``why`` is
    plain text). Its state is NOT_REVIEWED: it never counts as reviewed, so re-running apply cannot approve
    itself."""
    where = f" at commit {commit}" if commit else ""
    callout = "\n".join(
        [
            "> [!CAUTION]",
            f"> **Not applied: this plan was not reviewed.** {escape_markdown(why)}",
            ">",
            f"> Below is the plan made after the merge{escape_markdown(where)}. Re-run the pull request's plan "
            "and review it; then re-run this job.",
        ]
    )
    return replace(
        plan_parts,
        summary=callout + "\n\n" + plan_parts.summary,
        state=NOT_REVIEWED,
        title="plan after merge (not reviewed)",
        commit=commit,
    )


def apply_comment_parts(report: ApplyReport, *, ok: bool, digest: str = "") -> CommentParts:
    """The merged pull request's comment after apply: what changed (or failed) and the public URLs."""
    blocks = [report.summary]
    if report.changes:
        rows = [f"| {escape_markdown(name)} | {escape_markdown(change)} |" for name, change in report.changes]
        blocks.append("\n".join(["| Instance | Change |", "| --- | --- |", *rows]))
    if report.urls:
        rows = [f"| {escape_markdown(name)} | {safe_link(url, url)} |" for name, url in report.urls]
        blocks.append("\n".join(["| Instance | Public URL |", "| --- | --- |", *rows]))
    return CommentParts(
        summary="\n\n".join(blocks),
        sections=report.sections,
        manifest=report.manifest,
        commit=report.commit,
        timestamp=report.timestamp,
        title="apply",
        state=APPLIED if ok else APPLY_FAILED,
        digest=digest,
    )


def compose_apply_summary(report: ApplyReport, *, limit: int = STEP_SUMMARY_LIMIT) -> str:
    """The job summary after ``dl apply``: what changed, then every instance's public URL."""
    blocks = [f"### datasette-lambda apply for {code_span(report.manifest)}", report.summary]
    if report.changes:
        rows = [f"| {escape_markdown(name)} | {escape_markdown(change)} |" for name, change in report.changes]
        blocks.append("\n".join(["| Instance | Change |", "| --- | --- |", *rows]))
    else:
        blocks.append("Nothing changed.")
    if report.urls:
        rows = [f"| {escape_markdown(name)} | {safe_link(url, url)} |" for name, url in report.urls]
        blocks.append("\n".join(["| Instance | Public URL |", "| --- | --- |", *rows]))
    blocks.extend(_details(title, body) for title, body in report.sections)
    blocks.append(_footer(report.commit, report.timestamp))
    text = _join(blocks)
    if utf8_length(text) <= limit:
        return text
    return cut_markdown(text, limit - 200, utf8_length) + "\n\n" + _note("Details were cut at 1 MiB.")


def fit_step_summary(markdown: str, room: int) -> str:
    """``markdown`` cut (whole lines, code fences closed) to the ``room`` bytes a step's job summary has left
    after earlier writes: GitHub counts every write of a step together and drops the step's whole summary
    over 1 MiB. Nothing when too little room is left to say anything."""
    if utf8_length(markdown) <= room:
        return markdown
    note = "\n\n" + _note_text("Cut to fit GitHub's 1 MiB limit for a step's job summary.") + "\n"
    budget = room - utf8_length(note) - 16
    if budget < _MIN_DETAIL:
        return ""
    return cut_markdown(markdown, budget, utf8_length) + note


# --- building blocks ----------------------------------------------------------------------------------


def _head(parts: CommentParts, with_marker: bool) -> list[str]:
    """Marker, heading, summary and the destroy warning: the part that always survives."""
    heading = f"### datasette-lambda {escape_markdown(parts.title)} for {code_span(parts.manifest)}"
    if with_marker:
        heading = marker(parts.manifest, parts.state, parts.digest) + "\n" + heading
    blocks = [heading]
    if parts.planned:
        blocks.append(parts.planned)
    blocks.append(parts.summary.strip() or "*No summary.*")
    if parts.destroys:
        blocks.append(_destroy_warning(parts.destroys))
    return blocks


def _destroy_warning(names: Sequence[str]) -> str:
    """A GitHub warning callout naming every instance planned for destroy."""
    noun = "instance" if len(names) == 1 else "instances"
    listed = ", ".join(code_span(n) for n in names)
    return "\n".join(
        [
            "> [!WARNING]",
            f"> **This plan destroys {len(names)} {noun}:** {listed}.",
            "> Applying it deletes their stacks and stored databases; their URLs stop working."
            if len(names) != 1
            else "> Applying it deletes its stack and stored databases; its URL stops working.",
        ]
    )


def _details(title: str, body: str) -> str:
    """One collapsible section; the title is plain text, the body Markdown."""
    return f"<details><summary>{escape_html(title)}</summary>\n\n{body.strip()}\n\n</details>"


def _note(full_plan_hint: str) -> str:
    """The callout saying the comment was shortened and where the full plan is."""
    return _note_text(_SHORTENED_PREFIX + full_plan_hint)


def _note_text(text: str) -> str:
    """A GitHub note callout (``text`` is Markdown)."""
    return "\n".join(["> [!NOTE]", "> " + text])


def _footer(commit: str | None, timestamp: str) -> str:
    """Commit, time and tool version in small print."""
    items = []
    if commit:
        items.append(f"Commit {commit}" if re.fullmatch(r"[0-9a-f]{7,40}", commit) else code_span(commit))
    if timestamp:
        items.append(escape_markdown(timestamp))
    items.append(f"datasette-lambda {escape_markdown(__version__)}")
    return "<sub>" + " · ".join(items) + "</sub>"


def _join(blocks: Sequence[str]) -> str:
    """Blocks separated by blank lines, ending in a newline."""
    return "\n\n".join(blocks) + "\n"


def _with_short_details(head, sections, note, foot, limit, measure) -> str | None:
    """Every section kept, each body cut to a fair share of the room left (None when no room at all)."""
    if not sections:
        return None
    frame = measure(_join([*head, *(_details(t, "") for t, _ in sections), note, foot]))
    room = limit - frame
    if room < 0:
        return None
    budgets = _fair_shares([measure(b.strip()) for _, b in sections], room)
    bodies = [_shorten(b.strip(), budget, measure) for (_, b), budget in zip(sections, budgets, strict=True)]
    return _join([*head, *(_details(t, b) for (t, _), b in zip(sections, bodies, strict=True)), note, foot])


def _shorten(body: str, budget: int, measure: Callable[[str], int]) -> str:
    """``body`` when it fits ``budget``, else its first lines and a note, or only a note when room is scarce."""
    if measure(body) <= budget:
        return body
    room = budget - measure(_SHORTENED) - 2
    if room < _MIN_DETAIL:
        return _OMITTED
    return cut_markdown(body, room, measure) + "\n\n" + _SHORTENED


def _fair_shares(sizes: Sequence[int], room: int) -> list[int]:
    """Split ``room`` among items: small ones get all they need, the rest share what is left equally."""
    shares = [0] * len(sizes)
    left, pending = room, len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        share = left // pending
        shares[index] = min(sizes[index], share)
        left -= shares[index]
        pending -= 1
    return shares


def _with_title_list(head, sections, note, foot, limit, measure) -> str | None:
    """Sections reduced to a list of their titles, as many as fit (None when there are no sections)."""
    if not sections:
        return None
    frame = measure(_join([*head, "", note, foot]))
    lines: list[str] = []
    for index, (title, _) in enumerate(sections):
        rest = len(sections) - index - 1
        tail = f"\n- … and {rest} more" if rest else ""
        line = f"- {escape_markdown(title)}"
        if frame + measure("\n".join([*lines, line]) + tail) > limit:
            lines.append(f"- … and {len(sections) - index} more")
            break
        lines.append(line)
    return _join([*head, "\n".join(lines), note, foot])


def _summary_only(head, note, foot, limit, measure) -> str:
    """Last resort: the head cut to fit (only when the summary alone exceeds the limit)."""
    frame = measure(_join(["", note, foot]))
    kept = cut_markdown(_join(head).rstrip("\n"), max(0, limit - frame), measure)
    return _join([kept, note, foot])
