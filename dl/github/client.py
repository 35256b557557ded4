"""GitHub at the edge: the pull request from the event, the sticky plan comment, job summary and outputs.

Everything comes from the standard Actions environment, so it works inside and outside the Action and on
GitHub Enterprise Server:

- ``GITHUB_EVENT_PATH`` / ``GITHUB_EVENT_NAME``: the pull request (``pull_request``, ``pull_request_target``
  and ``issue_comment`` on a pull request), its head commit, and whether it comes from a fork.
- ``GITHUB_API_URL`` (default ``https://api.github.com``), ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``.
- ``GITHUB_STEP_SUMMARY`` and ``GITHUB_OUTPUT``: files that are appended to when set.

- the git checkout: what was planned is named from what was checked out (``git cat-file commit HEAD``, which
  also works in a shallow clone): on ``pull_request`` GitHub checks out a test merge commit whose parents are
  the base and the pull request's head.

The REST calls use urllib. Comments are listed with ``per_page=100`` following every ``Link: rel="next"``;
only comments written by the identity dl posts as count (``github-actions[bot]`` for ``GITHUB_TOKEN``, which
cannot ask ``GET /user`` who it is; ``DL_COMMENT_AUTHOR`` names a GitHub App's bot). The oldest of those
whose first line is our marker for the manifest is updated in place (``PATCH``), or one is created
(``POST``); a comment by anyone else is never edited, whatever it carries. Nothing is written when the whole
body is the same (apart from the footer's time). Any failed call raises ``DlError`` with the method, the
status and GitHub's message; the token is never shown.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dl import __version__
from dl.errors import DlError, Problem
from dl.render.comment import (
    DEFAULT_FULL_PLAN_HINT,
    PLAN,
    REVIEW,
    STEP_SUMMARY_LIMIT,
    ApplyReport,
    CommentParts,
    compose_apply_summary,
    compose_comment,
    compose_job_summary,
    fit_step_summary,
    footer_timestamp,
    parse_marker,
)
from dl.render.markdown import safe_link

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_AUTHOR = "github-actions[bot]"  # who GITHUB_TOKEN's comments are written by
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
# Events whose workflows check out the base branch unless told otherwise: dl refuses to comment a plan on them
# unless the pull request's head was checked out.
BASE_CHECKOUT_EVENTS = ("pull_request_target", "issue_comment")
_TIMEOUT = 30


@dataclass(frozen=True)
class CommentResult:
    """What ``publish_comment`` did: action is "created", "updated" or "unchanged"."""

    action: str
    comment_id: int
    url: str


@dataclass(frozen=True)
class Response:
    """A GitHub API response: status, headers (lower-case names) and the decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    data: Any


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
    event = load_event(env) if event is None else event
    pull = event.get("pull_request")
    if isinstance(pull, Mapping):
        sha = (pull.get("head") or {}).get("sha")
        if isinstance(sha, str) and sha:
            return sha
    return env.get("GITHUB_SHA") or None


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


def full_plan_hint(url: str) -> str:
    """What a shortened comment says about where the full plan is: the job summary of the run at ``url``."""
    return f"The full plan is in the {safe_link('job summary of this run', url)}."


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
        pull = client.request("GET", f"repos/{_repository(env)}/pulls/{number}").data
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


# --- the REST client ------------------------------------------------------------------------------------


