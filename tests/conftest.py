"""Shared fixtures.

AWS: a real moto server (``moto.server.ThreadedMotoServer``) on 127.0.0.1, reached through the standard
``AWS_ENDPOINT_URL``. Nothing in the tests fakes boto3 by hand.
"""

from __future__ import annotations

import sqlite3
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def moto_server():
    """A moto server for the whole session; yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its request log drowns test failures
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
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
