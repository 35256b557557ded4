"""What a step hands back to GitHub Actions: step outputs, annotations and the job summary.

- ``GITHUB_OUTPUT``: step outputs, multi-line safe (``write_outputs``).
- ``GITHUB_STEP_SUMMARY``: the job summary of the plan or the apply, appended to and cut to the 1 MiB GitHub
  keeps for a step (``write_step_summary``, ``write_plan_summary``, ``write_apply_summary``).
- workflow commands on stdout: a located manifest problem as ``::error file=...,line=...`` (``annotation``).

Each is a no-op (False) outside Actions, where those files are not named.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from dl.errors import DlError, Problem
from dl.github.events import complete_parts, format_time
from dl.render.comment import (
    STEP_SUMMARY_LIMIT,
    ApplyReport,
    CommentParts,
    compose_apply_summary,
    compose_job_summary,
    fit_step_summary,
)

# --- annotations -------------------------------------------------------------------------------------------


def annotation(problem: Problem, env: Mapping[str, str] = os.environ) -> str:
    """A located problem as a workflow command, ``::error file=...,line=...,col=...::message``, so GitHub
    shows it on the line of the manifest (the file relative to the workspace, as annotations need)."""
    path = Path(problem.file)
    if not path.is_absolute():
        path = Path.cwd() / path
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    try:
        file = path.resolve().relative_to(workspace).as_posix()
    except ValueError:
        file = problem.file
    props = [f"file={_escape_property(file)}"]
    if problem.line:
        props.append(f"line={problem.line}")
        if problem.col:
            props.append(f"col={problem.col}")
    props.append("title=datasette-lambda")
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    return f"::error {','.join(props)}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# --- job summary and step outputs -----------------------------------------------------------------------


def write_step_summary(markdown: str, env: Mapping[str, str] = os.environ) -> bool:
    """Append Markdown to this step's job summary (``GITHUB_STEP_SUMMARY``); False when not in Actions.

    GitHub drops a step's whole summary when all its writes together exceed 1 MiB (the Action plans and
    applies in one step), so what is appended is cut to the room earlier writes left."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    try:
        used = os.path.getsize(path) if os.path.exists(path) else 0
        text = fit_step_summary(text, STEP_SUMMARY_LIMIT - used)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise DlError(f"cannot write the job summary {path}: {exc}") from exc
    return True


def write_plan_summary(parts: CommentParts, env: Mapping[str, str] = os.environ) -> bool:
    """The plan in the job summary, for ``dl plan`` without ``--comment`` (a no-op outside Actions)."""
    return write_step_summary(compose_job_summary(complete_parts(parts, env=env)), env)


def write_apply_summary(report: ApplyReport, env: Mapping[str, str] = os.environ) -> bool:
    """What ``dl apply`` changed and every public URL, in the job summary (a no-op outside Actions)."""
    report = replace(
        report,
        commit=report.commit or env.get("GITHUB_SHA") or None,
        timestamp=report.timestamp or format_time(datetime.now(UTC)),
    )
    return write_step_summary(compose_apply_summary(report), env)


def write_outputs(outputs: Mapping[str, str], env: Mapping[str, str] = os.environ) -> bool:
    """Set step outputs (``GITHUB_OUTPUT``), multi-line safe; False when not in Actions."""
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return False
    lines = []
    for name, value in outputs.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise ValueError(f"invalid output name {name!r}")
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(lines))
    except OSError as exc:
        raise DlError(f"cannot write step outputs to {path}: {exc}") from exc
    return True