class GitHubClient:
    """A small GitHub REST client over urllib: JSON in and out, errors as DlError."""

    def __init__(self, api_url: str, token: str, *, timeout: float = _TIMEOUT):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GitHubClient:
        """A client for GITHUB_API_URL authenticated with GITHUB_TOKEN."""
        token = env.get("GITHUB_TOKEN", "")
        if not token:
            raise DlError(
                "cannot comment: GITHUB_TOKEN is not set "
                "(in a workflow pass `env: GITHUB_TOKEN: ${{ github.token }}` to the step)."
            )
        return cls(env.get("GITHUB_API_URL") or DEFAULT_API_URL, token)

    def request(self, method: str, path_or_url: str, payload: Any = None) -> Response:
        """One API call; ``path_or_url`` is relative to the API root or an absolute URL (from Link headers)."""
        url = path_or_url if "://" in path_or_url else f"{self.api_url}/{path_or_url.lstrip('/')}"
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method, headers=self._headers(data is not None))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Response(resp.status, _lower(resp.headers), _decode(resp.read()))
        except urllib.error.HTTPError as exc:
            raise DlError(_http_error_message(method, url, exc)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DlError(f"GitHub API {method} {_strip_query(url)} failed: {reason}") from None

    def paginate(self, path: str) -> Iterator[Any]:
        """Every item of a list endpoint, following ``Link: <...>; rel="next"`` until the last page."""
        url: str | None = path
        while url:
            resp = self.request("GET", url)
            if not isinstance(resp.data, list):
                raise DlError(f"GitHub API GET {path}: expected a list, got {type(resp.data).__name__}")
            yield from resp.data
            url = next_link(resp.headers.get("link", ""))

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"datasette-lambda/{__version__}",
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers


def next_link(link_header: str) -> str | None:
    """The URL with rel="next" in an RFC 8288 ``Link`` header, None when there is no next page."""
    for part in link_header.split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)", part)
        if match and re.search(r'\brel\s*=\s*"?[^";]*\bnext\b', match.group(2)):
            return match.group(1)
    return None


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _http_error_message(method: str, url: str, exc: urllib.error.HTTPError) -> str:
    """'GitHub API POST <url> failed: 422 Unprocessable Entity: Validation Failed (body is too long)'."""
    body = _decode(exc.read() or b"")
    message = body.get("message", "") if isinstance(body, dict) else str(body or "")[:300]
    details = []
    if isinstance(body, dict):
        for err in body.get("errors") or []:
            details.append((err.get("message") or err.get("code", "")) if isinstance(err, dict) else str(err))
    text = f"GitHub API {method} {_strip_query(url)} failed: {exc.code} {exc.reason}"
    if message:
        text += f": {message}"
    if details:
        text += f" ({'; '.join(d for d in details if d)})"
    if exc.code in (401, 403, 404):
        text += (
            ". Check that GITHUB_TOKEN may write pull request comments "
            "(workflow `permissions: pull-requests: write`; pull requests from forks get a read-only token)"
        )
    return text


# --- the sticky comment ---------------------------------------------------------------------------------


def comment_author(env: Mapping[str, str] = os.environ) -> str:
    """The login dl's comments are written by: DL_COMMENT_AUTHOR (a GitHub App's bot), else
    ``github-actions[bot]`` (GITHUB_TOKEN, which cannot call ``GET /user`` to ask)."""
    return (env.get("DL_COMMENT_AUTHOR") or "").strip() or DEFAULT_AUTHOR


def is_ours(comment: Mapping, author: str) -> bool:
    """True when ``comment`` was written by ``author`` (logins compare case-insensitively, as on GitHub)."""
    login = ((comment.get("user") or {}).get("login") or "") if isinstance(comment, Mapping) else ""
    return login.lower() == author.lower()


def find_comment(
    client: GitHubClient, repository: str, number: int, manifest: str, author: str = DEFAULT_AUTHOR
) -> dict | None:
    """Our comment for ``manifest`` on issue/PR ``number``: the oldest by ``author`` whose first line is our
    marker. Comments by anyone else are ignored, whatever they carry."""
    path = f"repos/{repository}/issues/{number}/comments?per_page=100"
    for comment in client.paginate(path):
        if not is_ours(comment, author):
            continue
        parsed = parse_marker(comment.get("body") or "")
        if parsed and parsed.manifest == manifest:
            return comment
    return None


def publish_comment(
    body: str,
    *,
    manifest: str,
    env: Mapping[str, str] = os.environ,
    number: int | None = None,
    client: GitHubClient | None = None,
    same: Callable[[str], bool] | None = None,
) -> CommentResult:
    """Create or update dl's one comment for ``manifest`` on the pull request; no write when unchanged.

    ``body`` must start with ``dl.render.comment.marker(manifest, ...)`` (``compose_comment`` does this). The existing
    comment is unchanged when its whole body equals ``body``, or ``same(existing_body)`` says it is (the
    caller's way to ignore the footer's time)."""
    parsed = parse_marker(body)
    if not parsed or parsed.manifest != manifest:
        raise ValueError("the comment body must start with the marker for this manifest")
    repository = _repository(env)
    client = client or GitHubClient.from_env(env)
    number = pull_request_number(env) if number is None else number
    existing = find_comment(client, repository, number, manifest, comment_author(env))
    if existing is None:
        resp = client.request("POST", f"repos/{repository}/issues/{number}/comments", {"body": body})
        return _result("created", resp.data)
    old = existing.get("body") or ""
    if old == body or (same is not None and same(old)):
        return _result("unchanged", existing)
    resp = client.request("PATCH", f"repos/{repository}/issues/comments/{existing['id']}", {"body": body})
    return _result("updated", resp.data)


