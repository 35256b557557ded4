"""Shared fixtures.

AWS: a real moto server (``moto.server.ThreadedMotoServer``) on 127.0.0.1, reached through the standard
``AWS_ENDPOINT_URL``. Nothing in the tests fakes boto3 by hand.

Template gate (tests/support/template_gate.py): every template any emulator of the suite receives (this
session's server, and the `--sandbox` emulator of a `python -m dl` subprocess, through
``dl.local.sandbox.emulator_hook``) is checked for nulls and cfn-lint findings; the emulator refuses it like AWS
would, and the test during which that happened fails (``_template_gate``). A test that means to send a bad
template takes the findings it expects from the ``template_gate`` fixture.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.support import template_gate as gate

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """Environment for the gate, inherited by every subprocess: the hook, where findings go, the cache, and
    an import path on which `tests.support.template_gate` resolves."""
    findings = Path(tempfile.mkdtemp(prefix="dl-template-gate-")) / "findings.jsonl"
    findings.touch()
    os.environ[gate.FINDINGS_ENV] = str(findings)
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider: then a folder of the user's own
    os.environ[gate.CACHE_ENV] = str(
        cache.mkdir("template-gate")
        if cache
        else Path(tempfile.gettempdir()) / f"dl-template-gate-{os.getuid()}"
    )
    os.environ["DL_EMULATOR_HOOK"] = "tests.support.template_gate:install"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    config._template_gate_log = gate.FindingsLog(findings)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One tool cache for the whole session (every folder that deploys or serves shares it): dependency trees are downloaded and compiled once."""
    return tmp_path_factory.mktemp("dl-cache")


@pytest.fixture
def template_gate(request):
    """The gate's findings log: ``template_gate.new()`` takes what the emulators refused since the last look
    (so a test that sends a bad template on purpose can assert on it instead of failing)."""
    return request.config._template_gate_log


@pytest.fixture(autouse=True)
def _template_gate(request):
    """Fail the test during which an emulator refused a template (a null or a cfn-lint finding)."""
    log = request.config._template_gate_log
    gate.drain()
    log.new()  # whatever came before belongs to an earlier test
    yield
    gate.drain()  # checks still running beside requests (DL_TEMPLATE_GATE_MODE=record)
    refused = log.new()
    if refused:
        lines = [f"{f['action']} {f['stack']} ({f['region']}): {'; '.join(f['findings'])}" for f in refused]
        pytest.fail("the emulator found templates AWS would refuse:\n" + "\n".join(lines), pytrace=False)


@pytest.fixture(scope="session")
def moto_server():
    """A moto server for the whole session; yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its request log drowns test failures
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    from dl.local.sandbox import emulator_hook

    emulator_hook(server)  # the template gate (DL_EMULATOR_HOOK, set in pytest_configure)
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A clean emulated AWS account for one test: the environment points boto3 at moto's server."""
    req = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(req).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


def make_db(path: Path, tables: dict[str, int] | None = None) -> Path:
    """Create a small SQLite database: {table: row count}; each table has id, name, value columns."""
    tables = tables if tables is not None else {"items": 3}
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        for table, rows in tables.items():
            conn.execute(f'create table "{table}" (id integer primary key, name text, value real)')
            conn.executemany(
                f'insert into "{table}" (name, value) values (?, ?)',
                [(f"{table}-{i}", i * 1.5) for i in range(rows)],
            )
    conn.close()
    return path


@pytest.fixture
def db_factory(tmp_path):
    """Build databases under tmp_path: ``db_factory("a.db", {"t": 10})``."""

    def factory(name: str = "data.db", tables: dict[str, int] | None = None) -> Path:
        return make_db(tmp_path / name, tables)

    return factory
