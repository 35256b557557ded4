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
   (Mangum buffers anyway) while they may fit once encoded as the runtime will encode them (see
   ``marshalling``); one that may not is streamed into the artifact bucket and answered with a redirect to it
   (see ``large_responses``); without a bucket it is served as it is in ``dl serve`` (which says so), and is
   otherwise stopped and replaced by a 413 explaining what to ask for instead (the handler checks the exact
   size of the rest). A database download (``/<db>.db``) that Datasette allows is answered with a 302 to a
   short-lived presigned URL of the database in the artifact bucket instead, whatever its size.
7. Clock: the front door (an HTTP API, a CloudFront origin) gives up after ``DL_ANSWER_SECONDS`` with a 504; a
   response Datasette cannot finish two seconds before that is abandoned for a 413 saying what to ask for.
8. Log: one line per request on stdout (CloudWatch): method, path, status, milliseconds.
"""

from __future__ import annotations

import asyncio
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
from .large_responses import LargeResponses, Upload
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
NO_STORE = (b"cache-control", b"no-store")
ENVELOPE_BYTES = 512  # the payload's keys and punctuation around body and headers (statusCode, ...)
ANSWER_MARGIN_SECONDS = 2.0  # kept back from the deadline to complete an upload and answer

TOO_LARGE_MESSAGE = """\
413 Response too large

This response would be larger than {limit} MB, the most AWS Lambda can return, so it was not sent.

