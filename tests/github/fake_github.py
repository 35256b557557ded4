"""A stand-in for GitHub's REST API on 127.0.0.1, recording every request.

It serves the issue-comment endpoints ``dl`` uses, the way GitHub documents them:

- ``GET  {root}/repos/{owner}/{repo}/issues/{number}/comments?per_page=N&page=P``: oldest first, pages
  linked with a ``Link`` header (``rel="next"``, ``rel="last"``, ...), absolute URLs; ``per_page`` is capped
  at 100 (GitHub's maximum) or at ``max_per_page`` to force paging in tests.
- ``POST {root}/repos/{owner}/{repo}/issues/{number}/comments`` -> 201 and the comment.
- ``PATCH {root}/repos/{owner}/{repo}/issues/comments/{id}`` -> 200 and the comment, whoever wrote it (a
  token with enough rights may edit others' comments; the tests check that dl never tries). New comments are
  written by ``login`` (``github-actions[bot]``, as for GITHUB_TOKEN).
- ``GET  {root}/repos/{owner}/{repo}/commits/{sha}/pulls`` -> the pull requests holding the commit (set with
  ``add_pull(..., commits=[sha])``), paged like the comments.
- ``GET  {root}/repos/{owner}/{repo}/pulls/{number}`` -> the pull request (404 when unknown).
- A bearer token other than ``token`` -> 401 ``Bad credentials``; bodies over 65,536 characters -> 422
  ``Validation Failed`` like GitHub; ``fail_next(...)`` makes the next matching call fail with a status and
  message of your choice.

``root`` may carry a path (``/api/v3``) as on GitHub Enterprise Server. Use it as a context manager or
through the ``fake_github`` fixture in ``tests/github/conftest.py``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

MAX_BODY = 65_536
# The pull request the ``github_env`` fixture runs on.
PR_NUMBER = 7
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
REPOSITORY = "octo/data"


def pull_request_event(number: int = PR_NUMBER, head_repo: str = REPOSITORY) -> dict:
    """The parts of a ``pull_request`` webhook payload that dl reads."""
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": HEAD_SHA, "repo": {"full_name": head_repo}},
            "base": {"sha": "f" * 40, "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY},
    }


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str  # without the API root and the query
    query: dict[str, str]
    headers: dict[str, str]
    body: dict | None


@dataclass
class FakeGitHub:
    """The fake API's state: comments per issue, recorded requests, and failures to inject."""

    token: str = "test-token"
    root: str = ""  # path prefix, e.g. "/api/v3"
    max_per_page: int = 100
    login: str = "github-actions[bot]"  # who the token posts as
    comments: dict[int, list[dict]] = field(default_factory=dict)
    pulls: dict[int, dict] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[tuple[str, int, str]] = field(default_factory=list)
    _next_id: int = 1000
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- lifecycle ---

    def start(self) -> FakeGitHub:
        """Listen on an ephemeral port of 127.0.0.1 in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The value for GITHUB_API_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.root}"

    # --- test helpers ---

    def add_comment(self, number: int, body: str, login: str = "someone") -> dict:
        """Put a comment on issue/PR ``number`` as if someone had posted it."""
        with self._lock:
            return self._create(number, body, login)

    def add_pull(
        self,
        number: int,
        *,
        head: str = HEAD_SHA,
        merge_commit: str | None = None,
        commits: tuple[str, ...] = (),
    ) -> dict:
        """A pull request; ``merge_commit`` makes it merged (as that commit); ``commits`` lists the commits
        that ``GET /commits/{sha}/pulls`` finds it by (its merge commit is always one)."""
        pull = {
            "number": number,
            "state": "closed" if merge_commit else "open",
            "head": {"sha": head, "repo": {"full_name": REPOSITORY}},
            "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
            "merged_at": "2025-05-01T12:00:00Z" if merge_commit else None,
            "merge_commit_sha": merge_commit,
        }
        with self._lock:
            self.pulls[number] = pull
            for sha in {*commits, *([merge_commit] if merge_commit else [])}:
                self.commit_pulls.setdefault(sha, []).append(number)
        return pull

    def fail_next(self, method: str, status: int, message: str) -> None:
        """Make the next ``method`` request fail with ``status`` and GitHub-style ``message``."""
        self.failures.append((method, status, message))

    def writes(self) -> list[Recorded]:
        """The recorded POST/PATCH/DELETE requests."""
        return [r for r in self.requests if r.method != "GET"]

    def bodies(self, number: int) -> list[str]:
        """The bodies of the comments on ``number``, oldest first."""
        return [c["body"] for c in self.comments.get(number, [])]

    # --- behaviour ---

    def _create(self, number: int, body: str, login: str) -> dict:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
            "html_url": f"https://github.example/pull/{number}#issuecomment-{self._next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def handle(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, object]:
        """(status, extra headers, JSON body) for one request."""
        parts = urlsplit(url)
        path = parts.path[len(self.root) :] if parts.path.startswith(self.root) else parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Recorded(method, path, query, headers, body))
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com"}
            for index, (fail_method, status, message) in enumerate(self.failures):
                if fail_method == method:
                    del self.failures[index]
                    return status, {}, {"message": message, "documentation_url": "https://docs.github.com"}
            return self._route(method, path, query, body)

    def _route(self, method, path, query, body):
        if m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", path):
            number = int(m.group(1))
            if method == "GET":
                return self._list(number, path, query)
            if method == "POST":
                return self._validated(body) or (
                    201,
                    {},
                    self._create(number, body["body"], self.login),
                )
        if (m := re.fullmatch(r"/repos/[^/]+/[^/]+/commits/([0-9a-f]+)/pulls", path)) and method == "GET":
            pulls = [self.pulls[n] for n in self.commit_pulls.get(m.group(1), [])]
            return self._paged(pulls, path, query)
        if (m := re.fullmatch(r"/repos/[^/]+/[^/]+/pulls/(\d+)", path)) and method == "GET":
            if pull := self.pulls.get(int(m.group(1))):
                return 200, {}, pull
        if (m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", path)) and method == "PATCH":
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(m.group(1)):
                    if error := self._validated(body):
                        return error
                    comment["body"] = body["body"]
                    return 200, {}, comment
        return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com"}

    def _validated(self, body):
        """GitHub's 422 for a missing or too long body, else None."""
        text = (body or {}).get("body")
        if not isinstance(text, str) or len(text) > MAX_BODY:
            return (
                422,
                {},
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "IssueComment",
                            "code": "custom",
                            "field": "body",
                            "message": "body is too long (maximum is 65536 characters)",
                        }
                    ],
                },
            )
        return None

    def _list(self, number, path, query):
        return self._paged(self.comments.get(number, []), path, query)

    def _paged(self, items, path, query):
        per_page = min(int(query.get("per_page", 30)), self.max_per_page)
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        links = []
        base = f"{self.api_url}{path}"

        def link(p, rel):
            return f'<{base}?{urlencode({"per_page": query.get("per_page", 30), "page": p})}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, headers, items[(page - 1) * per_page : page * per_page]


def _handler_for(fake: FakeGitHub):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = fake.handle(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args):  # keep test output quiet
            pass

    return Handler
