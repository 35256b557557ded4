"""Composing the plan comment and the job summaries (pure), checked through GitHub's renderer."""

from __future__ import annotations

import cmarkgfm
from cmarkgfm.cmark import Options

from dl.render.comment import (
    APPLIED,
    APPLY_FAILED,
    COMMENT_LIMIT,
    FAILED,
    NOT_REVIEWED,
    REVIEW,
    ApplyReport,
    CommentParts,
    Marker,
    apply_comment_parts,
    compose_apply_summary,
    compose_comment,
    compose_job_summary,
    failure_parts,
    footer_timestamp,
    marker,
    no_credentials_parts,
    not_reviewed_parts,
    parse_marker,
)
from dl.render.markdown import code_block, escape_markdown, text_length

SUMMARY = "**Plan:** 1 to create, 1 to update, 1 to destroy."
EVIL = "</details><img src=x onerror=alert(1)>"


def render(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def parts(**overrides) -> CommentParts:
    values = dict(
        summary=SUMMARY,
        sections=(
            ("northwind: update", "- table `orders`: 10 → 12 rows"),
            ("fixtures: create", "- database `fixtures.db` (3 tables)"),
        ),
        destroys=("legacy",),
        manifest="sites/datasette-lambda.yml",
        commit="0123456789abcdef0123456789abcdef01234567",
        timestamp="2025-05-01 12:00 UTC",
        digest="d" * 32,
    )
    values.update(overrides)
    return CommentParts(**values)


def big_sections(count: int, lines: int) -> tuple[tuple[str, str], ...]:
    """Sections whose bodies are long diff blocks (with table names that need escaping)."""
    body = code_block("\n".join(f"+ row {i} <td>{'x' * 40}</td>" for i in range(lines)), "diff")
    return tuple((f"instance-{n}: update", f"Table {escape_markdown(EVIL)}\n\n{body}") for n in range(count))


def test_comment_reads_marker_summary_warning_sections_footer_in_order():
    body = compose_comment(parts())
    assert body.splitlines()[0] == marker("sites/datasette-lambda.yml", REVIEW, "d" * 32)
    order = [
        body.index(s) for s in (SUMMARY, "[!WARNING]", "<details><summary>northwind", "fixtures", "<sub>")
    ]
    assert order == sorted(order)
    html = render(body)
    assert html.count("<details>") == 2 and html.count("</details>") == 2
    assert "0123456789abcdef0123456789abcdef01234567" in html and "2025-05-01 12:00 UTC" in html


def test_destroys_are_called_out_in_a_warning():
    body = compose_comment(parts(destroys=("legacy", "old-site")))
    warning = body[body.index("> [!WARNING]") :].split("\n\n")[0]
    assert "destroys 2 instances" in warning and "`legacy`" in warning and "`old-site`" in warning
    assert "[!WARNING]" not in compose_comment(parts(destroys=()))


def test_names_from_users_render_as_text():
    body = compose_comment(parts(sections=((EVIL, "body"),), destroys=(EVIL,), manifest=EVIL))
    html = render(body)
    assert "<img" not in html
    assert html.count("<details>") == 1 and html.count("</details>") == 1


def test_marker_round_trips_and_ignores_other_comments():
    assert parse_marker(marker("a b/--> x.yml", FAILED, "abc") + "\nrest") == Marker(
        "a b/--> x.yml", FAILED, "abc"
    )
    assert "-->" not in marker("a b/--> x.yml", REVIEW, "abc")[4:-3]
    assert parse_marker("Thanks! <!-- datasette-lambda:plan manifest=x state=review digest=1 -->") is None
    # an older dl's marker has no state: it parses, and never counts as reviewed
    assert parse_marker("<!-- datasette-lambda:plan manifest=x digest=12 -->") == Marker("x", "", "12")


def test_the_footer_time_is_read_back_from_a_body():
    assert footer_timestamp(compose_comment(parts())) == "2025-05-01 12:00 UTC"
    assert footer_timestamp("<sub>datasette-lambda 0.1.0</sub>") is None


def test_every_body_records_its_state_and_only_plans_carry_a_digest():
    failed = compose_comment(
        failure_parts("the manifest has 1 problem.", ["m.yml:3:5: x: bad"], manifest="m.yml")
    )
    assert parse_marker(failed) == Marker("m.yml", FAILED, "")
    refused = compose_comment(not_reviewed_parts(parts(), "The data changed.", commit="c" * 40))
    assert parse_marker(refused) == Marker("sites/datasette-lambda.yml", NOT_REVIEWED, "d" * 32)
    report = ApplyReport(summary="**Apply complete.**", manifest="m.yml")
    assert parse_marker(compose_comment(apply_comment_parts(report, ok=True))).state == APPLIED
    assert parse_marker(compose_comment(apply_comment_parts(report, ok=False))).state == APPLY_FAILED


def test_a_failed_plan_shows_the_located_errors_and_no_plan():
    errors = ["datasette-lambda.yml:7:33: instances.a.config.default_page_size: expected integer, got 'ten'"]
    p = failure_parts(
        "the manifest has 1 problem.", errors, manifest="datasette-lambda.yml", planned="Planned commit abc."
    )
    html = render(compose_comment(p))
    assert "The plan failed: the manifest has 1 problem." in html
    assert "datasette-lambda.yml:7:33: instances.a.config.default_page_size: expected integer" in html
    assert "Planned commit abc." in html and "no longer current" in html


def test_a_plan_refused_after_merge_says_it_was_not_reviewed_and_what_to_do():
    body = compose_comment(not_reviewed_parts(parts(), "The data changed after the review.", commit="c" * 40))
    html = render(body)
    assert "Not applied: this plan was not reviewed." in html and "The data changed after the review." in html
    assert "Re-run the pull request's plan and review it; then re-run this job." in html
    assert SUMMARY in body and "c" * 40 in html


def test_the_destroy_warning_speaks_of_one_instance_in_the_singular():
    one = compose_comment(parts(destroys=("legacy",)))
    assert "deletes its stack and stored databases; its URL stops working" in one and "their" not in one


def test_a_70000_character_plan_is_shortened_under_the_limit_with_the_summary_intact():
    sections = big_sections(3, 400)
    full = compose_comment(parts(sections=sections), limit=10**9)
    assert len(full) > 70_000
    body = compose_comment(
        parts(sections=sections), full_plan_hint="See [the job summary](https://x.example/run)."
    )
    assert text_length(body) <= COMMENT_LIMIT
    assert SUMMARY in body and "[!WARNING]" in body and "<sub>" in body
    assert "shortened to fit GitHub's size limit. See [the job summary](https://x.example/run)." in body
    html = render(body)
    assert html.count("<details>") == 3 and html.count("</details>") == 3  # every instance still there
    assert html.count("<pre") == 3 and "<td>" not in html and "<img" not in html  # fences were closed
    assert body.count("+ row 0 ") == 3  # each instance keeps the start of its details


def test_small_sections_are_kept_whole_while_big_ones_are_shortened():
    sections = (("small: create", "- one database"), *big_sections(2, 600))
    body = compose_comment(parts(sections=sections))
    assert text_length(body) <= COMMENT_LIMIT
    small = body[body.index("small: create") :].split("</details>")[0]
    assert "- one database" in small and "Shortened" not in small
    assert body.count("Shortened to fit") == 2


def test_hundreds_of_instances_become_a_list_of_titles():
    sections = big_sections(3000, 2)
    body = compose_comment(parts(sections=sections))
    assert text_length(body) <= COMMENT_LIMIT
    assert SUMMARY in body and "- instance\\-0\\: update" in body and "more" in body
    assert "<details>" not in body


def test_the_limit_counts_characters_as_github_does():
    sections = (("emoji", "🚀" * 40_000),)  # 40,000 code points, 80,000 UTF-16 units
    body = compose_comment(parts(sections=sections))
    assert text_length(body) <= COMMENT_LIMIT


def test_no_credentials_comment_says_the_plan_could_not_be_made_and_why():
    p = no_credentials_parts("This pull request comes from a fork <b>.", manifest="datasette-lambda.yml")
    body = compose_comment(p)
    html = render(body)
    assert "The plan could not be made: no AWS credentials were available." in html
    assert parse_marker(body).state == FAILED
    assert "This pull request comes from a fork &lt;b&gt;." in html
    assert "<details>" not in html


def test_job_summary_has_no_marker_and_keeps_what_the_comment_shortened():
    sections = big_sections(3, 400)
    summary = compose_job_summary(parts(sections=sections))
    assert not summary.startswith("<!--")
    assert summary.count("+ row 399 ") == 3 and "Shortened" not in summary


def test_apply_summary_lists_changes_and_urls():
    report = ApplyReport(
        summary="**Apply complete:** 1 created, 1 updated.",
        changes=(("northwind", "updated: 2 databases"), (EVIL, "created")),
        urls=(("northwind", "https://d1.cloudfront.net/"), ("fixtures", "javascript:alert(1)")),
        manifest="datasette-lambda.yml",
        commit="a" * 40,
        timestamp="2025-05-01 12:00 UTC",
    )
    html = render(compose_apply_summary(report))
    assert "<td>updated: 2 databases</td>" in html
    assert '<a href="https://d1.cloudfront.net/">https://d1.cloudfront.net/</a>' in html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html and "<img" not in html


def test_apply_summary_says_when_nothing_changed():
    html = render(compose_apply_summary(ApplyReport(summary="**No changes.**")))
    assert "Nothing changed." in html
