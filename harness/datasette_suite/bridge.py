"""A pytest plugin that sends every request of Datasette's own test suite through dl's Lambda handler.

Datasette's tests reach Datasette through ``datasette.app.DatasetteClient`` (``ds.client``, and the sync
``TestClient`` of its fixtures, which calls it): its ``app`` is the ASGI app behind an httpx ASGI transport.
This plugin replaces that app, per ``DL_SUITE_MODE``:

``plain``    nothing: Datasette's suite as it is (the baseline for ``root``).
``root``     the bridge: each request becomes a Lambda Function URL event (payload 2.0, as AWS sends it:
             ``rawPath``, ``rawQueryString``, lower-case headers, ``cookies``, base64 bodies) for dl's real
             handler (``dl.runtime.handler.Runtime``: Mangum, the gateway, ``links``) serving the test's own
             Datasette object at ``/``; the Lambda response is turned back into ASGI messages.
``prefix``   the same under the prefix ``PREFIX``: the test's Datasette gets ``base_url = PREFIX`` before its
             client is made, so the client puts the test's paths under the prefix, as a browser would.
``control``  plain Datasette with ``base_url = PREFIX`` behind a proxy that keeps the prefix (the setup
             Datasette's documentation describes): the same requests, straight to its app.

Under a prefix (``prefix`` and ``control``) the link audit reads every response before the test does:
every local URL (``Location`` and ``Link`` headers; ``href``, ``src``, ``action`` and ``formaction`` in HTML;
JSON strings under keys naming a URL: ``next_url``, ``toggle_url``, ``url``, ``href``, renderers)
that does not start with the prefix, or starts with it twice, is appended to the JSON-lines file
``DL_SUITE_AUDIT`` with the test's id. Then the prefix is taken off once (every ``PREFIX`` in the body and
headers becomes ``/``), so the test sees what it would see at ``/``: a link with the prefix exactly once passes
the test's own assertions, a doubled one does not, and one without it is in the audit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import tempfile
import weakref
from html.parser import HTMLParser
from pathlib import Path

import pytest

PREFIX = "/dlprefix/"  # a token that appears nowhere in Datasette's fixtures, so taking it off is exact
MODE = os.environ.get("DL_SUITE_MODE", "plain")
AUDIT = os.environ.get("DL_SUITE_AUDIT")
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")
URL_KEYS = re.compile(r"(^|_)(url|href)$")  # JSON keys holding links (not "path": file paths, route paths)

_current_test = "(collection)"
_runtimes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pytest_configure(config):
    if MODE == "plain":
        return
    import datasette.app

    original_init = datasette.app.DatasetteClient.__init__

    def __init__(self, ds):
        if MODE in ("prefix", "control"):
            ds._settings["base_url"] = PREFIX  # before the client adds it to the tests' paths
        original_init(self, ds)
        self.app = Bridge(ds) if MODE in ("root", "prefix") else Control(ds, self.app)

    datasette.app.DatasetteClient.__init__ = __init__


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _current_test
    _current_test = item.nodeid


# --- the bridge: ASGI request -> Lambda event -> dl's handler -> Lambda response -> ASGI ------------------


class Bridge:
    """An ASGI app that serves each request through dl's Lambda handler, for one Datasette object."""

    def __init__(self, ds):
        self.ds = ds
        self.prefix = PREFIX if MODE == "prefix" else "/"
        if ds not in _runtimes:  # now, as the client builds ds.app(): a test may register plugins after
            _runtimes[ds] = _runtime_for(ds, self.prefix)

    def runtime(self):
        return _runtimes[self.ds]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        event = lambda_event(scope, body, self.prefix)
        runtime = self.runtime()
        response = await asyncio.to_thread(_in_fresh_loop, runtime, event)
        status, headers, content = from_lambda(response)
        if self.prefix != "/":
            audit(scope, status, headers, content)
            headers, content = unprefixed(headers, content)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class Control:
    """Plain Datasette with ``base_url`` behind a proxy that keeps the prefix: the control for ``prefix``."""

    def __init__(self, ds, app):
        self.ds = ds
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        path = scope["path"]
        if not raw.startswith(PREFIX):
            raw, path = PREFIX.rstrip("/") + raw, PREFIX.rstrip("/") + path
        prefixed = dict(scope, path=path, raw_path=raw.encode("latin-1"))
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(prefixed, receive, capture)
        headers, content = list(start.get("headers", [])), b"".join(chunks)
        audit(scope, start.get("status", 500), headers, content)
        headers, content = unprefixed(headers, content)
        await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _runtime_for(ds, prefix: str):
    """dl's Runtime serving ``ds`` under ``prefix`` (an instance.json with no databases of its own)."""
    from dl.runtime.handler import Runtime
    from dl.runtime.settings import RuntimeSettings

    folder = Path(tempfile.mkdtemp(prefix="dl-suite-"))
    document = {"format": 1, "instance": "suite", "prefix": prefix, "cors": bool(ds.cors), "databases": []}
    (folder / "instance.json").write_text(json.dumps(document))
    environ = {"DL_INSTANCE_DIR": str(folder), "DL_FETCH_DIR": str(folder / "fetch")}
    environ["AWS_EXECUTION_ENV"] = "AWS_Lambda_python3.13"
    return Runtime(RuntimeSettings.from_environ(environ), log=lambda line: None, datasette=ds)


