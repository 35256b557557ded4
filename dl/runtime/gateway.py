"""The ASGI layer Mangum calls, in front of Datasette.

For every request, in order:

1. Origin check: with ``DL_ORIGIN_SECRET`` set, a request without the matching secret header gets 403.
2. Raw path: Mangum sets ``scope["raw_path"] = None``, which turns Datasette's 404s and trailing-slash
   redirects into 500s; the raw (still percent-encoded) path is taken from the Lambda event instead.
3. Prefix: a request outside the instance's prefix is a 404 (Datasette's ``base_url`` alone would also answer
   unprefixed paths) and the bare prefix without its slash redirects to it. Datasette sees the request as
   behind a proxy that does not strip the prefix: ``path``, ``raw_path`` (so ``request.path``,
   ``request.url``) keep it, and ``scope["dl.prefix"]`` says so (see ``links``). The few redirects Datasette
   sends to a fixed unprefixed path (``/-/config.json``) get the prefix, in ``Location`` and ``Link``.
4. Public host: ``X-Forwarded-Host`` (set by our CloudFront Function, or by ``dl serve``) replaces ``Host``, so
   absolute URLs (``next_url``, ``Link`` headers, facet toggles) name the public host, not the function's.
5. Databases: the Datasette app is obtained from ``app_loader``; if a database cannot be fetched from S3 the
   answer is 503 with the reason, and the next request tries again.
6. Response size: Lambda refuses synchronous responses over 6 MB with an opaque error. Responses are buffered
   (Mangum buffers anyway); one whose body alone cannot fit, once encoded as the runtime will encode it (see
   ``marshalling``), is stopped and replaced by a 413 explaining what to do instead (the handler checks the
   exact size of the rest). A database download (``/<db>.db``) that Datasette allows is answered with
   a 302 to a short-lived presigned URL of the database in the artifact bucket instead, whatever its size.
7. Log: one line per request on stdout (CloudWatch): method, path, status, milliseconds.
"""

from __future__ import annotations

import contextlib
import hmac
import re
import sys
import time
from collections.abc import Callable
from urllib.parse import quote, unquote

from . import links
from .fetch import FetchError
from .instance import InstanceSpec
from .marshalling import LAMBDA_RESPONSE_LIMIT, BodySize
from .settings import ORIGIN_SECRET_HEADER

TEXT_MIME_TYPES = [  # responses Mangum returns as text; everything else is base64-encoded
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/vnd.api+json",
    "application/vnd.oai.openapi",
]
SAFE_PATH_CHARS = "/%:@!$&'()*+,;=~-._"
DOWNLOAD_ROUTE = re.compile(r"^/(?P<database>[^/.]+)\.db$")  # matched against the path inside the prefix
LINK_TARGET = re.compile(r"<([^>]*)>")

TOO_LARGE_MESSAGE = """\
413 Response too large

This response would be larger than {limit} MB, the most AWS Lambda can return, so it was not sent.

- Ask for fewer rows: add _size=100 (or any size up to the instance's max_returned_rows), and follow the
  "next" links (next_url in JSON, the Link header) to page through the rest.
- Ask for fewer columns with _col= / _nocol=, or a narrower SQL query.
- To get everything, download the whole database file: {downloads}
"""


class _Abort(BaseException):
    """Stops the application mid-response (BaseException, so Datasette's handlers do not catch it)."""


