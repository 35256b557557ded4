"""Verified deploys: after ``dl apply`` changes an instance, check over HTTP that it serves what was deployed.

Pipeline position: after **apply**, before render. Read-only, plain HTTP (stdlib ``urllib``), no AWS calls.

The checks, against ``<url><prefix>`` (the public endpoint: CloudFront, a Function URL or ``dl serve``):

1. ``-/versions.json`` answers 200 with ``{"datasette": {"version": <expected>}}``;
2. every database's page answers 200;
3. for every database given a table, ``<db>/<table>.json?_size=1&_extra=count`` answers 200 and its row count
   is the expected one (``filtered_table_rows_count`` in Datasette 0.65's table JSON, which ignores ``_extra``;
   ``count`` in 1.0's, which includes it on request; with inspect data the count comes from the deployed
   inspection, so it also proves which database file is live).

Every request carries a fresh ``_dl_verify=<nonce>`` query parameter so a CDN cannot answer from a cache filled
before the deploy (Datasette ignores unknown ``_`` parameters). All checks run each attempt; failed attempts are
retried with exponential backoff (``interval``, doubling, at most 15 s) until ``timeout`` seconds have passed
(CloudFront takes a while to settle), then the last attempt's failures are reported.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dl import __version__
from dl.errors import DlError

MAX_INTERVAL = 15.0  # seconds: the backoff stops growing here
REQUEST_TIMEOUT = 10.0  # seconds: one HTTP request at most (less when the budget is nearly spent)
EXCERPT = 200  # characters of a response body quoted in a failure

# FTS shadow tables, hidden by Datasette: never chosen as the table to count.
_SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config", "_segments", "_segdir", "_stat")


# --- what to expect -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseExpectation:
    """One database of the instance; ``table``/``rows``: a table whose row count is checked (None: no table)."""

    name: str
    table: str | None = None
    rows: int | None = None


@dataclass(frozen=True)
class Expectation:
    """What a healthy instance answers."""

    url: str  # the public endpoint, e.g. "https://d111.cloudfront.net" (a trailing slash is fine)
    prefix: str  # the instance's canonical prefix: "/" or "/data/"
    datasette_version: str  # e.g. "0.65.5"
    databases: tuple[DatabaseExpectation, ...]

    @property
    def base(self) -> str:
        """The instance's root URL, ending in "/"."""
        return self.url.rstrip("/") + "/" + self.prefix.strip("/") + ("/" if self.prefix.strip("/") else "")


def pick_table(tables: Mapping[str, dict]) -> tuple[str | None, int | None]:
    """A table to check from an inspection's ``tables`` ({name: {"count": n, ...}}): the first by name that
    Datasette shows (no ``sqlite_`` or FTS shadow table) and has a known count; (None, None) when none has."""
    for name in sorted(tables):
        count = tables[name].get("count")
        if count is None or name.startswith("sqlite_") or _is_shadow(name, tables):
            continue
        return name, count
    return None, None


def _is_shadow(name: str, tables: Mapping[str, dict]) -> bool:
    return any(name.endswith(s) and name.removesuffix(s) in tables for s in _SHADOW_SUFFIXES)


def expectation_for(
    url: str, prefix: str, datasette_version: str, inspections: Mapping[str, dict]
) -> Expectation:
    """The expectation for an instance from its databases' inspections ({database name: inspect entry}, the
    shape of :func:`dl.build.inspection.inspect_database`), in the given order."""
    databases = tuple(
        DatabaseExpectation(name, *pick_table(entry.get("tables", {}))) for name, entry in inspections.items()
    )
    return Expectation(url, prefix, datasette_version, databases)


