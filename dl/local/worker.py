"""The stand-in for one Lambda sandbox: an isolated interpreter running a package's handler, and the Function
URL events it is given.

:class:`Worker` starts ``python -I -S -B`` (no site-packages, no environment variables read by Python, no
bytecode written, working directory elsewhere) on an unpacked package, whose only addition to ``sys.path`` is
the package; it runs ``dl_runtime.worker``, the stand-in for the Lambda runtime loop, and exchanges one
message per request with it over a pipe. Like one Lambda sandbox it handles one request at a time and is
killed when a request outlives the instance's timeout.

:func:`request_event` turns an HTTP request into a Lambda Function URL event (payload 2.0, as AWS sends it:
lower-case headers, ``cookies``, base64 bodies, ``X-Forwarded-Host`` set to the ``Host`` the browser used, as
our CloudFront Function does); :func:`response_parts` turns the handler's answer back into an HTTP response.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from dl.errors import DlError
from dl.runtime.worker import read_message, write_message

READY_TIMEOUT = 120  # seconds for the handler module to import (Lambda's init phase allows 10)
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from dl_runtime.worker import main; main(int(sys.argv[2]))"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}

Log = Callable[[str], None]


# --- the worker: one isolated interpreter running the package's handler -------------------------------------


class WorkerError(Exception):
    """The worker died, timed out, or its handler raised; the message says which."""


class Worker:
    """One unpacked package served by ``dl_runtime.worker`` in a separate, isolated interpreter."""

    def __init__(self, root: Path, python: Path, env: dict[str, str], timeout: float, log: Log):
        self.root = root
        self.python = python
        self.env = env
        self.timeout = timeout
        self.log = log
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._responses = None

    def start(self) -> None:
        """Start the interpreter and wait for the handler module to import; DlError with its traceback if not."""
        read_fd, write_fd = os.pipe()
        cwd = tempfile.mkdtemp(prefix="dl-serve-cwd-")
        try:
            self._proc = subprocess.Popen(
                [str(self.python), "-I", "-S", "-B", "-c", BOOT, str(self.root), str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=self.env,
                pass_fds=(write_fd,),
                start_new_session=True,  # Ctrl-C reaches the tool, which stops the worker cleanly
            )
        finally:
            os.close(write_fd)
        self._responses = os.fdopen(read_fd, "rb")
        threading.Thread(target=self._relay_output, daemon=True).start()
        ready = self._read(READY_TIMEOUT)
        if not ready or not ready.get("ready"):
            self.stop()
            detail = (ready or {}).get("error") or "the worker exited during start-up"
            raise DlError(f"the package's handler failed to start:\n{detail.rstrip()}")

    def invoke(self, event: dict) -> dict:
        """Send one event and return the handler's response (raises WorkerError)."""
        with self._lock:
            if not self.alive:
                raise WorkerError("the worker is not running")
            try:
                write_message(self._proc.stdin, event)
            except OSError as e:
                raise WorkerError(f"the worker is gone ({e})") from None
            response = self._read(self.timeout)
        if response is None:
            self._kill()
            raise WorkerError(f"Task timed out after {self.timeout:.0f} seconds, or the worker crashed")
        if "error" in response and "statusCode" not in response:
            raise WorkerError(f"the handler raised:\n{response['error']}")
        return response

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Close the worker's stdin (its loop ends), then make sure it is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._responses:
            self._responses.close()

    def _kill(self) -> None:
        """Make sure the process is gone (reaped), so ``alive`` is False."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()

    def _read(self, timeout: float) -> dict | None:
        """The next message from the worker, or None if it exits or takes longer than ``timeout`` (killed)."""
        proc = self._proc
        timer = threading.Timer(timeout, lambda: proc.kill() if proc.poll() is None else None)
        timer.start()
        try:
            return read_message(self._responses)
        except (OSError, ValueError):
            return None
        finally:
            timer.cancel()

    def _relay_output(self) -> None:
        """Show the worker's stdout/stderr (the handler's request log, tracebacks) as CloudWatch would."""
        proc = self._proc
        for line in proc.stdout:
            self.log(line.decode("utf-8", "replace").rstrip("\n"))


# --- HTTP <-> Function URL events -----------------------------------------------------------------------------


def request_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    client_ip: str,
    function_host: str,
) -> dict:
    """The Lambda Function URL event (payload 2.0) for one HTTP request, as AWS builds it.

    ``X-Forwarded-Host`` is set to the request's ``Host`` (what our CloudFront Function does) and ``Host`` to
    the function's own URL host.
    """
    path, _, query = target.partition("?")
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        elif key in merged:
            merged[key] = f"{merged[key]},{value}"
        else:
            merged[key] = value
    public_host = merged.get("host", "localhost")
    merged.update(
        {
            "host": function_host,
            "x-forwarded-host": public_host,
            "x-forwarded-proto": "http",
            "x-forwarded-port": public_host.rpartition(":")[2] if ":" in public_host else "80",
            "x-forwarded-for": client_ip,
        }
    )
    now = datetime.now(UTC)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path or "/",
        "rawQueryString": query,
        "headers": merged,
        "queryStringParameters": _query_parameters(query),
        "requestContext": {
            "accountId": "anonymous",
            "apiId": function_host.split(".")[0],
            "domainName": function_host,
            "domainPrefix": function_host.split(".")[0],
            "http": {
                "method": method,
                "path": path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": client_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body),
    }
    if cookies:
        event["cookies"] = cookies
    if body:
        event["body"] = base64.b64encode(body).decode("ascii")
    return event


def _query_parameters(query: str) -> dict[str, str] | None:
    """Function URLs join repeated parameters with commas and do not decode them."""
    params: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        params[name] = f"{params[name]},{value}" if name in params else value
    return params or None


def response_parts(response: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a Function URL response as AWS would send it."""
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
    headers = [(k, str(v)) for k, v in (response.get("headers") or {}).items() if k.lower() not in HOP_BY_HOP]
    headers += [("set-cookie", cookie) for cookie in response.get("cookies") or []]
    return int(response.get("statusCode", 200)), headers, data