- Ask for fewer rows: add _size=100 (or any size up to the instance's max_returned_rows), and follow the
  "next" links (next_url in JSON, the Link header) to page through the rest.
- Ask for fewer columns with _col= / _nocol=, or a narrower SQL query.
- To get everything, download the whole database file: {downloads}
"""


TOO_SLOW_MESSAGE = """\
413 Response too large to produce in time

This response could not be produced within {seconds} seconds, the time this site waits for an answer{produced}.

- Ask for fewer rows: filter (?column=value, _where=), or add _size= and follow the "next" links (next_url in
  JSON, the Link header) to export in pages.
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
        large_responses: LargeResponses | None = None,
        response_limit: int = LAMBDA_RESPONSE_LIMIT,
        answer_seconds: float | None = None,
        direct: bool = False,
    ):
        self.spec = spec
        self.app_loader = app_loader
        self.origin_secret = origin_secret
        self.presign = presign  # (artifact key, file name) -> URL; None: no artifact bucket
        self.log = log or _print_line
        self.ensure_ascii = ensure_ascii  # how the runtime client escapes text (see marshalling)
        self.large_responses = large_responses  # where responses over the limit go; None: nowhere
        self.response_limit = response_limit  # payload bytes above which a response goes to S3
        self.answer_seconds = answer_seconds  # the front door's clock (HTTP API, CloudFront); None: none
        self.direct = direct  # dl serve: a response over the limit is served as it is, and logged

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
            await self._serve(dict(scope, **{"dl.started": started}), receive, recording_send)
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
        """Run Datasette through a ``_Responder`` (prefix, size limit, S3, downloads) within the deadline."""
        download = self._download_for(inner_path)
        responder = _Responder(self, send, download_route=download is not None, name=_file_name(inner_path))
        timeout = self._seconds_left(scope)
        try:
            with contextlib.suppress(_Abort):
                await asyncio.wait_for(app(scope, receive, responder.send), timeout)
        except TimeoutError:
            await responder.discard()
            return await self._text(send, 413, self.too_slow_text(responder))
        except BaseException:
            await responder.discard()
            raise
        if responder.redirect_download:
            url = self.presign(download.key, download.file)
            return await self._redirect(send, url, extra=[NO_STORE])
        if responder.too_large:
            return await self._text(send, 413, self.too_large_text())
        await responder.finish()

    def _seconds_left(self, scope) -> float | None:
        """Time Datasette may take: the front door's clock, less a margin to complete an upload and answer."""
        if self.answer_seconds is None:
            return None
        elapsed = time.monotonic() - scope["dl.started"]
        return max(0.1, self.answer_seconds - elapsed - self._margin())

    def _margin(self) -> float:
        return min(ANSWER_MARGIN_SECONDS, self.answer_seconds / 5)

    def too_slow_text(self, responder: _Responder) -> str:
        """The answer to an export that cannot finish in time: what was too big, how to ask for less."""
        produced = f"{responder.body_bytes / 2**20:.1f} MB had been produced" if responder.body_bytes else ""
        return TOO_SLOW_MESSAGE.format(
            seconds=f"{self.answer_seconds:g}",
            produced=f" ({produced})" if produced else "",
            downloads=self._downloads(),
        )

    def too_large_text(self) -> str:
        """The 413's explanation: what to ask for instead."""
        return TOO_LARGE_MESSAGE.format(limit=LAMBDA_RESPONSE_LIMIT // 2**20, downloads=self._downloads())

    def _downloads(self) -> str:
        from datasette.utils import tilde_encode

        return " ".join(self.spec.prefix + tilde_encode(db.name) + ".db" for db in self.spec.databases)

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

    async def _redirect(self, send, location: str, status: int = 302, extra=()):
        headers = [
            (b"location", location.encode("latin-1")),
            (b"content-type", b"text/plain"),
            *self._cors(),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class _Responder:
    """The ``send`` Datasette writes to: buffers the response while it may fit in Lambda's payload, then
    streams the rest to S3 (``large_responses``), or to the client (``direct``, in ``dl serve``), or stops
    it (413). Download routes that Datasette allows are stopped at once for a presigned redirect."""

    def __init__(self, gateway: Gateway, send, *, download_route: bool, name: str):
        self.gateway = gateway
        self.client_send = send
        self.download_route = download_route
        self.name = name
        self.start: dict | None = None
        self.messages: list[dict] = []  # buffered body messages
        self.size: BodySize | None = None
        self.body_bytes = 0
        self.header_bytes = 0
        self.upload: Upload | None = None
        self.streaming_directly = False
        self.too_large = False
        self.redirect_download = False

    async def send(self, message):
        if self.too_large or self.redirect_download:
            return
        if message["type"] == "http.response.start":
            if self.download_route and message["status"] == 200:
                self.redirect_download = True
                raise _Abort
            headers = headers_under_prefix(message.get("headers", []), self.gateway.spec.prefix)
            self.start = dict(message, headers=headers)
            self.size = BodySize(is_text(headers), self.gateway.ensure_ascii)
            # an upper bound of the payload around the body: every header byte escaped, plus the envelope
            self.header_bytes = 6 * sum(len(k) + len(v) + 8 for k, v in headers) + ENVELOPE_BYTES
            return
        if message["type"] != "http.response.body":
            return
        chunk = message.get("body", b"")
        self.body_bytes += len(chunk)
        if self.upload is not None:
            return await self.upload.write(chunk)
        if self.streaming_directly:
            return await self.client_send(message)
        self.size.add(chunk)
        self.messages.append(message)
        if self.size.encoded + self.header_bytes > self.gateway.response_limit:
            await self._over_the_limit()

    async def _over_the_limit(self):
        """The response may not fit: S3, directly (dl serve) or, once it certainly cannot fit, a 413."""
        gateway = self.gateway
        if gateway.large_responses is not None and self.start["status"] == 200:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.start["headers"]}
            self.upload = await gateway.large_responses.open(
                self.name, headers.get("content-type", ""), headers.get("content-disposition")
            )
            buffered, self.messages = self.messages, []
            for message in buffered:
                await self.upload.write(message.get("body", b""))
        elif gateway.direct:
            gateway.log(
                f"response over {gateway.response_limit / 2**20:.1f} MB served directly by dl serve; "
                "on Lambda it is written to the artifact bucket and answered with a redirect to it"
            )
            self.streaming_directly = True
            await self.client_send(self.start)
            buffered, self.messages = self.messages, []
            for message in buffered:
                await self.client_send(message)
        elif self.size.encoded > LAMBDA_RESPONSE_LIMIT:  # the body alone cannot fit: stop now
            self.too_large = True
            self.messages.clear()
            raise _Abort

    async def finish(self):
        """Datasette is done: send the buffered response, or complete the upload and redirect to it."""
        if self.streaming_directly:
            return
        if self.upload is not None:
            url = await self.upload.finish()
            self.gateway.log(
                f"response of {self.upload.size / 2**20:.1f} MB sent through s3 ({self.upload.key})"
            )
            return await self.gateway._redirect(self.client_send, url, status=303, extra=[NO_STORE])
        if self.start is None:
            return
        await self.client_send(self.start)
        for message in self.messages:
            await self.client_send(message)

    async def discard(self):
        """Datasette failed or ran out of time: drop what was produced."""
        self.messages.clear()
        if self.upload is not None:
            upload, self.upload = self.upload, None
            await upload.abort()


def _file_name(inner_path: str) -> str:
    """The name a response is stored under in S3: the last segment of its path (``items.csv``)."""
    return inner_path.rstrip("/").rsplit("/", 1)[-1] or "index"


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
