"""The sticky comment shows the pull request's preview URLs beside the plan: moto's server for AWS, the fake
GitHub API for the pull request."""

from __future__ import annotations

import sqlite3

import boto3
import pytest
from click.testing import CliRunner
from fake_github import PR_NUMBER

from dl.cli import main

pytestmark = pytest.mark.slow  # each apply builds the Lambda packages

MANIFEST = """\
project: shop
region: eu-west-1
instances:
  alpha:
    databases: [alpha.db]
  beta:
    databases: [beta.db]
"""


def add_rows(path, n: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("create table if not exists items (id integer primary key, name text)")
        conn.executemany("insert into items (name) values (?)", [(f"row {i}",) for i in range(n)])
    conn.close()


def dl(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_comment_shows_live_previews_and_those_not_deployed(aws, github_env, monkeypatch):
    monkeypatch.setenv("DL_POLL_SECONDS", "0.05")
    workspace = github_env.workspace
    (workspace / ".git").mkdir()
    (workspace / "datasette-lambda.yml").write_text(MANIFEST, encoding="utf-8")
    for name in ("alpha", "beta"):
        add_rows(workspace / f"{name}.db", 2)
    assert dl("apply", "--yes", "--no-verify").exit_code == 0

    # the pull request changes both; only alpha's preview is deployed so far
    for name in ("alpha", "beta"):
        add_rows(workspace / f"{name}.db", 3)
    result = dl("apply", "--preview", str(PR_NUMBER), "--target", "alpha", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    # moto does not emulate AWS::Lambda::Url: make the URL CloudFormation would have made
    function = f"shop--pr{PR_NUMBER}--alpha"
    url = boto3.client("lambda").create_function_url_config(FunctionName=function, AuthType="NONE")[
        "FunctionUrl"
    ]

    result = dl("plan", "--comment", "--preview", str(PR_NUMBER))
    assert result.exit_code == 0, result.output
    [body] = github_env.fake.bodies(PR_NUMBER)
    assert "2 to update" in body  # the production plan: what merging would do
    assert f"**Previews of #{PR_NUMBER}** (unmerged data, public URLs):" in body
    [alpha] = [line for line in body.splitlines() if line.startswith("| alpha | ")]
    assert alpha.endswith(f"]({url.rstrip('/')}/) |")  # a link to the live preview
    assert "| beta | *not deployed* |" in body
    assert f"preview of #{PR_NUMBER}: beta: not deployed" in result.output


def test_gc_removes_the_previews_of_closed_pull_requests(aws, github_env, monkeypatch):
    """`dl preview gc` asks GitHub (GITHUB_TOKEN set) which pull requests are closed: theirs go, however
    young; an open pull request's previews stay."""
    monkeypatch.setenv("DL_POLL_SECONDS", "0.05")
    workspace = github_env.workspace
    (workspace / ".git").mkdir()
    (workspace / "datasette-lambda.yml").write_text(MANIFEST, encoding="utf-8")
    for name in ("alpha", "beta"):
        add_rows(workspace / f"{name}.db", 2)
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    add_rows(workspace / "alpha.db", 1)
    for number in (7, 8):
        assert dl("apply", "--preview", str(number), "--yes", "--no-verify").exit_code == 0
    github_env.fake.add_pull(7, merge_commit="c" * 40)  # merged, so closed
    github_env.fake.add_pull(8)  # open

    result = dl("preview", "gc", "--older-than", "7d")
    assert result.exit_code == 0, result.output
    assert "pull request #7 (pull request closed): removing alpha" in result.output
    stacks = {s["StackName"] for s in boto3.client("cloudformation").describe_stacks()["Stacks"]}
    assert "shop--pr8--alpha" in stacks and "shop--pr7--alpha" not in stacks
    asked = [r.path for r in github_env.fake.requests if "/pulls/" in r.path]
    assert asked == ["/repos/octo/data/pulls/7", "/repos/octo/data/pulls/8"]
