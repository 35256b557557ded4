"""What this run is about, read from the standard Actions environment and the git checkout.

Pure reading, no API calls, so it works inside and outside the Action and on GitHub Enterprise Server:

- ``GITHUB_EVENT_PATH`` / ``GITHUB_EVENT_NAME``: the pull request (``pull_request``, ``pull_request_target``
  and ``issue_comment`` on a pull request), its head commit, and whether it comes from a fork.
- ``GITHUB_REPOSITORY``, ``GITHUB_SERVER_URL``, ``GITHUB_RUN_ID``: the repository and the web address of
  this run (where its job summary is).
- the git checkout: what was planned is named from what was checked out (``git cat-file commit HEAD``, which
  also works in a shallow clone): on ``pull_request`` GitHub checks out a test merge commit whose parents are
  the base and the pull request's head.

``complete_parts`` fills a comment's manifest key, commit and time in from all this. The REST calls are in
``dl.github.client``, the files Actions reads back (outputs, job summary) in ``dl.github.outputs``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from dl.errors import DlError
from dl.render.comment import PLAN, REVIEW, CommentParts

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
ONLY_IN_ACTIONS = (
    "--comment posts the plan on the pull request, so it works only inside GitHub Actions "
    "(GITHUB_REPOSITORY is not set here); without --comment the plan is printed"
)


# --- the event ------------------------------------------------------------------------------------------


def load_event(env: Mapping[str, str] = os.environ) -> dict:
    """The webhook payload of the running workflow (``GITHUB_EVENT_PATH``); {} outside Actions."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DlError(f"cannot read the GitHub event file {path}: {exc}") from exc


def pull_request_number(env: Mapping[str, str] = os.environ, event: Mapping | None = None) -> int:
    """The number of the pull request this run is about, or a DlError saying why there is none."""
    event = load_event(env) if event is None else event
    name = env.get("GITHUB_EVENT_NAME", "")
    pull = event.get("pull_request")
    if isinstance(pull, Mapping) and isinstance(pull.get("number"), int):
        return pull["number"]
    issue = event.get("issue")
    if isinstance(issue, Mapping) and issue.get("pull_request") and isinstance(issue.get("number"), int):
        return issue["number"]
    where = f"a {name!r} event" if name else "no GitHub event (GITHUB_EVENT_PATH is not set)"
    raise DlError(
        f"cannot comment: this run has {where}, not a pull request. "
        "Comments are posted on pull_request events (or issue_comment events on a pull request)."
    )


def head_commit(env: Mapping[str, str] = os.environ, event: Mapping | None = None) -> str | None:
    """The commit a plan is for: the pull request's head (not the merge commit), else GITHUB_SHA."""
    return event_head(env, event) or env.get("GITHUB_SHA") or None


def is_fork_pull_request(env: Mapping[str, str] = os.environ, event: Mapping | None = None) -> bool:
    """True when the pull request's head lives in another repository (a fork)."""
    event = load_event(env) if event is None else event
    pull = event.get("pull_request")
    if not isinstance(pull, Mapping):
        return False
    head_repo = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
    base_repo = ((pull.get("base") or {}).get("repo") or {}).get("full_name") or env.get("GITHUB_REPOSITORY")
    return bool(head_repo and base_repo and head_repo != base_repo)


def explain_missing_credentials(env: Mapping[str, str] = os.environ) -> str:
    """Why a run has no AWS credentials, in words for the comment (plain text)."""
    if is_fork_pull_request(env):
        return (
            "This pull request comes from a fork. GitHub gives workflows run for pull requests from forks "
            "neither secrets nor an OIDC token, so the workflow could not assume the AWS role. "
            "A maintainer can run the plan from a branch of this repository instead."
        )
    if env.get("GITHUB_ACTIONS") == "true":
        return (
            "The job has no AWS credentials. Check that the job has `permissions: id-token: write` and a "
            "step `aws-actions/configure-aws-credentials` with a `role-to-assume` whose trust policy "
            "admits this repository and this event."
        )
    return "No AWS credentials were found (environment, shared config or profile)."


def manifest_key(manifest: str | os.PathLike, env: Mapping[str, str] = os.environ) -> str:
    """The manifest path as the comment marker records it, with / separators.

    A relative path is taken as given (``dl`` passes it relative to the repository root); an absolute one
    is made relative to ``GITHUB_WORKSPACE`` (else the current directory) when it lies inside it. So
    manifests in two folders of one repository get two comments.
    """
    path = Path(manifest)
    if not path.is_absolute():
        return path.as_posix()
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    try:
        return path.resolve().relative_to(workspace).as_posix()
    except ValueError:
        return path.as_posix()


