"""Domains that move between instances in one apply: the release finishes before the claim starts.

CloudFront lets one distribution hold an alias and Route 53 holds a record once, so an instance that claims a
domain another instance releases (renamed, or the domain moved) waits for that release; unrelated instances do
not wait. Shown through the AWS calls dl makes, in order (moto's server; the domain uses `certificate_arn`, so no
certificate stack or Route 53 zone is involved).
"""

from __future__ import annotations

import threading
import time

import pytest

from dl.aws import client as dl_aws
from tests.apply.conftest import dl, write_manifest

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab"
DOMAIN = "data.example.invalid"


def instance(name: str, db: str, extra: str = "") -> str:
    return f"  {name}:\n    databases: [{db}]\n{extra}"


def with_domain() -> str:
    return f"    domain: {DOMAIN}\n    certificate_arn: {CERT}\n"


class Calls(list):
    holds: list


@pytest.fixture
def recorded(monkeypatch):
    """(operation, StackName) of every call, in order; `hold` blocks one operation until an event is set."""
    calls = Calls()
    holds: list[tuple[str, str, threading.Event]] = []
    original = dl_aws.Aws._count

    def count(self, model, params=None, **kwargs):
        name = f"{model.service_model.service_name}.{model.name}"
        body = (params or {}).get("body")  # the serialised request: CloudFormation's query protocol
        stack = str(body.get("StackName", "")) if isinstance(body, dict) else ""
        for operation, fragment, event in holds:
            if name == operation and fragment in stack:
                assert event.wait(60), f"{operation} on {stack} was held for 60 s"
        calls.append((name, stack))
        return original(self, model, params=params, **kwargs)

    monkeypatch.setattr(dl_aws.Aws, "_count", count)
    calls.holds = holds
    return calls


def touches(call: tuple[str, str], stack: str) -> bool:
    """Whether a call names the stack (by name, or by its id arn:...:stack/<name>/<uuid>)."""
    return call[0].startswith("cloudformation.") and (call[1] == stack or f":stack/{stack}/" in call[1])


def first(calls, stack: str) -> int:
    return next(n for n, c in enumerate(calls) if touches(c, stack))


def claim(calls, stack: str) -> int:
    """When an instance starts claiming: its first change set (plan-time reads come earlier)."""
    return next(
        n for n, c in enumerate(calls) if c[0] == "cloudformation.CreateChangeSet" and touches(c, stack)
    )


def last(calls, stack: str) -> int:
    return max(n for n, c in enumerate(calls) if touches(c, stack))


def test_renaming_an_instance_with_a_domain_releases_it_before_the_new_one_claims_it(project, recorded):
    write_manifest(
        project,
        "project: rr\ninstances:\n"
        + instance("cities-old", "alpha.db", with_domain())
        + instance("other", "beta.db"),
    )
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    write_manifest(
        project,
        "project: rr\ninstances:\n"
        + instance("cities", "alpha.db", with_domain())
        + instance("other", "beta.db", "    memory: 512\n"),
    )
    plan = dl("plan")
    assert plan.exit_code == 0, plan.output
    text = " ".join(plan.output.split())
    assert (
        f"cities-old releases {DOMAIN} before cities claims it: cities starts only once this is done" in text
    )
    assert (
        f"cities-old releases {DOMAIN} before cities claims it: cities waits for it; {DOMAIN} does not serve "
        "from when cities-old lets it go until the distribution of cities is deployed (CloudFront: 5-15 minutes)"
        in text
    )

    # the old stack's deletion is held until the unrelated instance has executed its change set
    executed = threading.Event()
    recorded.holds.append(("cloudformation.DeleteStack", "rr-cities-old", executed))

    def watch() -> None:
        while not any(c[0] == "cloudformation.ExecuteChangeSet" for c in list(recorded)):
            time.sleep(0.01)
        executed.set()

    watcher = threading.Thread(target=watch, daemon=True)
    del recorded[:]
    watcher.start()
    result = dl("apply", "--yes", "--no-verify", "--allow-destroy")
    assert result.exit_code == 0, result.output
    assert f"cities: cities-old released {DOMAIN}; claiming it now" in result.output

    delete = recorded.index(next(c for c in recorded if c[0] == "cloudformation.DeleteStack"))
    assert last(recorded, "rr-cities-old") < claim(recorded, "rr-cities")  # release complete, then claim
    other_executed = recorded.index(next(c for c in recorded if c[0] == "cloudformation.ExecuteChangeSet"))
    assert first(recorded, "rr-other") < other_executed < delete  # the unrelated one did not wait
    assert "No changes" in dl("plan").output


def test_moving_a_domain_between_two_instances_waits_for_the_release(project, recorded):
    write_manifest(
        project,
        "project: rm\ninstances:\n" + instance("a", "alpha.db", with_domain()) + instance("b", "beta.db"),
    )
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    write_manifest(
        project,
        "project: rm\ninstances:\n" + instance("a", "alpha.db") + instance("b", "beta.db", with_domain()),
    )
    del recorded[:]
    result = dl("apply", "--yes", "--no-verify", "--allow-destroy")
    assert result.exit_code == 0, result.output
    assert f"a releases {DOMAIN} before b claims it" in " ".join(result.output.split())
    assert f"b: a released {DOMAIN}; claiming it now" in result.output
    # a's update was executed and followed to its end (stack events) before b's first change set
    followed = [
        n
        for n, c in enumerate(recorded)
        if c[0] == "cloudformation.DescribeStackEvents" and touches(c, "rm-a")
    ]
    assert followed and claim(recorded, "rm-a") < max(followed) < claim(recorded, "rm-b")


def test_a_domain_swap_is_refused_before_anything_is_written(project, recorded):
    other = "other.example.invalid"
    write_manifest(
        project,
        "project: rs\ninstances:\n"
        + instance("a", "alpha.db", with_domain())
        + instance("b", "beta.db", f"    domain: {other}\n    certificate_arn: {CERT}\n"),
    )
    assert dl("apply", "--yes", "--no-verify").exit_code == 0
    write_manifest(
        project,
        "project: rs\ninstances:\n"
        + instance("a", "alpha.db", f"    domain: {other}\n    certificate_arn: {CERT}\n")
        + instance("b", "beta.db", with_domain()),
    )
    del recorded[:]
    result = dl("apply", "--yes", "--no-verify", "--allow-destroy")
    assert result.exit_code == 1
    assert "a, b swap domains" in result.output and "nothing was changed" in result.output
    writes = [c for c in recorded if c[0].startswith("cloudformation.") and "Describe" not in c[0]]
    assert [c for c in writes if not c[0].endswith(("GetTemplate", "ListChangeSets"))] == []
