"""Verified deploys against `dl serve` on 127.0.0.1 standing in for the public endpoint.

`dl serve` runs the instance's real Lambda package (Mangum, the runtime, inspect data) behind a Function URL
event translation, so the checks see what they would see through CloudFront. Failures a healthy instance cannot
produce (500s, flaky answers) come from a tiny stdlib HTTP server.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import datasette
import pytest

from dl.apply.verify import (
    DatabaseExpectation,
    Expectation,
    VerificationFailed,
    expectation_for,
    pick_table,
    verify_instance,
)
from dl.build.inspection import inspect_database
from dl.errors import DlError
from dl.local.serve import Serve
from dl.manifest.lines import LINES, locked_version
from tests.conftest import make_db

VERSION = datasette.__version__
PREFIX = "/data/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=LINES)
def line(request) -> str:
    """The Datasette line the served instance runs: the checks work on both."""
    return request.param


@pytest.fixture(scope="module")
def version(line) -> str:
    return locked_version(line)


@pytest.fixture(scope="module")
def site(tmp_path_factory, line):
    """`dl serve` of one instance with two databases under /data/; yields (URL without prefix, {db: path})."""
    folder = tmp_path_factory.mktemp("site")
    dbs = {
        "shop": make_db(folder / "shop.db", {"items": 3, "orders": 7, "my items/2024": 5}),
        "notes": make_db(folder / "notes.db", {"notes": 12}),
    }
    (folder / "datasette-lambda.yml").write_text(
        f"project: demo\ninstances:\n  site:\n    prefix: {PREFIX}\n    databases: [shop.db, notes.db]\n"
        f'    datasette: "{line}"\n'
    )
    serve = Serve(str(folder / "datasette-lambda.yml"), port=0, log=lambda line: None)
    try:
        serve.start()
        url = serve.urls["site"]
        assert url.endswith(PREFIX)
        yield url.removesuffix(PREFIX), dbs
    finally:
        serve.stop()


def healthy(url: str, version: str) -> Expectation:
    return Expectation(
        url=url,
        prefix=PREFIX,
        datasette_version=version,
        databases=(
            DatabaseExpectation("shop", "my items/2024", 5),
            DatabaseExpectation("notes", "notes", 12),
        ),
    )


@pytest.mark.slow
def test_a_healthy_instance_passes_first_time(site, version):
    url, _ = site
    result = verify_instance(healthy(url, version), timeout=0)
    assert result.ok, result.message()
    assert result.attempts == 1
    assert [c.what for c in result.checks] == [
        "Datasette version",
        "database page shop",
        "row count of shop/my items/2024",
        "database page notes",
        "row count of notes/notes",
    ]
    assert result.message().startswith(f"verified {url}{PREFIX}: 5 checks passed (1 attempt")
    result.raise_for_failure()  # does not raise


@pytest.mark.slow
def test_expectation_from_the_deployed_databases_inspection_passes(site, version):
    url, dbs = site
    inspections = {name: inspect_database(path) for name, path in dbs.items()}
    exp = expectation_for(url + "/", PREFIX, version, inspections)
    assert exp.databases == (
        DatabaseExpectation("shop", "items", 3),
        DatabaseExpectation("notes", "notes", 12),
    )
    assert verify_instance(exp, timeout=0).ok


@pytest.mark.slow
def test_a_wrong_row_count_fails_with_expected_and_actual(site, version):
    url, _ = site
    exp = Expectation(url, PREFIX, version, (DatabaseExpectation("notes", "notes", 13),))
    result = verify_instance(exp, timeout=0)
    assert not result.ok
    with pytest.raises(VerificationFailed) as failure:
        result.raise_for_failure()
    assert isinstance(failure.value, DlError)
    message = str(failure.value)
    assert message.startswith(f"verification of {url}{PREFIX} failed (1 attempt in ")
    assert "row count of notes/notes: expected HTTP 200 with 13 rows, got HTTP 200 with 12 rows" in message
    assert f"({url}{PREFIX}notes/notes.json?_size=1&_extra=count&_dl_verify=" in message
    assert "database page notes" not in message  # only failed checks are listed


@pytest.mark.slow
def test_a_wrong_datasette_version_fails(site, version):
    url, _ = site
    exp = Expectation(url, PREFIX, "0.64.8", ())
    [failure] = verify_instance(exp, timeout=0).failures
    assert str(failure).startswith(
        f"Datasette version: expected HTTP 200 with Datasette 0.64.8, got HTTP 200 with Datasette {version}"
    )


@pytest.mark.slow
def test_a_missing_database_or_table_fails_with_the_404_body(site, version):
    url, _ = site
    exp = Expectation(
        url, PREFIX, version, (DatabaseExpectation("gone"), DatabaseExpectation("notes", "nope", 1))
    )
    failures = [str(f) for f in verify_instance(exp, timeout=0).failures]
    assert failures[0].startswith("database page gone: expected HTTP 200, got HTTP 404: '")
    assert (
        "Error 404 Database not found Powered by Datasette'" in failures[0]
    )  # 1.0's page starts with its menu
    assert failures[1].startswith(
        "row count of notes/nope: expected HTTP 200 with 1 rows, got HTTP 404: "
        '\'{"ok": false, "error": "Table not found'
    )


class StubHandler(BaseHTTPRequestHandler):
    """Answers versions.json like Datasette, and everything else with `status` (default 500)."""

    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        if "versions.json" in self.path:
            code, body = 200, json.dumps({"datasette": {"version": VERSION}}).encode()
        elif server.healthy_after is not None and len(server.requests) > server.healthy_after:
            code, body = 200, json.dumps({"filtered_table_rows_count": 4}).encode()
        else:
            code = 500
            body = b"<html><head><title>Error 500</title><style>p{}</style></head><body><h1>Error 500</h1>"
            body += b"<p>Internal server error: database is locked &amp; gone</p></body></html>"
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.requests, server.healthy_after = [], None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stub_url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_a_500_fails_with_status_and_a_readable_body_excerpt(stub):
    exp = Expectation(stub_url(stub), "/", VERSION, (DatabaseExpectation("shop", "items", 4),))
    result = verify_instance(exp, timeout=0)
    assert [str(f) for f in result.failures] == [
        "database page shop: expected HTTP 200, got HTTP 500: "
        "'Error 500 Internal server error: database is locked & gone' "
        f"({stub_url(stub)}/shop?_dl_verify={stub.requests[1].split('=')[1]})",
        "row count of shop/items: expected HTTP 200 with 4 rows, got HTTP 500: "
        "'Error 500 Internal server error: database is locked & gone' "
        f"({stub_url(stub)}/shop/items.json?_size=1&_extra=count&_dl_verify={stub.requests[1].split('=')[1]})",
    ]


def test_retries_stop_when_the_budget_is_spent(stub):
    """A fake clock that only sleeping advances: backoff 2, 4, then what is left of the 10 s budget."""
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    exp = Expectation(stub_url(stub), "/", VERSION, (DatabaseExpectation("shop"),))
    result = verify_instance(exp, timeout=10, interval=2, clock=lambda: now[0], sleep=sleep)
    assert not result.ok
    assert sleeps == [2, 4, 4]
    assert result.attempts == 4
    assert len(stub.requests) == 4 * 2  # versions + database page, each attempt
    assert "(4 attempts in 10s)" in result.message()


def test_a_transient_failure_is_retried_until_it_passes(stub):
    stub.healthy_after = 3  # the first attempt's 3 requests fail, the next attempt passes
    sleeps = []
    exp = Expectation(stub_url(stub), "/", VERSION, (DatabaseExpectation("shop", "items", 4),))
    result = verify_instance(exp, timeout=60, interval=0.01, sleep=sleeps.append)
    assert result.ok, result.message()
    assert result.attempts == 2
    assert sleeps == [0.01]


def test_each_attempt_defeats_caches_with_a_fresh_nonce(stub):
    exp = Expectation(stub_url(stub), "/", VERSION, ())
    verify_instance(exp, timeout=0)
    verify_instance(exp, timeout=0)
    assert len(set(stub.requests)) == 2


def test_nothing_listening_is_reported_as_no_answer():
    exp = Expectation(f"http://127.0.0.1:{free_port()}", "/", VERSION, ())
    [failure] = verify_instance(exp, timeout=0).failures
    assert "expected HTTP 200 with Datasette" in str(failure)
    assert "got no answer: [Errno 111] Connection refused" in str(failure)


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        ({"b": {"count": 2}, "a": {"count": 1}}, ("a", 1)),
        ({"a_fts": {"count": None}, "a_fts_data": {"count": 3}, "b": {"count": 2}}, ("b", 2)),
        ({"sqlite_stat1": {"count": 1}, "t": {"count": 0}}, ("t", 0)),
        ({"a_fts_data": {"count": 3}, "a_fts": {"count": None}}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_pick_table_skips_hidden_and_uncountable_tables(tables, expected):
    assert pick_table(tables) == expected


@pytest.mark.slow
def test_a_database_without_tables_only_checks_its_page(site, version, tmp_path):
    url, _ = site
    exp = expectation_for(url, PREFIX, version, {"notes": {"tables": {}}})
    assert [c.what for c in verify_instance(exp, timeout=0).checks] == [
        "Datasette version",
        "database page notes",
    ]
