"""A fault-injecting HTTP proxy between `dl` and moto's server, for the reliability tests.

Point ``AWS_ENDPOINT_URL`` at :attr:`FaultProxy.url`. Every request is forwarded to moto unless the seeded
random generator picks a fault for it (share ``rate``), drawn from ``kinds``:

``throttle``     the service's own throttling error: CloudFormation (query protocol) HTTP 400 ``Throttling``
                 XML, S3 HTTP 503 ``SlowDown`` XML; nothing reaches moto
``500`` / ``503`` an internal error / service unavailable in the service's XML error shape; nothing reaches moto
``reset``        the connection is closed without a response, before the request reaches moto
``reset-after``  the request IS forwarded (moto did the work), then the connection is closed without a
                 response: the client cannot tell, and retries a request that already succeeded
``delay``        a pause (``delay_seconds``, below the client's read timeout), then forwarded
``timeout``      forwarded, then the response held past the client's read timeout (``timeout_seconds``):
                 the client gives up and retries a request that already succeeded
``truncate``     forwarded; the answer announces its full length but stops halfway and the connection closes
``corrupt``      forwarded; the answer's body arrives complete but with its bytes changed (same length)

(``truncate`` and ``corrupt`` are not among the random kinds by default: they are for downloads.)

``on_request(n, service, action, body)`` (optional) is called before each request is handled, with its
1-based number, and ``on_forwarded(n, service, action, body)`` after moto answered and before the client
gets the answer: the interruption tests use them to kill or interrupt the client at a deterministic point
(before a write reaches AWS, or after it took effect but before dl knows). ``on_request`` may return
``"forward-then-hold"`` to hold the response back for ``hold_seconds``.

``rules`` ({action: [fault, ...]}) injects faults deterministically: the listed faults, in order, to the
first occurrences of an action (``CreateChangeSet``, ``PUT /bucket/key`` is ``PutObject``...); ``""`` lets
one through. Counts of requests and of each fault injected are kept in :attr:`stats`.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = ("throttle", "500", "503", "reset", "reset-after", "delay", "timeout")
_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")

_QUERY_ERROR = (
    '<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>{type}</Type>'
    "<Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
)
_S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
    "<RequestId>fault-proxy</RequestId><HostId>fault-proxy</HostId></Error>"
)


def service_of(headers) -> str:
    """The signing service of a request (``cloudformation``, ``s3``, ...) from its SigV4 Authorization."""
    match = _CREDENTIAL.search(headers.get("Authorization", ""))
    return match.group(1) if match else "unknown"


def error_response(service: str, kind: str) -> tuple[int, bytes]:
    """(status, XML body) of an injected error in the shape the service's protocol uses."""
    if service == "s3":
        code, message, status = {
            "throttle": ("SlowDown", "Please reduce your request rate.", 503),
            "500": ("InternalError", "We encountered an internal error. Please try again.", 500),
            "503": ("ServiceUnavailable", "Service is unable to handle request.", 503),
        }[kind]
        return status, _S3_ERROR.format(code=code, message=message).encode()
    code, message, status, kind_ = {
        "throttle": ("Throttling", "Rate exceeded", 400, "Sender"),
        "500": ("InternalFailure", "The request processing has failed.", 500, "Receiver"),
        "503": ("ServiceUnavailable", "Service is unavailable.", 503, "Receiver"),
    }[kind]
    return status, _QUERY_ERROR.format(type=kind_, code=code, message=message).encode()


class FaultProxy:
    """A threaded proxy on 127.0.0.1 (random port) forwarding to ``upstream`` with seeded faults."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = KINDS,
        delay_seconds: float = 0.3,
        timeout_seconds: float = 4.0,
        hold_seconds: float = 1.0,
        on_request=None,
        on_forwarded=None,
        rules: dict[str, list[str]] | None = None,
    ):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.rate = rate
        self.kinds = kinds
        self.delay_seconds = delay_seconds
        self.timeout_seconds = timeout_seconds
        self.hold_seconds = hold_seconds
        self.on_request = on_request
        self.on_forwarded = on_forwarded
        self.rules = {action: list(faults) for action, faults in (rules or {}).items()}
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.count = 0
        self.stats: Counter[str] = Counter()
        self.log: list[tuple[int, str, str, str]] = []  # (n, service, action, fault or "ok")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                proxy.handle(self)

            do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # resets are the point: no tracebacks
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- one request -----------------------------------------------------------------------------

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        service = service_of(req.headers)
        action = self._action(req, body, service)
        with self.lock:
            self.count += 1
            n = self.count
            fault = self.random.choice(self.kinds) if self.random.random() < self.rate else None
            if self.rules.get(action):
                fault = self.rules[action].pop(0) or None
            self.stats["requests"] += 1
            if fault:
                self.stats[fault] += 1
            self.log.append((n, service, action, fault or "ok"))
        hold = None
        if self.on_request is not None:
            hold = self.on_request(n, service, action, body)
        if fault in ("throttle", "500", "503"):
            status, payload = error_response(service, fault)
            self._respond(req, status, [("Content-Type", "text/xml")], payload)
            return
        if fault == "reset":
            self._reset(req)
            return
        if fault == "delay":
            time.sleep(self.delay_seconds)
        status, headers, payload = self._forward(req, body)
        if self.on_forwarded is not None:
            self.on_forwarded(n, service, action, body)
        if fault == "reset-after":
            self._reset(req)
            return
        if fault == "timeout":
            time.sleep(self.timeout_seconds)
            self._reset(req)
            return
        if fault == "truncate":
            req.send_response_only(status)
            for k, v in headers:
                req.send_header(k, v)
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload[: len(payload) // 2])
            req.wfile.flush()
            self._reset(req)
            return
        if fault == "corrupt":
            payload = bytes(b ^ 0x5A for b in payload[:64]) + payload[64:]
        if hold == "forward-then-hold":
            time.sleep(self.hold_seconds)
        self._respond(req, status, headers, payload)

    @staticmethod
    def _action(req, body: bytes, service: str = "") -> str:
        if b"Action=" in body[:200]:
            return parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        path = urlsplit(req.path)
        if service == "s3":
            depth = min(2, len([p for p in path.path.split("/") if p]))
            names = {("PUT", 2): "PutObject", ("HEAD", 2): "HeadObject", ("GET", 2): "GetObject"}
            if (req.command, depth) in names:
                return names[(req.command, depth)]
            if req.command == "POST" and "delete" in path.query:
                return "DeleteObjects"
        return f"{req.command} {path.path}"

    def _forward(self, req, body: bytes):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in req.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(req.command, req.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")
                or (k.lower() == "content-length" and req.command == "HEAD")
            ]
            return resp.status, out, payload
        finally:
            conn.close()

    @staticmethod
    def _respond(req, status: int, headers, payload: bytes) -> None:
        req.send_response_only(status)
        for k, v in headers:
            req.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(payload)
        req.wfile.flush()

    @staticmethod
    def _reset(req) -> None:
        """Close the connection without a response (an RST where the platform allows)."""
        try:
            req.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        except OSError:
            pass
        req.close_connection = True
        try:
            req.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
