"""Renderings of a Plan: text for terminals, Markdown for pull requests and job summaries, JSON for scripts.

Pipeline position: manifest -> desired -> observed -> plan -> apply -> **render**. Pure functions of the plan
(Terraform's views): the same lines feed the text and Markdown forms. Everything from users and databases is
escaped where it lands: control characters never reach a terminal, and Markdown gets code blocks and
escaped HTML (dl/render/markdown.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dl.manifest.model import INSTANCE_DEFAULTS
from dl.plan.model import SCALARS, Action, Change, InstancePlan, Plan, review_digest
from dl.render.comment import CommentParts
from dl.render.markdown import code_block, code_span, escape_markdown

SYMBOL = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DESTROY: "-",
    Action.NOOP: " ",
}
COLOUR = {
    Action.CREATE: "32",
    Action.UPDATE: "33",
    Action.REPLACE: "35",
    Action.DESTROY: "31",
    Action.NOOP: "2",
}
# Always shown for a new instance (the shape of the deployment); every other setting is shown when it differs
# from its default (create_changes). The full list of attributes is in the JSON plan.
CREATE_SHOWN = (
    "prefix",
    "domain",
    "endpoint",
    "cdn",
    "runtime",
    "architecture",
    "memory",
    "plugins",
    "secrets",
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: Any) -> str:
    """A value as one safe line of text: control characters (terminal escapes, bidi overrides) made visible."""
    s = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, sort_keys=True)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else "\ufffd", s)


def value(v: Any) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return clean(v) if v else '""'
    return clean(v)


def change_line(c: Change) -> str:
    if c.note == "added" or c.before is None and c.after is not None:
        line = f"+ {clean(c.path)}: {value(c.after)}"
    elif c.note == "removed" or c.after is None:
        line = f"- {clean(c.path)}: {value(c.before)}"
    else:
        line = f"~ {clean(c.path)}: {value(c.before)} -> {value(c.after)}"
    if c.note and c.note not in ("added", "removed"):
        line += f"  ({clean(c.note)})"
    return line


def instance_lines(i: InstancePlan) -> list[str]:
    """The body of one instance's plan, plain text lines (no heading)."""
    lines: list[str] = []
    if i.reason:
        lines.append(f"# {clean(i.reason)}")
    if i.action is Action.DESTROY:
        lines.append("# the stack, its function, front door and logs are deleted")
        if i.protected:
            lines.append("! protected (protect: true): apply refuses to destroy it")
        lines += [f"! {clean(c)}" for c in i.consequences]  # e.g. the domain it releases, and to whom
        return lines
    if i.action is Action.CREATE:
        changes, nested = create_changes(i.changes)
        lines += [change_line(c) for c in changes]
        if nested:
            lines.append(
                f"+ metadata: {nested} more nested setting{'s' if nested != 1 else ''} "
                "(databases, tables; see the JSON plan)"
            )
    else:
        lines += [change_line(c) for c in i.changes]
    for db in i.databases:
        mark = {"add": "+", "remove": "-", "change": "~"}[db.action]
        lines.append(f"{mark} database {clean(db.name)}")
        lines += [f"    {clean(d)}" for d in db.details]
    lines += [f"! {clean(c)}" for c in i.consequences]
    return lines


def create_changes(changes: tuple[Change, ...]) -> tuple[list[Change], int]:
    """What a reviewer of a new instance must see: the deployment's shape (CREATE_SHOWN), the Datasette
    version, and every setting that differs from its default (cors, certificate, timeout, protect, log
    retention, each config key, each tag, top-level metadata such as title, license and source). Returns
    those and the number of nested metadata settings (per database or table) left to the JSON plan."""
    shown, nested = [], 0
    for c in changes:
        if c.path in CREATE_SHOWN:
            keep = c.after not in (None, [], {})
        elif c.path in SCALARS:
            keep = c.after != INSTANCE_DEFAULTS.get(c.path)
        elif c.path.startswith("metadata."):
            keep = c.path.count(".") == 1
            nested += not keep
        else:
            # "datasette" (the line) is a change of a create only when it is not the default line
            keep = c.path in ("versions.datasette", "datasette") or c.path.startswith(("config.", "tags."))
        if keep:
            shown.append(c)
    return shown, nested


def heading(i: InstancePlan) -> str:
    return f"{SYMBOL[i.action]} {clean(i.name)}: {i.action.value}"


