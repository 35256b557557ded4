"""The sticky comment against a fake GitHub REST API on 127.0.0.1, plus job summary and step outputs."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import pytest
from fake_github import HEAD_SHA, PR_NUMBER, FakeGitHub, pull_request_event
from git_checkout import merge_checkout

from dl.errors import DlError, Problem
from dl.github.client import (
    GitHubClient,
    comment_on_pull_request,
    merged_pull_request,
    next_link,
    publish_comment,
)
from dl.github.events import Checkout, explain_missing_credentials, planned_line, read_checkout
from dl.github.outputs import annotation, write_apply_summary, write_outputs, write_plan_summary
from dl.github.review import refuse_base_checkout
from dl.render.comment import (
    COMMENT_LIMIT,
    STEP_SUMMARY_LIMIT,
    ApplyReport,
    CommentParts,
    marker,
    no_credentials_parts,
)
from dl.render.markdown import code_block

COMMENTS = f"/repos/octo/data/issues/{PR_NUMBER}/comments"
SUMMARY = "**Plan:** 1 to create, 0 to update, 0 to destroy."


def plan(summary: str = SUMMARY, body: str = "- database `fixtures.db`") -> CommentParts:
    return CommentParts(summary=summary, sections=(("fixtures: create", body),))


def at(hour: int) -> datetime:
    return datetime(2025, 5, 1, hour, 0, tzinfo=UTC)


def test_first_run_creates_the_comment_and_writes_the_job_summary(github_env):
    fake = github_env.fake
    result = comment_on_pull_request(plan(), manifest="datasette-lambda.yml", now=at(12))
    assert result.action == "created"
    [post] = fake.writes()
    assert (post.method, post.path) == ("POST", COMMENTS)
    assert post.headers["authorization"] == "Bearer test-token"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    [body] = fake.bodies(PR_NUMBER)
    assert body.startswith("<!-- datasette-lambda:plan manifest=datasette-lambda.yml state=review digest=")
    assert SUMMARY in body and "<details><summary>fixtures: create</summary>" in body
    assert f"Commit {HEAD_SHA}" in body  # the pull request's head, not the merge commit in GITHUB_SHA
    assert "2025\\-05\\-01 12\\:00 UTC" in body
    assert result.comment_id == fake.comments[PR_NUMBER][0]["id"]
    summary = github_env.summary_text()
    assert SUMMARY in summary and "fixtures: create" in summary and "<!--" not in summary


def test_second_run_with_a_new_plan_updates_the_same_comment(github_env):
    fake = github_env.fake
    first = comment_on_pull_request(plan(), now=at(12))
    fake.requests.clear()
    second = comment_on_pull_request(plan(summary="**Plan:** 2 to create."), now=at(13))
    assert second.action == "updated" and second.comment_id == first.comment_id
    [patch] = fake.writes()
    assert (patch.method, patch.path) == ("PATCH", f"/repos/octo/data/issues/comments/{first.comment_id}")
    assert len(fake.bodies(PR_NUMBER)) == 1 and "2 to create" in fake.bodies(PR_NUMBER)[0]


def test_an_unchanged_plan_writes_nothing_even_at_another_time(github_env):
    fake = github_env.fake
    comment_on_pull_request(plan(), now=at(12))
    before = fake.bodies(PR_NUMBER)
    fake.requests.clear()
    result = comment_on_pull_request(plan(), now=at(18))
    assert result.action == "unchanged"
    assert fake.writes() == [] and fake.bodies(PR_NUMBER) == before


def test_the_comment_is_found_beyond_the_first_page(github_env):
    fake = github_env.fake
    for i in range(130):
        fake.add_comment(PR_NUMBER, f"LGTM {i}")
    comment_on_pull_request(plan(), now=at(12))
    for i in range(120):
        fake.add_comment(PR_NUMBER, f"more review {i}")
    fake.requests.clear()
    result = comment_on_pull_request(plan(summary="**Plan:** changed."), now=at(13))
    assert result.action == "updated"
    gets = [r for r in fake.requests if r.method == "GET"]
    assert [r.query.get("page", "1") for r in gets] == ["1", "2"]  # stops at the page holding the comment
    assert all(r.query["per_page"] == "100" for r in gets)
    assert [w.method for w in fake.writes()] == ["PATCH"]
    assert sum("datasette-lambda:plan" in b for b in fake.bodies(PR_NUMBER)) == 1


def test_every_page_is_read_before_creating_a_comment(github_env):
    fake = github_env.fake
    for i in range(250):
        fake.add_comment(PR_NUMBER, f"LGTM {i}")
    comment_on_pull_request(plan(), now=at(12))
    gets = [r for r in fake.requests if r.method == "GET"]
    assert [r.query.get("page", "1") for r in gets] == ["1", "2", "3"]
    assert [w.method for w in fake.writes()] == ["POST"]


def test_each_manifest_has_its_own_comment(github_env):
    fake = github_env.fake
    comment_on_pull_request(plan(), manifest="a/datasette-lambda.yml", now=at(12))
    comment_on_pull_request(plan(), manifest="b/datasette-lambda.yml", now=at(12))
    comment_on_pull_request(plan(summary="**Plan:** new."), manifest="a/datasette-lambda.yml", now=at(13))
    bodies = fake.bodies(PR_NUMBER)
    assert len(bodies) == 2
    assert "manifest=a/datasette-lambda.yml" in bodies[0] and "new." in bodies[0]
    assert "manifest=b/datasette-lambda.yml" in bodies[1] and SUMMARY in bodies[1]


def test_a_comment_quoting_the_marker_is_not_taken_for_ours(github_env):
    fake = github_env.fake
    quoted = "> " + marker("datasette-lambda.yml", "review", "0" * 20) + "\nwhy is this here?"
    fake.add_comment(PR_NUMBER, quoted, login="github-actions[bot]")
    comment_on_pull_request(plan(), now=at(12))
    assert fake.bodies(PR_NUMBER)[0] == quoted and len(fake.bodies(PR_NUMBER)) == 2


def test_a_70000_character_plan_is_posted_shortened_with_the_summary_intact(github_env):
    fake = github_env.fake
    rows = "\n".join(f"+ row {i}: {'x' * 60}" for i in range(1000))
    parts = CommentParts(
        summary=SUMMARY, sections=tuple((f"db{n}: update", code_block(rows)) for n in range(2))
    )
    comment_on_pull_request(parts, now=at(12))  # the fake refuses bodies over 65,536 like GitHub
    [body] = fake.bodies(PR_NUMBER)
    assert len(body) <= COMMENT_LIMIT and SUMMARY in body
    assert "[job summary of this run](https://github.example/octo/data/actions/runs/4242/attempts/1)" in body
    summary = github_env.summary_text()
    assert len(summary) > 120_000 and summary.count("+ row 999:") == 2


def test_an_api_error_fails_with_the_status_and_message(github_env):
    github_env.fake.fail_next("POST", 403, "Resource not accessible by integration")
    with pytest.raises(DlError) as caught:
        comment_on_pull_request(plan(), now=at(12))
    message = str(caught.value)
    assert "403" in message and "Resource not accessible by integration" in message
    assert "pull-requests: write" in message and "test-token" not in message
    assert SUMMARY in github_env.summary_text()  # the job summary was written before the comment


def test_a_validation_error_shows_githubs_details(github_env):
    github_env.fake.fail_next("GET", 422, "Validation Failed")
    with pytest.raises(DlError, match=r"GET .*/issues/7/comments failed: 422 .*Validation Failed"):
        comment_on_pull_request(plan(), now=at(12))


def test_bad_credentials_fail_without_showing_the_token(github_env, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrongtoken")
    with pytest.raises(DlError) as caught:
        comment_on_pull_request(plan(), now=at(12))
    assert "401" in str(caught.value) and "Bad credentials" in str(caught.value)
    assert "ghs_wrongtoken" not in str(caught.value)


def test_an_unreachable_api_fails_clearly(github_env, monkeypatch):
    github_env.fake.stop()
    with pytest.raises(DlError, match="GitHub API GET .* failed"):
        comment_on_pull_request(plan(), now=at(12))


def test_missing_token_or_pull_request_is_explained(github_env, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(DlError, match="GITHUB_TOKEN is not set"):
        comment_on_pull_request(plan(), now=at(12))
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    github_env.write_event({"ref": "refs/heads/main", "after": "a" * 40})
    with pytest.raises(DlError, match="'push' event, not a pull request"):
        comment_on_pull_request(plan(), now=at(12))


def test_issue_comment_events_on_pull_requests_are_supported(github_env, monkeypatch):
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    github_env.write_event({"issue": {"number": 9, "pull_request": {"url": "..."}}, "comment": {"id": 1}})
    comment_on_pull_request(plan(), now=at(12))
    assert len(github_env.fake.bodies(9)) == 1


def test_github_enterprise_api_root_with_a_path(github_env, monkeypatch):
    with FakeGitHub(root="/api/v3") as enterprise:
        monkeypatch.setenv("GITHUB_API_URL", enterprise.api_url)
        for i in range(101):
            enterprise.add_comment(PR_NUMBER, f"c{i}")
        comment_on_pull_request(plan(), now=at(12))
        assert len(enterprise.bodies(PR_NUMBER)) == 102
        assert len([r for r in enterprise.requests if r.method == "GET"]) == 2


def test_fork_pull_request_gets_a_no_credentials_comment(github_env):
    github_env.write_event(pull_request_event(head_repo="stranger/data"))
    reason = explain_missing_credentials(os.environ)
    assert "comes from a fork" in reason
    comment_on_pull_request(no_credentials_parts(reason, manifest="datasette-lambda.yml"), now=at(12))
    [body] = github_env.fake.bodies(PR_NUMBER)
    assert "The plan could not be made" in body and "comes from a fork" in body


def test_publish_comment_requires_our_marker(github_env):
    with pytest.raises(ValueError):
        publish_comment("no marker", manifest="datasette-lambda.yml")


def test_link_header_parsing():
    header = '<https://api/x?page=2>; rel="next", <https://api/x?page=5>; rel="last"'
    assert next_link(header) == "https://api/x?page=2"
    assert next_link('<https://api/x?page=1>; rel="prev", <https://api/x?page=1>; rel="first"') is None
    assert next_link("") is None


def test_plan_and_apply_summaries_append_to_the_job_summary(github_env):
    write_plan_summary(plan())
    write_apply_summary(
        ApplyReport(
            summary="**Apply complete.**",
            changes=(("fixtures", "created"),),
            urls=(("fixtures", "https://d1.example.net/"),),
        )
    )
    text = github_env.summary_text()
    assert text.index(SUMMARY) < text.index("**Apply complete.**")
    assert "](https://d1.example.net/) |" in text  # a link in the URL table


def test_writes_to_one_steps_summary_stay_within_githubs_limit_together(github_env):
    # The Action plans and applies in one step: GitHub refuses a step's whole summary over 1 MiB ("upload
    # aborted"), counting every write to it, so each write fits in the room the earlier ones left.
    row = "| `fixtures` | " + "x" * 100 + " |\n"
    big = plan(body=row * 6_000)  # about 700 KB of details
    write_plan_summary(big)
    whole = github_env.summary_text()
    assert 600_000 < len(whole.encode("utf-8")) <= STEP_SUMMARY_LIMIT
    write_plan_summary(big)  # e.g. the plan posted again when apply refuses it
    write_apply_summary(ApplyReport(summary="**Apply refused.**"))
    text = github_env.summary_text()
    assert len(text.encode("utf-8")) <= STEP_SUMMARY_LIMIT
    assert text.count("Cut to fit GitHub's 1 MiB limit for a step's job summary") >= 1
    assert text.startswith(whole)  # the first write is kept whole


def test_summary_and_outputs_are_no_ops_outside_actions(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    assert write_plan_summary(plan()) is False
    assert write_outputs({"has-changes": "true"}) is False


def test_outputs_are_written_multi_line_safe(github_env):
    write_outputs({"has-changes": "true", "summary": "line one\nline two", "urls": '{"a": "https://x/"}'})
    text = github_env.output.read_text()
    outputs = dict(re.findall(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, re.M | re.S)[i][::2] for i in range(3))
    assert outputs == {"has-changes": "true", "summary": "line one\nline two", "urls": '{"a": "https://x/"}'}


def test_manifest_keys_are_relative_to_the_workspace(github_env):
    from dl.github.events import manifest_key

    assert manifest_key("site/datasette-lambda.yml") == "site/datasette-lambda.yml"
    assert manifest_key(github_env.workspace / "site" / "datasette-lambda.yml") == "site/datasette-lambda.yml"
    assert manifest_key("/elsewhere/datasette-lambda.yml") == "/elsewhere/datasette-lambda.yml"


# --- only dl's own comments are trusted --------------------------------------------------------------


def test_a_marker_copied_by_another_user_is_never_edited(github_env):
    fake = github_env.fake
    copied = marker("datasette-lambda.yml", "review", "0" * 32) + "\n**Plan:** 0 to destroy."
    fake.add_comment(PR_NUMBER, copied, login="mallory")
    first = comment_on_pull_request(plan(), now=at(12))
    assert first.action == "created"
    assert [w.method for w in fake.writes()] == ["POST"]  # never a PATCH of mallory's comment
    assert fake.bodies(PR_NUMBER)[0] == copied and SUMMARY in fake.bodies(PR_NUMBER)[1]
    fake.requests.clear()
    assert comment_on_pull_request(plan(), now=at(13)).action == "unchanged"  # ours is found again
    assert fake.writes() == []


def test_a_dl_comment_edited_below_the_marker_is_rewritten(github_env):
    fake = github_env.fake
    comment_on_pull_request(plan(), now=at(12))
    ours = fake.comments[PR_NUMBER][0]
    original = ours["body"]
    ours["body"] = original.replace("1 to create", "0 to create")  # the marker and its digest are untouched
    fake.requests.clear()
    result = comment_on_pull_request(plan(), now=at(13))
    assert result.action == "updated" and [w.method for w in fake.writes()] == ["PATCH"]
    assert "1 to create" in ours["body"] and "0 to create" not in ours["body"]


def test_a_github_app_bot_is_named_with_an_input(github_env, monkeypatch):
    fake = github_env.fake
    fake.login = "octo-deployer[bot]"
    monkeypatch.setenv("DL_COMMENT_AUTHOR", "octo-deployer[bot]")
    fake.add_comment(PR_NUMBER, marker("datasette-lambda.yml") + "\nold", login="github-actions[bot]")
    comment_on_pull_request(plan(), now=at(12))
    assert [w.method for w in fake.writes()] == ["POST"]
    assert fake.comments[PR_NUMBER][1]["user"]["login"] == "octo-deployer[bot]"


# --- what was planned ------------------------------------------------------------------------------------


def test_a_shallow_test_merge_checkout_names_the_head_and_the_base(tmp_path, github_env):
    checkout = merge_checkout(tmp_path)
    seen = read_checkout(checkout.path)
    assert seen.commit == checkout.merge and seen.merge == (checkout.base, checkout.head)
    github_env.write_event({"pull_request": {"number": 7, "head": {"sha": checkout.head}}})
    line = planned_line(seen)
    assert f"head {checkout.head} merged onto {checkout.base}" in line and "not what was planned" not in line
    github_env.write_event(pull_request_event())  # the event names another head than the checkout holds
    assert (
        f"The event named the pull request's head {HEAD_SHA}: that is not what was planned."
        in planned_line(seen)
    )
    assert planned_line(read_checkout(tmp_path / "nowhere")).startswith("Planned the working directory")


def test_pull_request_target_is_refused_unless_the_head_was_checked_out(tmp_path, github_env, monkeypatch):
    checkout = merge_checkout(tmp_path)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request_target")
    github_env.write_event({"pull_request": {"number": 7, "head": {"sha": checkout.head}}})
    refuse_base_checkout(read_checkout(checkout.path))  # the merge holds the head: fine
    base_only = Checkout(checkout.base, ())
    with pytest.raises(DlError, match=r"refusing to plan pull request #7 on a 'pull_request_target' event"):
        refuse_base_checkout(base_only)


def test_comment_triggered_plans_ask_github_for_the_head(tmp_path, github_env, monkeypatch):
    checkout = merge_checkout(tmp_path)
    github_env.fake.add_pull(9, head=checkout.head)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    github_env.write_event({"issue": {"number": 9, "pull_request": {"url": "..."}}, "comment": {"id": 1}})
    refuse_base_checkout(read_checkout(checkout.path))
    assert any(r.path == "/repos/octo/data/pulls/9" for r in github_env.fake.requests)
    with pytest.raises(DlError, match="is not the pull request's head"):
        refuse_base_checkout(Checkout(checkout.base, ()))


def test_the_merged_pull_request_of_a_pushed_commit(github_env):
    fake = github_env.fake
    client = GitHubClient(fake.api_url, fake.token)
    fake.add_pull(3, commits=("a" * 40,))  # open, only holds the commit
    fake.add_pull(4, merge_commit="b" * 40, commits=("a" * 40,))
    assert merged_pull_request(client, "octo/data", "b" * 40)["number"] == 4
    assert merged_pull_request(client, "octo/data", "a" * 40)["number"] == 4  # merged beats open
    assert merged_pull_request(client, "octo/data", "c" * 40) is None


def test_manifest_problems_become_annotations_on_their_line(github_env):
    problem = Problem(
        "site/datasette-lambda.yml", 7, 33, "instances.a.config.x", "expected integer, got 'a,b'"
    )
    assert annotation(problem) == (
        "::error file=site/datasette-lambda.yml,line=7,col=33,title=datasette-lambda::"
        "instances.a.config.x: expected integer, got 'a,b'"
    )
    odd = Problem(str(github_env.workspace / "a,b.yml"), 0, 0, "", "50%\nof it")
    assert annotation(odd) == "::error file=a%2Cb.yml,title=datasette-lambda::50%25%0Aof it"


def test_the_review_verdict():
    from dl.github.review import review_verdict
    from dl.render.comment import Marker

    reviewed = Marker("datasette-lambda.yml", "review", "d" * 32)
    assert review_verdict(reviewed, "d" * 32, 7, allow_unreviewed=False).ok
    assert "differs from the one reviewed" in review_verdict(reviewed, "e" * 32, 7, allow_unreviewed=True).why
    for state in ("not-reviewed", "failed", "plan", "applied", ""):  # only a plan for review counts
        assert not review_verdict(Marker("m", state, "d" * 32), "d" * 32, 7, allow_unreviewed=False).ok
    assert "no plan comment by dl" in review_verdict(None, "d" * 32, 7, allow_unreviewed=False).why
    assert not review_verdict(None, "d" * 32, None, allow_unreviewed=False).ok
    assert review_verdict(None, "d" * 32, None, allow_unreviewed=True).ok