# --- what came back -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check of one attempt."""

    what: str  # e.g. "row count of northwind/Orders"
    url: str
    ok: bool
    expected: str  # e.g. "HTTP 200 with 830 rows"
    got: str  # e.g. "HTTP 200 with 829 rows", "HTTP 500: <body excerpt>", "no answer: timed out"

    def __str__(self) -> str:
        if self.ok:
            return f"{self.what}: ok ({self.got})"
        return f"{self.what}: expected {self.expected}, got {self.got} ({self.url})"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome: the checks of the last attempt, how many attempts were made and how long it took."""

    base: str
    checks: tuple[Check, ...]
    attempts: int
    elapsed: float  # seconds

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def message(self) -> str:
        """One line when it passed; otherwise a header and one line per failed check."""
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''} in {self.elapsed:.0f}s"
        if self.ok:
            return f"verified {self.base}: {len(self.checks)} checks passed ({tries})"
        lines = [f"verification of {self.base} failed ({tries}):"]
        lines += [f"  - {check}" for check in self.failures]
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        """Raise :class:`VerificationFailed` with :meth:`message` unless every check passed."""
        if not self.ok:
            raise VerificationFailed(self.message())


class VerificationFailed(DlError):
    """The deployed instance does not answer as expected (apply exits 1 with this message)."""


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int | None  # None: no HTTP answer at all
    body: bytes
    error: str = ""  # why there was no answer


def fetch(url: str, timeout: float, opener=None) -> Response:
    """GET ``url``; HTTP errors are responses, network failures a Response with status None."""
    request = urllib.request.Request(url, headers={"User-Agent": f"datasette-lambda-verify/{__version__}"})
    open_ = (opener or urllib.request.build_opener()).open
    try:
        with open_(request, timeout=timeout) as response:
            return Response(response.status, response.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.read())
    except urllib.error.URLError as e:
        return Response(None, b"", f"no answer: {e.reason}")
    except (TimeoutError, ConnectionError, OSError) as e:
        return Response(None, b"", f"no answer: {e or type(e).__name__}")


def excerpt(body: bytes) -> str:
    """A short, single-line, printable quote of a body (HTML reduced to its text)."""
    text = body.decode("utf-8", "replace")
    if "<" in text:
        text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
        text = html.unescape(re.sub(r"(?s)<[^>]*>", " ", text))
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def _got(response: Response) -> str:
    if response.status is None:
        return response.error
    quoted = excerpt(response.body)
    return f"HTTP {response.status}: {quoted!r}" if quoted else f"HTTP {response.status} with an empty body"


def _json(response: Response) -> dict | None:
    try:
        doc = json.loads(response.body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


# --- the checks -----------------------------------------------------------------------------------

Fetch = Callable[[str], Response]


def tilde_encode(name: str) -> str:
    """Datasette's URL encoding of a table name (``/`` -> ``~2F``, space -> ``+``)."""
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    out = []
    for byte in name.encode("utf-8"):
        char = chr(byte)
        out.append(char if char in safe else "+" if char == " " else f"~{byte:02X}")
    return "".join(out)


def check_version(exp: Expectation, get: Fetch, nonce: str) -> Check:
    url = f"{exp.base}-/versions.json?_dl_verify={nonce}"
    expected = f"HTTP 200 with Datasette {exp.datasette_version}"
    response = get(url)
    doc = _json(response) if response.status == 200 else None
    if doc is None:
        return Check("Datasette version", url, False, expected, _got(response))
    version = (doc.get("datasette") or {}).get("version")
    ok = version == exp.datasette_version
    return Check("Datasette version", url, ok, expected, f"HTTP 200 with Datasette {version}")


def check_database_page(exp: Expectation, db: DatabaseExpectation, get: Fetch, nonce: str) -> Check:
    url = f"{exp.base}{tilde_encode(db.name)}?_dl_verify={nonce}"
    response = get(url)
    ok = response.status == 200
    return Check(f"database page {db.name}", url, ok, "HTTP 200", "HTTP 200" if ok else _got(response))


def check_row_count(exp: Expectation, db: DatabaseExpectation, get: Fetch, nonce: str) -> Check:
    table = f"{tilde_encode(db.name)}/{tilde_encode(db.table)}.json"
    url = f"{exp.base}{table}?_size=1&_extra=count&_dl_verify={nonce}"
    what = f"row count of {db.name}/{db.table}"
    expected = "HTTP 200" + ("" if db.rows is None else f" with {db.rows} rows")
    response = get(url)
    doc = _json(response) if response.status == 200 else None
    if doc is None:
        return Check(what, url, False, expected, _got(response))
    count = doc.get("filtered_table_rows_count", doc.get("count"))  # Datasette 0.65, 1.0
    got = "HTTP 200 with " + ("no row count (did counting time out?)" if count is None else f"{count} rows")
    return Check(what, url, db.rows is None or count == db.rows, expected, got)


def run_checks(exp: Expectation, get: Fetch) -> tuple[Check, ...]:
    """One attempt: every check once, in order (version, then each database's page and table)."""
    nonce = secrets.token_hex(6)
    checks = [check_version(exp, get, nonce)]
    for db in exp.databases:
        checks.append(check_database_page(exp, db, get, nonce))
        if db.table is not None:
            checks.append(check_row_count(exp, db, get, nonce))
    return tuple(checks)


def verify_instance(
    exp: Expectation,
    *,
    timeout: float = 120.0,
    interval: float = 2.0,
    opener=None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyResult:
    """Check the instance until every check passes or ``timeout`` seconds have passed; never raises for a
    failed check (call :meth:`VerifyResult.raise_for_failure`).

    ``timeout=0`` makes exactly one attempt. Requests are bounded by the remaining budget (at most 10 s
    each), so the whole call overruns ``timeout`` by at most one attempt's requests. ``opener``: a
    ``urllib.request.OpenerDirector`` (default: ``build_opener()``, which follows redirects).
    """
    start = clock()
    deadline = start + timeout
    delay = interval

    def get(url: str) -> Response:
        remaining = deadline - clock()
        return fetch(url, min(REQUEST_TIMEOUT, max(1.0, remaining)), opener)

    attempts = 0
    while True:
        attempts += 1
        checks = run_checks(exp, get)
        remaining = deadline - clock()
        if all(check.ok for check in checks) or remaining <= 0:
            return VerifyResult(exp.base, checks, attempts, clock() - start)
        sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_INTERVAL)