def render_text(plan: Plan, *, colour: bool = False, show_unchanged: bool = False) -> str:
    """The plan for a terminal. Colour only when asked (the CLI asks on a TTY without NO_COLOR)."""

    def paint(text: str, action: Action) -> str:
        return f"\x1b[{COLOUR[action]}m{text}\x1b[0m" if colour else text

    out = [f"Project {clean(plan.project)} in {clean(plan.region)}"]
    if plan.preview is not None:
        out[0] += (
            f": previews of pull request #{plan.preview} (stacks {clean(plan.project)}--pr{plan.preview}--*)"
        )
    if plan.bootstrap is Action.CREATE:
        out.append(paint("+ artifact bucket (bootstrap stack): create", Action.CREATE))
    elif plan.bootstrap is Action.UPDATE:
        out.append(paint("~ bootstrap stack: upgrade (dl bootstrap)", Action.UPDATE))
    for i in plan.instances:
        if i.action is Action.NOOP and not show_unchanged:
            continue
        out.append("")
        out.append(paint(heading(i), i.action))
        out += [f"    {line}" for line in instance_lines(i)]
    for line in certificate_lines(plan):
        out.append("")
        out.append(paint(line, Action.DESTROY))
    unchanged = [i.name for i in plan.instances if i.action is Action.NOOP]
    if unchanged and not show_unchanged:
        out.append("")
        out.append(f"Unchanged: {', '.join(clean(n) for n in unchanged)}")
    out.append("")
    destroys = [i.name for i in plan.instances if i.action in (Action.DESTROY, Action.REPLACE)]
    if destroys:
        out.append(
            paint(
                f"WARNING: this plan destroys or replaces: {', '.join(map(clean, destroys))}", Action.DESTROY
            )
        )
    out.append(plan.summary())
    return "\n".join(out) + "\n"


def certificate_lines(plan: Plan) -> list[str]:
    """One line per orphaned certificate stack the apply removes (after the instances moved off it)."""
    return [
        f"- certificate stack {clean(c.stack_name)} ({clean(c.domain or 'no domain tag')}, us-east-1): "
        f"orphaned, removed after the instances: {clean(c.reason)}"
        for c in plan.certificates
    ]


def apply_refusals(plan: Plan, *, allow_destroy: bool = False) -> list[str]:
    """Markdown lines saying why ``dl apply`` will refuse this plan (before anything is merged): protected
    instances are never destroyed or replaced; the others need ``--allow-destroy``."""
    out = []
    protected = [i.name for i in plan.destructive() if i.protected]
    others = [i.name for i in plan.destructive() if not i.protected]
    if protected:
        out.append(
            "The apply will refuse this plan: "
            + ", ".join(code_span(n) for n in protected)
            + " (protect: true) is never destroyed or replaced. Remove `protect: true` first, in its own "
            "pull request."
        )
    if others and not allow_destroy:
        out.append(
            "The apply will refuse this plan: it destroys or replaces "
            + ", ".join(code_span(n) for n in others)
            + ", which needs `allow-destroy: true` on the apply job (`dl apply --allow-destroy`)."
        )
    return out


def comment_parts(
    plan: Plan,
    *,
    manifest: str = "",
    commit: str | None = None,
    timestamp: str = "",
    allow_destroy: bool = False,
) -> CommentParts:
    """The plan as parts for the PR comment and job summary (dl/render/comment.py composes and shortens them).

    ``allow_destroy``: whether the apply will run with ``--allow-destroy`` (only changes what the plan says
    about the apply refusing)."""
    sections = []
    for i in plan.instances:
        if i.action is Action.NOOP:
            continue
        body = code_block("\n".join(instance_lines(i)) or "(no attribute changes)", "diff")
        sections.append((f"{SYMBOL[i.action]} {i.name}: {i.action.value}", body))
    summary = f"**{escape_markdown(plan.summary())}**"
    if plan.bootstrap is Action.CREATE:
        summary += "\n\nThe project's artifact bucket (bootstrap stack) is created first."
    elif plan.bootstrap is Action.UPDATE:
        summary += "\n\nThe project's bootstrap stack is upgraded first (`dl bootstrap`)."
    if plan.certificates:
        summary += "\n\n" + code_block("\n".join(certificate_lines(plan)), "diff")
    unchanged = [i.name for i in plan.instances if i.action is Action.NOOP]
    if unchanged:
        summary += "\n\nUnchanged: " + ", ".join(escape_markdown(n) for n in unchanged)
    refusals = apply_refusals(plan, allow_destroy=allow_destroy)
    if refusals:
        summary += "\n\n" + "\n".join(["> [!CAUTION]", *(f"> {line}" for line in refusals)])
    destroys = tuple(i.name for i in plan.instances if i.action in (Action.DESTROY, Action.REPLACE))
    return CommentParts(
        summary=summary,
        sections=tuple(sections),
        destroys=destroys,
        manifest=manifest or plan.manifest or "datasette-lambda.yml",
        commit=commit,
        timestamp=timestamp,
        digest=review_digest(plan),
    )


def render_markdown(plan: Plan, **kwargs) -> str:
    """The whole plan as Markdown (what the job summary shows)."""
    from dl.render.comment import compose_job_summary

    return compose_job_summary(comment_parts(plan, **kwargs))


def render_json(plan: Plan) -> str:
    """The versioned JSON form (docs/manifest.md, "Plan JSON")."""
    return plan.dumps()
