"""`dl plan --comment` end to end: moto's server for AWS, the fake GitHub API for the pull request."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from fake_github import PR_NUMBER

from dl.cli import main
from dl.render.comment import parse_marker

pytestmark = pytest.mark.slow  # each plan builds the Lambda package

MANIFEST = """\
project: gitops-test
region: eu-west-1
instances:
{instances}
"""


def make_db(path) -> None:
    """A small SQLite database with one table."""
    with sqlite3.connect(path) as conn:
        conn.execute("create table if not exists items (id integer primary key, name text)")
        conn.execute("insert into items (name) values ('a'), ('b')")
    conn.close()


def write_manifest(workspace, *names: str) -> str:
    (workspace / ".git").mkdir(exist_ok=True)
    lines = []
    for name in names:
        make_db(workspace / f"{name}.db")
        lines.append(f"  {name}:\n    databases: [{name}.db]")
    path = workspace / "datasette-lambda.yml"
    path.write_text(MANIFEST.format(instances="\n".join(lines)), encoding="utf-8")
    return str(path)


def plan(*args: str):
    return CliRunner().invoke(main, ["plan", "--comment", *args], catch_exceptions=False)


def test_plan_comment_creates_then_leaves_then_updates_the_comment(aws, github_env):
    fake = github_env.fake
    manifest = write_manifest(github_env.workspace, "alpha")
    first = plan("-f", manifest)
    assert first.exit_code == 0, first.output
    [body] = fake.bodies(PR_NUMBER)
    assert "manifest=datasette-lambda.yml " in body.splitlines()[0]
    assert "1 to create" in body and "alpha" in body and github_env.head_sha in body
    # not a git checkout: what was planned cannot be named, so the plan is shown but cannot count as reviewed
    assert "Planned the working directory" in body and parse_marker(body).state == "plan"
    assert "alpha" in github_env.summary_text()

    fake.requests.clear()
    again = plan("-f", manifest)
    assert again.exit_code == 0, again.output
    assert fake.writes() == []  # same plan: nothing rewritten

    manifest = write_manifest(github_env.workspace, "alpha", "beta")
    changed = plan("-f", manifest, "--detailed-exitcode")
    assert changed.exit_code == 2, changed.output
    assert [w.method for w in fake.writes()] == ["PATCH"]
    [body] = fake.bodies(PR_NUMBER)
    assert "2 to create" in body and "beta" in body


def test_plan_comment_api_error_fails_the_command(aws, github_env):
    github_env.fake.fail_next("POST", 403, "Resource not accessible by integration")
    result = CliRunner().invoke(
        main, ["plan", "--comment", "-f", write_manifest(github_env.workspace, "alpha")]
    )
    assert result.exit_code == 1
    assert "403" in result.output and "Resource not accessible by integration" in result.output


def test_plan_comment_without_aws_credentials_explains_why(github_env, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(
        main, ["plan", "--comment", "-f", write_manifest(github_env.workspace, "alpha")]
    )
    assert result.exit_code == 1
    [body] = github_env.fake.bodies(PR_NUMBER)
    assert "The plan could not be made" in body


def test_comment_outside_github_actions_says_so_before_building(tmp_path, monkeypatch):
    for name in ("GITHUB_REPOSITORY", "GITHUB_ACTIONS", "GITHUB_EVENT_PATH", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path / "cache"))
    manifest = write_manifest(tmp_path, "alpha")
    result = CliRunner().invoke(main, ["plan", "--comment", "-f", manifest])
    assert result.exit_code == 1
    assert result.output == (
        "Error: --comment posts the plan on the pull request, so it works only inside GitHub Actions "
        "(GITHUB_REPOSITORY is not set here); without --comment the plan is printed\n"
    )
    assert not (tmp_path / "cache").exists()  # nothing was built