def repository_of(env: Mapping[str, str] = os.environ) -> str:
    """OWNER/NAME from GITHUB_REPOSITORY, or a DlError."""
    repository = env.get("GITHUB_REPOSITORY", "")
    if not repository:
        raise DlError(ONLY_IN_ACTIONS)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise DlError(f"cannot comment: GITHUB_REPOSITORY should be OWNER/NAME, got {repository!r}")
    return repository


def run_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The web address of this workflow run (where its job summary is), None outside Actions."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not (repo and run_id):
        return None
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    return f"{server}/{repo}/actions/runs/{run_id}" + (f"/attempts/{attempt}" if attempt else "")


def runs_prefix(env: Mapping[str, str] = os.environ) -> str | None:
    """The start of every workflow run's web address in this repository, None without GITHUB_REPOSITORY."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo = env.get("GITHUB_REPOSITORY")
    return f"{server}/{repo}/actions/runs/" if repo else None


# --- the checkout: what was planned -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """What was checked out: HEAD and its parents (GitHub's test merge of a pull request has two: the base
    and the pull request's head). ``commit`` is None outside a git checkout."""

    commit: str | None
    parents: tuple[str, ...] = ()

    @property
    def merge(self) -> tuple[str, str] | None:
        """(base, head) when HEAD is a merge of two commits, else None."""
        return (self.parents[0], self.parents[1]) if len(self.parents) == 2 else None

    def holds(self, sha: str) -> bool:
        """True when ``sha`` is what was checked out, or the head merged into it."""
        return bool(sha) and (sha == self.commit or (self.merge is not None and self.merge[1] == sha))


def read_checkout(directory: str | os.PathLike) -> Checkout:
    """HEAD of the git checkout holding ``directory`` and its parents, from the commit object itself (a
    shallow clone of depth 1 still records its parents there, though ``HEAD^2`` cannot be resolved)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    head = (git("rev-parse", "--verify", "HEAD") or "").strip()
    if not re.fullmatch(r"[0-9a-f]{40,64}", head):
        return Checkout(None)
    raw = git("cat-file", "commit", head) or ""
    header = raw.split("\n\n", 1)[0]
    parents = tuple(line.split()[1] for line in header.splitlines() if line.startswith("parent "))
    return Checkout(head, parents)


def event_head(env: Mapping[str, str] = os.environ, event: Mapping | None = None) -> str | None:
    """The pull request's head commit as the event names it (None when the event does not say)."""
    event = load_event(env) if event is None else event
    pull = event.get("pull_request")
    if isinstance(pull, Mapping):
        sha = (pull.get("head") or {}).get("sha")
        if isinstance(sha, str) and sha:
            return sha
    return None


def planned_line(
    checkout: Checkout, env: Mapping[str, str] = os.environ, event: Mapping | None = None
) -> str:
    """Markdown naming what a plan was made from: on ``pull_request``, the pull request's head and the base
    it was merged onto, read from the checked-out merge commit."""
    if checkout.commit is None:
        return "Planned the working directory: it is not a git checkout, so no commit can be named."
    name = env.get("GITHUB_EVENT_NAME", "")
    named = event_head(env, event)
    if checkout.merge and (name in PULL_REQUEST_EVENTS or (named and checkout.merge[1] == named)):
        base, head = checkout.merge
        line = f"Planned the pull request's head {head} merged onto {base} (merge commit {checkout.commit})."
    else:
        line = f"Planned commit {checkout.commit}."
    if named and not checkout.holds(named):
        line += f" The event named the pull request's head {named}: that is not what was planned."
    return line


def planned_commit(checkout: Checkout) -> str | None:
    """The commit a plan is about, for the footer: the merged head of a test merge, else HEAD."""
    return checkout.merge[1] if checkout.merge else checkout.commit


def comment_state(env: Mapping[str, str] = os.environ) -> str:
    """REVIEW for plans made on pull_request events (what apply accepts as reviewed), else PLAN."""
    return REVIEW if env.get("GITHUB_EVENT_NAME") == "pull_request" else PLAN


# --- a comment's parts, completed from the environment ----------------------------------------------------


def complete_parts(
    parts: CommentParts,
    *,
    manifest: str | os.PathLike | None = None,
    env: Mapping[str, str] = os.environ,
    now: datetime | None = None,
) -> CommentParts:
    """``parts`` with manifest key, commit and timestamp filled in from the environment where missing."""
    return replace(
        parts,
        manifest=manifest_key(manifest if manifest is not None else parts.manifest, env),
        commit=parts.commit or head_commit(env),
        timestamp=parts.timestamp or format_time(now or datetime.now(UTC)),
    )


def format_time(moment: datetime) -> str:
    """'2025-05-01 12:00 UTC' (the footer's format)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
