"""The review loop end to end: `dl plan --comment` on a pull request's test merge, then `dl apply
--require-reviewed-plan` on the push that merged it. moto's server for AWS, the fake GitHub API for the pull
request, real git checkouts (a depth-1 clone of a merge commit, as actions/checkout makes on pull_request)."""

from __future__ import annotations

import os
import sqlite3

import boto3
import pytest
from click.testing import CliRunner
from fake_github import PR_NUMBER
from git_checkout import merge_checkout

from dl.cli import main
from dl.render.comment import parse_marker

pytestmark = pytest.mark.slow  # plans build the Lambda package

MANIFEST = """\
project: review-test
region: eu-west-1
instances:
  alpha:
    databases: [alpha.db]
"""


def make_db(path, rows: int = 2) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("create table if not exists items (id integer primary key, name text)")
        conn.executemany("insert into items (name) values (?)", [(f"n{i}",) for i in range(rows)])
    conn.close()


def populate(folder) -> None:
    (folder / "datasette-lambda.yml").write_text(MANIFEST, encoding="utf-8")
    make_db(folder / "alpha.db")


def dl(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def merged(aws, github_env, tmp_path, monkeypatch):
    """A pull request's test merge checked out (cwd), with the event naming its head and base."""
    checkout = merge_checkout(tmp_path / "git", populate)
    monkeypatch.chdir(checkout.path)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(checkout.path))
    monkeypatch.setenv("GITHUB_SHA", checkout.merge)
    event = {
        "number": PR_NUMBER,
        "pull_request": {
            "number": PR_NUMBER,
            "head": {"sha": checkout.head, "repo": {"full_name": "octo/data"}},
            "base": {"sha": checkout.base, "repo": {"full_name": "octo/data"}},
        },
    }
    github_env.write_event(event)
    return checkout


def on_push(github_env, monkeypatch, sha: str) -> None:
    """Switch the environment to the push to main that the merge made."""
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_SHA", sha)
    github_env.write_event({"ref": "refs/heads/main", "after": sha})


def our_body(github_env) -> str:
    """dl's comment, with Markdown escapes removed so that prose can be matched."""
    [body] = [b for b in github_env.fake.bodies(PR_NUMBER) if parse_marker(b)]
    return body.replace("\\", "")


def stacks() -> list[str]:
    cfn = boto3.client("cloudformation", region_name="eu-west-1")
    return [
        s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"
    ]


