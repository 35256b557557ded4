"""Fixtures for plan/apply against moto's server: a project folder, a CLI runner, an API-call recorder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from dl.cli import main
from tests.conftest import make_db


@pytest.fixture
def project(tmp_path, aws, shared_cache, monkeypatch):
    """A git-like folder with two databases; cwd; fast polling; the shared cache."""
    (tmp_path / ".git").mkdir()
    make_db(tmp_path / "alpha.db", {"orders": 3, "customers": 2})
    make_db(tmp_path / "beta.db", {"cities": 4})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_CACHE_DIR", str(shared_cache))
    monkeypatch.setenv("DL_POLL_SECONDS", "0.05")
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "CI"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def write_manifest(folder: Path, text: str) -> Path:
    path = folder / "datasette-lambda.yml"
    path.write_text(text)
    return path


def dl(*args: str, input: str | None = None):
    """Run the CLI in-process; returns click's Result (stdout and stderr mixed in .output)."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


EVERY_CALL: set[str] = set()  # every operation any test's `calls` fixture saw (for the IAM policy check)


@pytest.fixture
def every_call() -> set[str]:
    """EVERY_CALL of this conftest module (tests importing the module by name would get another copy)."""
    return EVERY_CALL


@pytest.fixture
def calls(monkeypatch):
    """Every AWS API call made through dl's adapter, as "service.Operation" strings."""
    from dl.aws import client as aws

    recorded: list[str] = []
    original = aws.Aws._count

    def count(self, model, **kwargs):
        recorded.append(f"{model.service_model.service_name}.{model.name}")
        EVERY_CALL.add(f"{model.service_model.service_name}.{model.name}")
        return original(self, model, **kwargs)

    monkeypatch.setattr(aws.Aws, "_count", count)
    return recorded


def plan_json(*args: str) -> dict:
    result = dl("plan", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    start = result.output.index("{")
    return json.loads(result.output[start:])


def add_rows(db: Path, table: str, n: int) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            f"insert into {table} (name, value) values (?, ?)", [(f"new-{i}", i) for i in range(n)]
        )
    conn.close()


def add_column(db: Path, table: str, column: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(f"alter table {table} add column {column} text")
    conn.close()


def cfn():
    return boto3.client("cloudformation")
