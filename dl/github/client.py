"""GitHub's REST API at the edge: a small client, and the sticky plan comment on the pull request.

The REST calls use urllib against ``GITHUB_API_URL`` (default ``https://api.github.com``) with
``GITHUB_TOKEN``. Comments are listed with ``per_page=100`` following every ``Link: rel="next"``;
only comments written by the identity dl posts as count (``github-actions[bot]`` for ``GITHUB_TOKEN``, which
cannot ask ``GET /user`` who it is; ``DL_COMMENT_AUTHOR`` names a GitHub App's bot). The oldest of those
whose first line is our marker for the manifest is updated in place (``PATCH``), or one is created
(``POST``); a comment by anyone else is never edited, whatever it carries. Nothing is written when the whole
body is the same (apart from the footer's time). Any failed call raises ``DlError`` with the method, the
status and GitHub's message; the token is never shown.

What the run is about (event, pull request, checkout) is read in ``dl.github.events``; step outputs,
annotations and the job summary are written in ``dl.github.outputs``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dl import __version__
from dl.errors import DlError
from dl.github.events import complete_parts, pull_request_number, repository_of, run_url
from dl.github.outputs import write_step_summary
from dl.render.comment import (
    DEFAULT_FULL_PLAN_HINT,
    CommentParts,
    compose_comment,
    compose_job_summary,
    footer_timestamp,
    parse_marker,
)
from dl.render.markdown import safe_link

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_AUTHOR = "github-actions[bot]"  # who GITHUB_TOKEN's comments are written by
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
    repository = repository_of(env)
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


def full_plan_hint(url: str) -> str:
    """What a shortened comment says about where the full plan is: the job summary of the run at ``url``."""
    return f"The full plan is in the {safe_link('job summary of this run', url)}."


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


def _result(action: str, comment: Any) -> CommentResult:
    if not isinstance(comment, Mapping) or "id" not in comment:
        raise DlError(f"GitHub API: unexpected response when the comment was {action}: {comment!r:.200}")
    return CommentResult(action, int(comment["id"]), str(comment.get("html_url", "")))


# --- pull requests of a pushed commit --------------------------------------------------------------------


def merged_pull_request(client: GitHubClient, repository: str, sha: str) -> dict | None:
    """The pull request merged as ``sha`` (``GET /repos/{owner}/{repo}/commits/{sha}/pulls``): one whose
    merge commit is ``sha``, else any merged one that holds it; None when the commit came without one."""
    pulls = [p for p in client.paginate(f"repos/{repository}/commits/{sha}/pulls?per_page=100")]
    merged = [p for p in pulls if isinstance(p, Mapping) and p.get("merged_at")]
    exact = [p for p in merged if p.get("merge_commit_sha") == sha]
    chosen = (exact or merged or [None])[0]
    return dict(chosen) if chosen is not None else None