def _in_fresh_loop(runtime, event):
    """Call the handler as Lambda does, on this thread's own event loop (the test's loop is busy)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return runtime(event, None)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def lambda_event(scope, body: bytes, prefix: str) -> dict:
    """A Function URL event (payload 2.0) for an ASGI request, its path under ``prefix``."""
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
    if prefix != "/" and not path.startswith(prefix):  # the client adds base_url unless told not to
        path = prefix.rstrip("/") + path
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in scope.get("headers", []):
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        if name == "cookie":
            cookies += [c.strip() for c in text.split(";") if c.strip()]
            continue
        headers[name] = f"{headers[name]},{text}" if name in headers else text
    headers.setdefault("host", "localhost")
    headers["x-forwarded-proto"] = scope.get("scheme", "http")
    headers["x-forwarded-port"] = str((scope.get("server") or ("localhost", 80))[1] or 80)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": scope.get("query_string", b"").decode("latin-1"),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "suite",
            "domainName": headers["host"],
            "http": {
                "method": scope["method"],
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": (scope.get("client") or ("127.0.0.1", 0))[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": "suite",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "isBase64Encoded": bool(body),
    }
    if cookies:
        event["cookies"] = cookies
    if body:
        event["body"] = base64.b64encode(body).decode()
    return event


def from_lambda(response: dict) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and body of a Lambda (payload 2.0) response."""
    headers = [
        (k.lower().encode("latin-1"), str(v).encode("latin-1"))
        for k, v in response.get("headers", {}).items()
    ]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(name.lower().encode("latin-1"), str(v).encode("latin-1")) for v in values]
    headers += [(b"set-cookie", c.encode("latin-1")) for c in response.get("cookies", [])]
    body = response.get("body") or ""
    content = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
    return int(response["statusCode"]), headers, content


# --- the prefix: audited, then taken off once ---------------------------------------------------------------


def unprefixed(headers, content: bytes):
    token, root = PREFIX.encode(), b"/"
    headers = [(k, v.replace(token, root)) for k, v in headers if k != b"content-length"]
    content = content.replace(token, root)
    headers.append((b"content-length", str(len(content)).encode()))
    return headers, content


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action", "formaction") and value:
                self.links.append(value)


def local_urls(headers, content: bytes) -> list[tuple[str, str]]:
    """(where, url) of every local URL in a response."""
    found: list[tuple[str, str]] = []
    header_map = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
    if "location" in header_map:
        found.append(("Location", header_map["location"]))
    for key, value in headers:
        if key == b"link":
            found += [("Link", url) for url in re.findall(r"<([^>]*)>", value.decode("latin-1"))]
    content_type = header_map.get("content-type", "")
    text = content.decode("utf-8", "replace")
    if "text/html" in content_type:
        parser = _Links()
        try:
            parser.feed(text)
        except Exception:  # a malformed page is the test's business
            pass
        found += [("html", url) for url in parser.links]
    elif "json" in content_type:
        try:
            found += [("json " + key, url) for key, url in _json_urls(json.loads(text))]
        except ValueError:
            pass
    return [(where, url) for where, url in found if _is_local(url)]


def _json_urls(value, key: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_urls(v, "renderers" if key == "renderers" else str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _json_urls(v, key)
    elif isinstance(value, str) and (URL_KEYS.search(key) or key == "renderers"):
        yield key, value


def _is_local(url: str) -> bool:
    return (url.startswith("/") and not url.startswith("//")) or url.startswith("http://localhost/")


def audit(scope, status: int, headers, content: bytes) -> None:
    """Record every local URL of the response that leaves the prefix or doubles it."""
    if not AUDIT:
        return
    problems = []
    doubled = PREFIX + PREFIX.lstrip("/")
    for where, url in local_urls(headers, content):
        path = url.removeprefix("http://localhost")
        if path.startswith(doubled):
            problems.append({"kind": "doubled", "where": where, "url": url})
        elif not (path.startswith(PREFIX) or path == PREFIX.rstrip("/")):
            problems.append({"kind": "outside", "where": where, "url": url})
    if problems:
        request = scope["path"] + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
        with open(AUDIT, "a", encoding="utf-8") as out:
            for problem in problems:
                out.write(
                    json.dumps({"test": _current_test, "request": request, "status": status, **problem})
                    + "\n"
                )
