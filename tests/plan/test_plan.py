"""The planner is a pure function of (desired specs, observed state); renderers are pure functions of the plan.

Observed state here is an in-memory value (the planner only reads it), as in Chalice's planner tests.
"""

from __future__ import annotations

import copy
import dataclasses
import json

from dl.aws.client import Stack
from dl.aws.names import BOOTSTRAP_VERSION, certificate_stack_name
from dl.aws.observed import ObservedCertificate, ObservedInstance, ObservedState
from dl.plan.diff import make_plan
from dl.plan.model import Action, Plan
from dl.render.plan import clean, comment_parts, render_json, render_text

SPEC = {
    "format": 1,
    "project": "p",
    "instance": "a",
    "databases": [
        {
            "name": "northwind",
            "file": "northwind.db",
            "sha256": "a" * 64,
            "size": 20480,
            "key": "databases/" + "a" * 64 + ".db",
            "location": "inline",
            "tables": {
                "orders": {"rows": 830, "columns": ["id", "total"]},
                "customers": {"rows": 91, "columns": ["id"]},
            },
            "views": [],
        }
    ],
    "metadata": {"title": "Northwind"},
    "config": {"default_page_size": 10},
    "cors": False,
    "domain": None,
    "certificate_arn": None,
    "prefix": "/",
    "runtime": "python3.13",
    "architecture": "arm64",
    "memory": 1024,
    "timeout": 30,
    "endpoint": "function-url",
    "cdn": True,
    "log_retention_days": 30,
    "plugins": [],
    "protect": False,
    "secrets": [],
    "versions": {"datasette": "0.65.5", "mangum": "0.22.0"},
    "package": {"sha256": "b" * 64, "key": "packages/" + "b" * 64 + ".zip", "size": 5_000_000},
    "tool_version": "0.1.0",
}


def stack(name: str, status: str = "UPDATE_COMPLETE") -> Stack:
    return Stack(name, f"arn:stack/{name}/1", status, None, {"dl:project": "p"}, {}, None, None)


def observed(**specs) -> ObservedState:
    return ObservedState(
        project="p",
        region="eu-west-1",
        bootstrap=stack("p--bootstrap"),
        bucket="bucket",
        instances={n: ObservedInstance(n, stack(f"p-{n}"), s) for n, s in specs.items()},
        bootstrap_version=BOOTSTRAP_VERSION,
    )


def changed(**edits) -> dict:
    spec = copy.deepcopy(SPEC)
    for key, value in edits.items():
        spec[key] = value
    return spec


def test_no_change_is_an_empty_plan_whatever_the_tool_version():
    plan = make_plan("p", "eu-west-1", {"a": changed(tool_version="9.9.9")}, observed(a=SPEC))
    assert plan.is_empty() and plan.summary() == "No changes. The deployment matches the manifest."
    assert plan.instances[0].action is Action.NOOP


def test_data_aware_database_diff():
    db = copy.deepcopy(SPEC["databases"][0])
    db["sha256"] = "c" * 64
    db["key"] = "databases/" + "c" * 64 + ".db"
    db["size"] = 24576
    db["tables"]["orders"] = {"rows": 845, "columns": ["id", "total", "shipped"]}
    del db["tables"]["customers"]
    db["tables"]["suppliers"] = {"rows": 29, "columns": ["id"]}
    plan = make_plan("p", "eu-west-1", {"a": changed(databases=[db])}, observed(a=SPEC))
    (item,) = plan.instances
    assert item.action is Action.UPDATE
    (change,) = item.databases
    assert change.details == (
        "table suppliers added (29 rows)",
        "table customers dropped (91 rows)",
        "orders: rows 830 -> 845 (+15)",
        "orders: column shipped added",
        "size 20.5 kB -> 24.6 kB",
        "sha256 aaaaaaaaaaaa -> cccccccccccc",
    )
    assert "IAM: the function's s3:GetObject grant moves to the new artifact keys" in item.consequences
    assert "CloudFront cache invalidated after the update (content changed)" in item.consequences