class Gateway:
    """The ASGI application Mangum wraps; see the module docstring."""

    def __init__(
        self,
        spec: InstanceSpec,
        app_loader: Callable[[], object],
        *,
        origin_secret: str | None = None,
        presign: Callable[[str, str], str] | None = None,
        log: Callable[[str], None] | None = None,
        ensure_ascii: bool = True,
    ):
        self.spec = spec
        self.app_loader = app_loader
        self.origin_secret = origin_secret
        self.presign = presign  # (artifact key, file name) -> URL; None: no artifact bucket
        self.log = log or _print_line
        self.ensure_ascii = ensure_ascii  # how the runtime client escapes text (see marshalling)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        started = time.monotonic()
        status = []

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self._serve(scope, receive, recording_send)
        finally:
            elapsed = (time.monotonic() - started) * 1000
            line = f"{scope['method']} {_display_path(scope)} {status[0] if status else '-'} {elapsed:.0f}ms"
            self.log(line)

    async def _serve(self, scope, receive, send):
        headers = _headers(scope)
        if self.origin_secret and not hmac.compare_digest(
            headers.get(ORIGIN_SECRET_HEADER, "").encode(), self.origin_secret.encode()
        ):
            return await self._text(send, 403, "403 Forbidden: requests must come through the site's CDN.\n")
        raw_path = raw_request_path(scope)
        prefix = quote(self.spec.prefix, safe=SAFE_PATH_CHARS)
        if raw_path == prefix.rstrip("/") and prefix != "/":
            query = scope.get("query_string", b"").decode("latin-1")
            return await self._redirect(send, prefix + (f"?{query}" if query else ""))
        if not raw_path.startswith(prefix):
            message = f"404 Not Found: this site serves everything under {self.spec.prefix}\n"
            return await self._text(send, 404, message)
        scope = dict(scope, path=unquote(raw_path), raw_path=raw_path.encode("ascii"), root_path="")
        if prefix != "/":
            scope[links.SCOPE_KEY] = prefix
        scope = with_public_host(scope, headers)
        try:
            app = self.app_loader()
        except FetchError as e:
            message = f"503 Service Unavailable: {e}\nThe next request will try again.\n"
            return await self._text(send, 503, message, extra=[(b"retry-after", b"5")])
        await self._respond(app, scope, receive, send, inner_path=unquote("/" + raw_path[len(prefix) :]))

    async def _respond(self, app, scope, receive, send, inner_path: str):
        """Run Datasette, buffering its response to apply the prefix, the size limit and download redirects."""
        download = self._download_for(inner_path)
        capture = _Capture(download_route=download is not None, ensure_ascii=self.ensure_ascii)
        with contextlib.suppress(_Abort):
            await app(scope, receive, capture.send)
        if capture.redirect_download:
            url = self.presign(download.key, download.file)
            return await self._redirect(send, url, extra=[(b"cache-control", b"no-store")])
        if capture.too_large:
            return await self._text(send, 413, self.too_large_text())
        for message in capture.messages:
            if message["type"] == "http.response.start":
                headers = headers_under_prefix(message.get("headers", []), self.spec.prefix)
                message = dict(message, headers=headers)
            await send(message)

    def too_large_text(self) -> str:
        """The 413's explanation: what to ask for instead."""
        from datasette.utils import tilde_encode

        downloads = " ".join(self.spec.prefix + tilde_encode(db.name) + ".db" for db in self.spec.databases)
        return TOO_LARGE_MESSAGE.format(limit=LAMBDA_RESPONSE_LIMIT // 2**20, downloads=downloads)

    def _download_for(self, path: str):
        """The database a download path names, when downloads go to S3; else None."""
        match = DOWNLOAD_ROUTE.match(path)
        if not match or self.presign is None:
            return None
        from datasette.utils import tilde_decode

        return self.spec.database(tilde_decode(match.group("database")))

    def _cors(self):
        return [(b"access-control-allow-origin", b"*")] if self.spec.cors else []

    async def _text(self, send, status: int, text: str, extra=()):
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *self._cors(), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text.encode("utf-8")})

    async def _redirect(self, send, location: str, extra=()):
        headers = [
            (b"location", location.encode("latin-1")),
            (b"content-type", b"text/plain"),
            *self._cors(),
            *extra,
        ]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class _Capture:
    """An ASGI ``send`` that buffers the response and aborts the app once the response cannot be sent."""

    def __init__(self, download_route: bool, ensure_ascii: bool):
        self.download_route = download_route
        self.ensure_ascii = ensure_ascii
        self.messages: list[dict] = []
        self.size: BodySize | None = None
        self.too_large = False
        self.redirect_download = False

    @property
    def aborted(self) -> bool:
        return self.too_large or self.redirect_download

    async def send(self, message):
        if self.aborted:
            return
        if message["type"] == "http.response.start":
            if self.download_route and message["status"] == 200:
                self.redirect_download = True
                raise _Abort
            self.size = BodySize(is_text(message.get("headers", [])), self.ensure_ascii)
        elif message["type"] == "http.response.body":
            self.size.add(message.get("body", b""))
            if self.size.encoded > LAMBDA_RESPONSE_LIMIT:  # the body alone: it cannot fit, stop now
                self.too_large = True
                self.messages.clear()
                raise _Abort
        self.messages.append(message)


def is_text(headers) -> bool:
    """Whether Mangum returns a body with these headers as text (else base64)."""
    content_type = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"), "")
    return any(text_type in content_type for text_type in TEXT_MIME_TYPES)


def headers_under_prefix(headers, prefix: str):
    """``Location`` and ``Link`` headers with every local URL outside the prefix put under it."""
    if prefix == "/":
        return headers
    fixed = []
    for key, value in headers:
        if key.lower() == b"location":
            value = url_under_prefix(value.decode("latin-1"), prefix).encode("latin-1")
        elif key.lower() == b"link":
            text = value.decode("latin-1")
            text = LINK_TARGET.sub(lambda m: "<" + url_under_prefix(m.group(1), prefix) + ">", text)
            value = text.encode("latin-1")
        fixed.append((key, value))
    return fixed


def url_under_prefix(url: str, prefix: str) -> str:
    """A local URL (``/...``, not ``//host``) outside the prefix, under it; any other URL as it is.

    Datasette sees prefixed request paths, so a local URL outside the prefix can only come from a fixed path
    (``permanent_redirect("/-/settings.json")``): nothing outside the prefix is served, so it gets the prefix.
    """
    base = prefix.rstrip("/")
    if not url.startswith("/") or url.startswith("//") or url.startswith(prefix):
        return url
    if url.partition("?")[0] == base:
        return url
    return base + url


def raw_request_path(scope) -> str:
    """The request path as sent (percent-encoded, ASCII), from the Lambda event when there is one."""
    event = scope.get("aws.event") or {}
    raw = event.get("rawPath") if event.get("version") == "2.0" else event.get("path")
    if not raw:
        raw_bytes = scope.get("raw_path")
        raw = raw_bytes.decode("latin-1") if raw_bytes else scope["path"]
    return quote(raw.partition("?")[0], safe=SAFE_PATH_CHARS)


def with_public_host(scope, headers: dict[str, str]):
    """Replace ``Host`` by the first ``X-Forwarded-Host`` value, if any."""
    forwarded = headers.get("x-forwarded-host", "").split(",")[0].strip()
    if not forwarded:
        return scope
    new_headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
    new_headers.append((b"host", forwarded.encode("latin-1")))
    return dict(scope, headers=new_headers)


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _display_path(scope) -> str:
    path = raw_request_path(scope)
    query = scope.get("query_string", b"").decode("latin-1")
    if len(query) > 200:
        query = query[:200] + "..."
    return f"{path}?{query}" if query else path


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