def test_the_plan_names_the_head_and_base_and_a_failed_plan_replaces_it(merged, github_env):
    first = dl("plan", "--comment")
    assert first.exit_code == 0, first.output
    body = our_body(github_env)
    assert parse_marker(body).state == "review" and parse_marker(body).digest
    assert f"head {merged.head} merged onto {merged.base}" in body and "1 to create" in body

    (merged.path / "datasette-lambda.yml").write_text(MANIFEST + "    memroy: 512\n", encoding="utf-8")
    failed = dl("plan", "--comment")
    assert failed.exit_code == 1
    body = our_body(github_env)
    assert parse_marker(body).state == "failed" and parse_marker(body).digest == ""
    assert "The plan failed: the manifest has 1 problem." in body
    assert "datasette-lambda.yml:6:5: instances.alpha.memroy: unknown key" in body
    assert "1 to create" not in body  # the old plan is gone
    assert (
        "::error file=datasette-lambda.yml,line=6,col=5,title=datasette-lambda::instances.alpha.memroy"
        in (failed.output)
    )

    (merged.path / "datasette-lambda.yml").write_text(MANIFEST, encoding="utf-8")
    (merged.path / "alpha.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)  # a corrupt database
    corrupt = dl("plan", "--comment")
    assert corrupt.exit_code == 1
    body = our_body(github_env)
    assert parse_marker(body).state == "failed" and "alpha.db" in body and "1 to create" not in body


def test_apply_applies_the_reviewed_plan_and_reports_back(merged, github_env, monkeypatch):
    assert dl("plan", "--comment").exit_code == 0
    github_env.fake.add_pull(PR_NUMBER, head=merged.head, merge_commit=merged.merge)
    on_push(github_env, monkeypatch, merged.merge)
    result = dl("apply", "--yes", "--no-verify", "--require-reviewed-plan")
    assert result.exit_code == 0, result.output
    assert f"The plan is the one reviewed on pull request #{PR_NUMBER}." in result.output
    assert "review-test-alpha" in stacks()
    body = our_body(github_env)
    assert parse_marker(body).state == "applied" and "Apply complete: 1 succeeded, 0 failed." in body
    assert f"Applied commit {merged.merge}, the merge of this pull request." in body
    assert "Apply complete" in github_env.summary_text()
    assert "summary<<" in github_env.output.read_text()


def test_apply_refuses_a_plan_that_changed_after_review(merged, github_env, monkeypatch):
    assert dl("plan", "--comment").exit_code == 0
    reviewed = parse_marker(our_body(github_env)).digest
    github_env.fake.add_pull(PR_NUMBER, head=merged.head, merge_commit=merged.merge)
    on_push(github_env, monkeypatch, merged.merge)
    make_db(merged.path / "alpha.db", rows=5)  # the data changed after the review
    why = [
        "refusing to apply: The plan made now differs from the one reviewed on pull request #7",
        "refusing to apply: The comment on pull request #7 does not hold a plan made for review",
    ]
    for expected in why:  # re-running the job does not approve its own refusal
        result = dl("apply", "--yes", "--no-verify", "--require-reviewed-plan")
        assert result.exit_code == 1
        assert expected in result.output
        assert stacks() == []  # nothing written to AWS
        body = our_body(github_env)
        marker = parse_marker(body)
        assert marker.state == "not-reviewed" and marker.digest != reviewed
        assert "Not applied: this plan was not reviewed." in body and "1 to create" in body
        assert "Re-run the pull request's plan and review it; then re-run this job." in body
    summary = github_env.summary_text().replace("\\", "")
    assert "Not applied: this plan was not reviewed." in summary


def test_a_push_without_a_pull_request_is_refused_unless_allowed(merged, github_env, monkeypatch):
    on_push(github_env, monkeypatch, merged.merge)  # no pull request holds the commit
    result = dl("apply", "--yes", "--no-verify", "--require-reviewed-plan")
    assert result.exit_code == 1 and "not merged through a pull request" in result.output
    assert stacks() == [] and github_env.fake.writes() == []
    allowed = dl("apply", "--yes", "--no-verify", "--require-reviewed-plan", "--allow-unreviewed")
    assert allowed.exit_code == 0, allowed.output
    assert "review-test-alpha" in stacks()


def test_a_fork_without_credentials_gets_one_clear_line(merged, github_env, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    event = {
        "pull_request": {"number": PR_NUMBER, "head": {"sha": merged.head, "repo": {"full_name": "x/data"}}}
    }
    github_env.write_event(event)
    result = dl("plan", "--comment")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        "::error title=datasette-lambda::No plan: this pull request"
    )
    assert "comes from a fork" in github_env.summary_text()
    assert github_env.fake.writes() == []  # a fork's token cannot comment: no 403 noise
    assert os.environ["GITHUB_EVENT_NAME"] == "pull_request"


def test_a_cancelled_plan_does_not_leave_the_old_plan_in_the_comment(merged, github_env, monkeypatch):
    assert dl("plan", "--comment").exit_code == 0
    from dl.commands import pipeline

    def cancelled(*args, **kwargs):
        raise KeyboardInterrupt  # what GitHub's cancel (SIGINT, then SIGTERM) turns into

    monkeypatch.setattr(pipeline, "prepare", cancelled)
    result = dl("plan", "--comment")
    assert result.exit_code == 130
    body = our_body(github_env)
    assert (
        parse_marker(body).state == "failed" and "the run was cancelled" in body and "1 to create" not in body
    )


def test_apply_refuses_when_dls_comment_was_edited_to_show_another_plan(merged, github_env, monkeypatch):
    # Every workflow of the repository posts as github-actions[bot], so any of them (one pushed on another
    # branch, say) can edit dl's comment: keep the marker and its digest, change what the reviewer reads.
    assert dl("plan", "--comment").exit_code == 0
    [comment] = github_env.fake.comments[PR_NUMBER]
    marker_line, rest = comment["body"].split("\n", 1)
    assert "1 to create" in rest
    comment["body"] = marker_line + "\n" + rest.replace("1 to create", "0 to create").split("<details>")[0]
    github_env.fake.add_pull(PR_NUMBER, head=merged.head, merge_commit=merged.merge)
    on_push(github_env, monkeypatch, merged.merge)
    result = dl("apply", "--yes", "--no-verify", "--require-reviewed-plan")
    assert result.exit_code == 1
    assert "does not show the plan its digest names" in result.output
    assert stacks() == []  # nothing written to AWS
    assert parse_marker(our_body(github_env)).state == "not-reviewed"


def test_the_actions_saved_plan_applies_when_the_reviewed_comment_shows_it(merged, github_env, monkeypatch):
    # The Action plans to a file, then applies that file: the comment is checked against the saved plan.
    assert dl("plan", "--comment").exit_code == 0
    github_env.fake.add_pull(PR_NUMBER, head=merged.head, merge_commit=merged.merge)
    on_push(github_env, monkeypatch, merged.merge)
    saved = merged.path.parent / "plan.json"
    assert dl("plan", "--out", str(saved)).exit_code == 0
    result = dl("apply", str(saved), "--yes", "--no-verify", "--require-reviewed-plan")
    assert result.exit_code == 0, result.output
    assert "review-test-alpha" in stacks()


SECRET_MANIFEST = MANIFEST + "    secrets: {API_TOKEN: CITIES_API_TOKEN}\n"


@pytest.mark.parametrize("plan_sees_the_secret", [False, True])
def test_a_rotated_secret_applies_only_when_the_reviewed_plan_saw_it(
    merged, github_env, monkeypatch, plan_sees_the_secret
):
    # A secret's value enters the plan only as a keyed fingerprint; a plan job without the secret assumes it
    # unchanged. So a rotation is reviewed only when the plan job gets the secret too (README says so).
    (merged.path / "datasette-lambda.yml").write_text(SECRET_MANIFEST, encoding="utf-8")
    monkeypatch.setenv("CITIES_API_TOKEN", "v1")
    assert dl("apply", "--yes", "--no-verify").exit_code == 0  # deployed before, with the old value
    if plan_sees_the_secret:
        monkeypatch.setenv("CITIES_API_TOKEN", "v2")
    else:
        monkeypatch.delenv("CITIES_API_TOKEN")
    assert dl("plan", "--comment").exit_code == 0
    github_env.fake.add_pull(PR_NUMBER, head=merged.head, merge_commit=merged.merge)
    on_push(github_env, monkeypatch, merged.merge)
    monkeypatch.setenv("CITIES_API_TOKEN", "v2")  # the apply job has the new value
    result = dl("apply", "--yes", "--no-verify", "--require-reviewed-plan")
    if plan_sees_the_secret:
        assert result.exit_code == 0, result.output
        assert parse_marker(our_body(github_env)).state == "applied"
    else:
        assert result.exit_code == 1
        assert "differs from the one reviewed" in result.output