def read_comment(
    client: GitHubClient, repository: str, number: int, manifest: str, author: str
) -> tuple[dict, object] | None:
    """(comment, its Marker) of dl's own comment for ``manifest`` on ``number``, None when there is none."""
    comment = find_comment(client, repository, number, manifest, author)
    return (comment, parse_marker(comment.get("body") or "")) if comment else None


def post_parts(
    parts: CommentParts,
    *,
    env: Mapping[str, str] = os.environ,
    number: int | None = None,
    client: GitHubClient | None = None,
) -> CommentResult:
    """Compose ``parts`` as the comment body and publish it; a body that differs only in the footer's time
    from the one there is left alone."""
    url = run_url(env)
    hint = full_plan_hint(url) if url else DEFAULT_FULL_PLAN_HINT
    body = compose_comment(parts, full_plan_hint=hint)

    def same(old: str) -> bool:
        then = footer_timestamp(old)
        return (
            then is not None and compose_comment(replace(parts, timestamp=then), full_plan_hint=hint) == old
        )

    return publish_comment(body, manifest=parts.manifest, env=env, number=number, client=client, same=same)


def comment_on_pull_request(
    parts: CommentParts,
    *,
    manifest: str | os.PathLike | None = None,
    env: Mapping[str, str] = os.environ,
    now: datetime | None = None,
) -> CommentResult:
    """The one call for ``dl plan --comment``: job summary first (always), then the sticky comment.

    Fills in what ``parts`` leaves empty: the manifest key (relative to the workspace), the head commit of
    the pull request and the time. Raises DlError when the comment cannot be posted.
    """
    parts = complete_parts(parts, manifest=manifest, env=env, now=now)
    write_step_summary(compose_job_summary(parts), env)
    return post_parts(parts, env=env)


# --- pull requests of a pushed commit --------------------------------------------------------------------


def merged_pull_request(client: GitHubClient, repository: str, sha: str) -> dict | None:
    """The pull request merged as ``sha`` (``GET /repos/{owner}/{repo}/commits/{sha}/pulls``): one whose
    merge commit is ``sha``, else any merged one that holds it; None when the commit came without one."""
    pulls = [p for p in client.paginate(f"repos/{repository}/commits/{sha}/pulls?per_page=100")]
    merged = [p for p in pulls if isinstance(p, Mapping) and p.get("merged_at")]
    exact = [p for p in merged if p.get("merge_commit_sha") == sha]
    chosen = (exact or merged or [None])[0]
    return dict(chosen) if chosen is not None else None


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


ONLY_IN_ACTIONS = (
    "--comment posts the plan on the pull request, so it works only inside GitHub Actions "
    "(GITHUB_REPOSITORY is not set here); without --comment the plan is printed"
)


def repository_of(env: Mapping[str, str] = os.environ) -> str:
    """OWNER/NAME from GITHUB_REPOSITORY, or a DlError."""
    return _repository(env)


def _repository(env: Mapping[str, str]) -> str:
    repository = env.get("GITHUB_REPOSITORY", "")
    if not repository:
        raise DlError(ONLY_IN_ACTIONS)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise DlError(f"cannot comment: GITHUB_REPOSITORY should be OWNER/NAME, got {repository!r}")
    return repository


def _result(action: str, comment: Any) -> CommentResult:
    if not isinstance(comment, Mapping) or "id" not in comment:
        raise DlError(f"GitHub API: unexpected response when the comment was {action}: {comment!r:.200}")
    return CommentResult(action, int(comment["id"]), str(comment.get("html_url", "")))


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