def test_golden_text_rendering_of_an_update_a_create_and_a_destroy():
    desired = {
        "a": changed(config={"default_page_size": 20}, metadata={"title": "Northwind 2"}, memory=2048),
        "b": changed(instance="b", cdn=False),
    }
    plan = make_plan("p", "eu-west-1", desired, observed(a=SPEC, gone=SPEC))
    assert render_text(plan) == (
        "Project p in eu-west-1\n"
        "\n"
        "~ a: update\n"
        "    ~ memory: 1024 -> 2048\n"
        "    ~ config.default_page_size: 10 -> 20\n"
        "    ~ metadata.title: Northwind -> Northwind 2\n"
        "    ! CloudFront cache invalidated after the update (content changed)\n"
        "\n"
        "+ b: create\n"
        "    # not deployed yet\n"
        "    + prefix: /\n"
        "    + endpoint: function-url\n"
        "    + cdn: false\n"
        "    + runtime: python3.13\n"
        "    + architecture: arm64\n"
        "    + memory: 1024\n"
        "    + config.default_page_size: 10\n"
        "    + metadata.title: Northwind\n"
        "    + versions.datasette: 0.65.5\n"
        "    + database northwind\n"
        "        2 tables, 921 rows, 20.5 kB\n"
        "\n"
        "- gone: destroy\n"
        "    # removed from the manifest\n"
        "    # the stack, its function, front door and logs are deleted\n"
        "\n"
        "WARNING: this plan destroys or replaces: gone\n"
        "Plan: 1 to create, 1 to update, 1 to destroy.\n"
    )
    coloured = render_text(plan, colour=True)
    assert "\x1b[31m- gone: destroy\x1b[0m" in coloured and "\x1b[32m+ b: create\x1b[0m" in coloured


def test_the_public_url_changing_is_a_replace_and_protect_is_carried():
    plan = make_plan("p", "eu-west-1", {"a": changed(cdn=False, protect=True)}, observed(a=SPEC))
    (item,) = plan.instances
    assert item.action is Action.REPLACE and item.protected
    assert plan.summary() == "Plan: 0 to create, 0 to update, 1 to replace, 0 to destroy."


def test_a_failed_first_create_is_planned_as_a_create_again():
    state = observed(a=SPEC)
    state.instances["a"] = ObservedInstance("a", stack("p-a", "ROLLBACK_COMPLETE"), None)
    plan = make_plan("p", "eu-west-1", {"a": SPEC}, state)
    assert plan.instances[0].action is Action.CREATE
    assert "ROLLBACK_COMPLETE" in plan.instances[0].reason


