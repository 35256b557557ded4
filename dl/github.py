"""GitHub at the edge: the pull request from the event, the sticky plan comment, job summary and outputs.

Everything comes from the standard Actions environment, so it works inside and outside the Action and on
GitHub Enterprise Server:

- ``GITHUB_EVENT_PATH`` / ``GITHUB_EVENT_NAME``: the pull request (``pull_request``, ``pull_request_target``
  and ``issue_comment`` on a pull request), its head commit, and whether it comes from a fork.
- ``GITHUB_API_URL`` (default ``https://api.github.com``), ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``.
- ``GITHUB_STEP_SUMMARY`` and ``GITHUB_OUTPUT``: files that are appended to when set.

The REST calls use urllib. Comments are listed with ``per_page=100`` following every ``Link: rel="next"``;
the one whose first line is our marker for the manifest is updated in place (``PATCH``), or created
(``POST``) when there is none; nothing is written when its digest shows the plan is unchanged.
Any failed call raises ``DlError`` with the method, the status and GitHub's message; the token is never
shown.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dl import __version__
from dl.comment import (
    ApplyReport,
    CommentParts,
    compose_apply_summary,
    compose_comment,
    compose_job_summary,
    parse_marker,
)
from dl.errors import DlError
from dl.markdown import safe_link

DEFAULT_API_URL = "https://api.github.com"
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
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


def find_comment(client: GitHubClient, repository: str, number: int, manifest: str) -> dict | None:
    """Our comment for ``manifest`` on issue/PR ``number``: the oldest whose first line is our marker."""
    path = f"repos/{repository}/issues/{number}/comments?per_page=100"
    for comment in client.paginate(path):
        parsed = parse_marker(comment.get("body") or "")
        if parsed and parsed[0] == manifest:
            return comment
    return None


def publish_comment(
    body: str,
    *,
    manifest: str,
    env: Mapping[str, str] = os.environ,
    number: int | None = None,
    client: GitHubClient | None = None,
) -> CommentResult:
    """Create or update the one comment for ``manifest`` on the pull request; no write when unchanged.

    ``body`` must start with ``dl.comment.marker(manifest, digest)`` (``compose_comment`` does this). The
    existing comment counts as unchanged when its marker carries the same digest.
    """
    parsed = parse_marker(body)
    if not parsed or parsed[0] != manifest:
        raise ValueError("the comment body must start with the marker for this manifest")
    repository = _repository(env)
    client = client or GitHubClient.from_env(env)
    number = pull_request_number(env) if number is None else number
    existing = find_comment(client, repository, number, manifest)
    if existing is None:
        resp = client.request("POST", f"repos/{repository}/issues/{number}/comments", {"body": body})
        return _result("created", resp.data)
    if parse_marker(existing.get("body") or "") == parsed:
        return _result("unchanged", existing)
    resp = client.request("PATCH", f"repos/{repository}/issues/comments/{existing['id']}", {"body": body})
    return _result("updated", resp.data)


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
    hint = "The full plan is in the job summary"
    url = run_url(env)
    hint = f"The full plan is in the {safe_link('job summary of this run', url)}." if url else hint + "."
    body = compose_comment(parts, full_plan_hint=hint)
    return publish_comment(body, manifest=parts.manifest, env=env)


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
    """Append Markdown to this step's job summary (``GITHUB_STEP_SUMMARY``); False when not in Actions."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
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