def test_json_round_trip_is_lossless():
    plan = make_plan("p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=SPEC, gone=SPEC))
    data = json.loads(render_json(plan))
    assert data["format_version"] == 1 and data["counts"] == {
        "no-op": 0,
        "create": 0,
        "update": 1,
        "replace": 0,
        "destroy": 1,
    }
    again = Plan.from_json(data)
    assert again == plan


def test_targets_limit_the_plan():
    plan = make_plan(
        "p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=SPEC, gone=SPEC), targets=["a"]
    )
    assert [i.name for i in plan.instances] == ["a"]


def test_hostile_names_are_inert_in_every_rendering():
    db = copy.deepcopy(SPEC["databases"][0])
    db["sha256"] = "d" * 64
    db["tables"]["</details><img src=x onerror=alert(1)>"] = {"rows": 1, "columns": ["id"]}
    db["tables"]["orders"]["columns"].append("\x1b[31mred")
    plan = make_plan("p", "eu-west-1", {"a": changed(databases=[db])}, observed(a=SPEC))
    text = render_text(plan)
    assert "\x1b" not in text  # no escape sequence reaches the terminal...
    assert "orders: column \\x1b[31mred added" in text  # ...it is shown, made visible
    parts = comment_parts(plan)
    body = parts.sections[0][1]
    assert body.startswith("```diff\n") and "</details><img" in body  # verbatim inside a code block
    assert clean("\u202eevil\x07") == "\ufffdevil\\x07"


def test_manifest_tags_are_part_of_the_deployment():
    plan = make_plan("p", "eu-west-1", {"a": changed(tags={"cost-centre": "open-data"})}, observed(a=SPEC))
    (item,) = plan.instances
    assert item.action is Action.UPDATE
    assert [(c.path, c.before, c.after) for c in item.changes] == [("tags.cost-centre", None, "open-data")]


def test_an_uncountable_table_is_shown_not_crashed_on():
    db = copy.deepcopy(SPEC["databases"][0])
    db["sha256"] = "e" * 64
    db["tables"]["orders"] = {"rows": None, "columns": ["id", "total"]}
    plan = make_plan("p", "eu-west-1", {"a": changed(databases=[db])}, observed(a=SPEC))
    assert "orders: rows 830 -> ?" in plan.instances[0].databases[0].details
    assert "orders: rows 830 -> ?" in render_text(plan)


def test_a_custom_domain_that_moves_or_goes_is_a_replace():
    before = changed(domain="a.example.com")
    for after in (changed(domain="b.example.com"), changed(domain=None)):
        plan = make_plan("p", "eu-west-1", {"a": after}, observed(a=before))
        assert plan.instances[0].action is Action.REPLACE
    plan = make_plan("p", "eu-west-1", {"a": changed(domain="a.example.com")}, observed(a=SPEC))
    assert plan.instances[0].action is Action.UPDATE  # adding a domain keeps the old URL working


def test_a_change_of_datasette_line_is_shown_and_specs_without_a_line_mean_065():
    to_10 = changed(datasette="1.0a", versions={**SPEC["versions"], "datasette": "1.0a41"})
    (item,) = make_plan("p", "eu-west-1", {"a": to_10}, observed(a=SPEC)).instances
    assert item.action is Action.UPDATE
    assert ("datasette", "0.65", "1.0a") in [(c.path, c.before, c.after) for c in item.changes]
    assert "versions.datasette" in [c.path for c in item.changes]
    (back,) = make_plan("p", "eu-west-1", {"a": SPEC}, observed(a=to_10)).instances
    assert ("datasette", "1.0a", "0.65") in [(c.path, c.before, c.after) for c in back.changes]
    # a spec deployed before lines existed (no "datasette" key) is the 0.65 line: no change
    assert make_plan("p", "eu-west-1", {"a": SPEC}, observed(a=SPEC)).is_empty()
    created = make_plan("p", "eu-west-1", {"a": to_10}, observed())
    assert ("datasette", None, "1.0a") in [(c.path, c.before, c.after) for c in created.instances[0].changes]
    assert "+ datasette: 1.0a" in render_text(created)
    assert "+ datasette:" not in render_text(make_plan("p", "eu-west-1", {"a": SPEC}, observed()))


def test_a_create_shows_every_setting_that_differs_from_the_default_in_text_and_markdown():
    from dl.render.plan import render_markdown

    spec = changed(
        cors=True,
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
        domain="data.example.com",
        timeout=60,
        protect=True,
        log_retention_days=90,
        config={"default_page_size": 50, "sql_time_limit_ms": 2000},
        metadata={
            "title": "Open data",
            "license": "CC-BY-4.0",
            "source": "City archive",
            "databases": {"northwind": {"tables": {"orders": {"description": "Orders"}}}},
        },
        tags={"team": "data"},
    )
    plan = make_plan("p", "eu-west-1", {"b": spec}, observed())
    text = render_text(plan)
    markdown = render_markdown(plan).replace("\\", "")
    for line in (
        "+ cors: true",
        "+ certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/abc",
        "+ domain: data.example.com",
        "+ timeout: 60",
        "+ log_retention_days: 90",
        "+ protect: true",
        "+ config.default_page_size: 50",
        "+ config.sql_time_limit_ms: 2000",
        "+ metadata.title: Open data",
        "+ metadata.license: CC-BY-4.0",
        "+ metadata.source: City archive",
        "+ tags.team: data",
        "+ metadata: 1 more nested setting (databases, tables; see the JSON plan)",
    ):
        assert line in text and line in markdown, line
    default = render_text(make_plan("p", "eu-west-1", {"b": changed()}, observed()))
    assert "cors" not in default and "timeout" not in default and "protect" not in default


def test_one_row_is_one_row():
    db = copy.deepcopy(SPEC["databases"][0])
    db["sha256"] = "c" * 64
    db["tables"]["single"] = {"rows": 1, "columns": ["id"]}
    plan = make_plan("p", "eu-west-1", {"a": changed(databases=[db])}, observed(a=SPEC))
    assert "table single added (1 row)" in plan.instances[0].databases[0].details


def test_the_plan_says_before_merge_when_the_apply_will_be_refused():
    plan = make_plan("p", "eu-west-1", {"a": SPEC}, observed(a=SPEC, gone=SPEC, kept=changed(protect=True)))
    summary = comment_parts(plan).summary.replace("\\", "")
    assert (
        "The apply will refuse this plan: it destroys or replaces `gone`, which needs `allow-destroy: true`"
        in (summary)
    )
    assert "`kept` (protect: true) is never destroyed or replaced" in summary
    allowed = comment_parts(plan, allow_destroy=True).summary
    assert "`gone`" not in allowed and "`kept`" in allowed


def test_the_review_digest_follows_what_the_plan_does_not_when_or_how_it_is_worded():
    from dl.plan.model import review_digest

    base = make_plan("p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=SPEC))
    again = make_plan("p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=SPEC), manifest="x.yml")
    assert review_digest(base) == review_digest(again)  # another time, another manifest label
    assert review_digest(Plan.from_json(json.loads(base.dumps()))) == review_digest(base)  # a saved plan
    other_desired = make_plan("p", "eu-west-1", {"a": changed(memory=4096)}, observed(a=SPEC))
    other_observed = make_plan("p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=changed(memory=512)))
    other_action = make_plan("p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=SPEC, gone=SPEC))
    digests = {review_digest(p) for p in (base, other_desired, other_observed, other_action)}
    assert len(digests) == 4


def test_a_reviewed_comment_counts_only_when_its_body_shows_the_plan():
    from dataclasses import replace

    from dl.github.review import shows_plan
    from dl.render.comment import compose_comment

    hint = "The full plan is in the [job summary of this run](https://github.com/o/r/actions/runs/1)."

    def posted(plan, *, allow_destroy=False) -> str:  # what `dl plan --comment` writes
        parts = comment_parts(plan, manifest="m.yml", commit="c" * 40, allow_destroy=allow_destroy)
        parts = replace(parts, planned="Planned commit " + "c" * 40 + ".", timestamp="2026-12-01 10:00 UTC")
        return compose_comment(parts, full_plan_hint=hint)

    plan = make_plan("p", "eu-west-1", {"a": changed(memory=2048)}, observed(a=SPEC, gone=SPEC))
    for allow_destroy in (False, True):
        assert shows_plan(posted(plan, allow_destroy=allow_destroy), plan)
    body = posted(plan)
    assert shows_plan(body.replace("\n", "\r\n").rstrip(), plan)  # CRLF or no final newline: same Markdown
    assert not shows_plan(body.replace("1 to update", "0 to update"), plan)
    summary = comment_parts(plan).summary
    assert not shows_plan(body.replace(summary, f"<!--\n{summary}\n-->\n\nAll fine."), plan)  # hidden
    other = make_plan("p", "eu-west-1", {"a": changed(memory=4096)}, observed(a=SPEC, gone=SPEC))
    assert not shows_plan(body, other)
    # a plan too long for one comment is shortened, with the hint to the full plan: still recognised
    many = {f"i{n}": changed(metadata={"title": "t" * 4000, "description": "d" * 4000}) for n in range(20)}
    long_plan = make_plan("p", "eu-west-1", many, observed(**dict.fromkeys(many, SPEC)))
    long_body = posted(long_plan)
    assert "This comment was shortened" in long_body
    runs = "https://github.com/o/r/actions/runs/"
    assert shows_plan(long_body, long_plan, runs)
    assert shows_plan(long_body.replace("runs/1)", "runs/2/attempts/3)"), long_plan, runs)
    # the hint must point to a run of this repository, never to a page showing another plan
    assert not shows_plan(long_body, long_plan, "https://github.com/o/other/actions/runs/")
    assert not shows_plan(long_body.replace(runs + "1", "https://evil.example/plan"), long_plan, runs)


# --- certificate stacks: one per domain (us-east-1), orphans removed by the apply ------------------------------


def cert_stack(domain: str | None = None, legacy: str | None = None) -> ObservedCertificate:
    from dl.aws.names import certificate_stack_name, legacy_certificate_stack_name

    name = legacy_certificate_stack_name("p", legacy) if legacy else certificate_stack_name("p", domain)
    tags = {"dl:project": "p", "dl:role": "certificate"}
    tags.update({"dl:instance": legacy} if legacy else {"dl:domain": domain})
    s = Stack(
        name,
        f"arn:aws:cloudformation:us-east-1:1:stack/{name}/1",
        "CREATE_COMPLETE",
        None,
        tags,
        {},
        None,
        None,
    )
    return ObservedCertificate(s, None if legacy else domain, legacy)


def with_certificates(state: ObservedState, *certs: ObservedCertificate) -> ObservedState:
    return dataclasses.replace(state, certificates=certs)


def test_a_domain_moving_between_instances_keeps_its_certificate_stack():
    d = "data.example.org"
    state = with_certificates(observed(a=changed(domain=d), b=SPEC), cert_stack(d))
    plan = make_plan("p", "eu-west-1", {"a": SPEC, "b": changed(domain=d)}, state)
    assert plan.certificates == ()  # reused by b, not removed and issued again
    assert "orphaned certificate" not in plan.summary()


def test_a_dropped_domain_leaves_an_orphaned_certificate_stack_the_plan_removes():
    d = "old.example.org"
    state = with_certificates(observed(a=changed(domain=d)), cert_stack(d), cert_stack("kept.example.org"))
    plan = make_plan("p", "eu-west-1", {"a": changed(domain="kept.example.org")}, state)
    assert [c.domain for c in plan.certificates] == [d]
    assert (
        plan.summary()
        == "Plan: 0 to create, 0 to update, 1 to replace, 0 to destroy, 1 orphaned certificate stack to remove."
    )
    text = render_text(plan)
    assert f"certificate stack {plan.certificates[0].stack_name} ({d}, us-east-1): orphaned" in text
    assert plan.certificates[0].stack_name in comment_parts(plan).summary
    again = Plan.from_json(json.loads(render_json(plan)))
    assert again.certificates == plan.certificates


def test_only_orphaned_certificate_stacks_make_a_plan_that_is_not_empty():
    state = with_certificates(observed(a=SPEC), cert_stack("gone.example.org"))
    plan = make_plan("p", "eu-west-1", {"a": SPEC}, state)
    assert [i.action for i in plan.instances] == [Action.NOOP]
    assert not plan.is_empty() and len(plan.certificates) == 1


def test_an_instance_with_certificate_arn_does_not_use_a_dl_issued_certificate():
    d = "data.example.org"
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    state = with_certificates(observed(a=changed(domain=d)), cert_stack(d))
    plan = make_plan("p", "eu-west-1", {"a": changed(domain=d, certificate_arn=arn)}, state)
    assert [c.domain for c in plan.certificates] == [d]


def test_a_per_instance_certificate_stack_of_earlier_versions_moves_the_instance_then_goes():
    d = "data.example.org"
    state = with_certificates(observed(a=changed(domain=d), b=SPEC), cert_stack(legacy="a"))
    plan = make_plan("p", "eu-west-1", {"a": changed(domain=d), "b": SPEC}, state)
    a = plan.instances[0]
    assert a.action is Action.UPDATE  # unchanged spec, but its distribution moves to the domain's stack
    assert [(c.path, c.before, c.after) for c in a.changes] == [
        ("certificate", "p-a--certificate", certificate_stack_name("p", d))
    ]
    assert [c.stack_name for c in plan.certificates] == ["p-a--certificate"]
    assert plan.certificates[0].instance == "a"
    # an apply that leaves `a` alone (--target b) leaves its certificate alone too: its distribution uses it
    assert make_plan("p", "eu-west-1", {"b": SPEC}, state, targets=["b"]).certificates == ()
