"""`dl apply` through a proxy that injects AWS faults: throttling, 500/503, connection resets (before and
after the request reached AWS) and responses held past the client's read timeout.

At a 15 % fault rate an apply either succeeds or fails cleanly (exit 1, a message, no traceback), and at most
one more apply (still under faults) converges: afterwards `dl plan` is empty, no change set is left
unexecuted, no stack is duplicated and every artifact object holds the bytes its key names.
"""

from __future__ import annotations

import pytest

from tests.apply.conftest import add_rows, dl
from tests.reliability.conftest import assert_clean_failure, assert_converged, report

SEEDS = [11, 23, 37, 41]


def apply_until_converged(proxy) -> int:
    """Apply under faults; a failure must be clean and the next apply must succeed. Returns applies run."""
    first = dl("apply", "--yes", "--no-verify")
    if first.exit_code == 0:
        return 1
    assert_clean_failure(first)
    second = dl("apply", "--yes", "--no-verify")
    assert second.exit_code == 0, f"{first.output}\n--- second apply ---\n{second.output}"
    return 2


@pytest.mark.parametrize("seed", SEEDS)
def test_apply_converges_at_a_15_percent_fault_rate(rel_project, faults, aws, seed):
    proxy = faults(rate=0.15, seed=seed)
    runs = apply_until_converged(proxy)  # create: bootstrap stack, uploads, three instance stacks
    add_rows(rel_project / "a.db", "orders", 2)  # update: a new database object and a change set
    (rel_project / "datasette-lambda.yml").write_text(
        (rel_project / "datasette-lambda.yml").read_text().replace("Alpha", "Alpha (updated)")
    )
    runs += apply_until_converged(proxy)
    proxy.rate = 0.0
    checked = assert_converged(aws)
    faults_injected = sum(v for k, v in proxy.stats.items() if k != "requests")
    report(
        f"seed {seed}: {proxy.stats['requests']} requests, {faults_injected} faults "
        f"{dict((k, v) for k, v in proxy.stats.items() if k != 'requests')}, {runs} applies for 2 changes, "
        f"converged; {checked['objects']} objects verified"
    )


def test_non_idempotent_writes_hit_by_resets_and_timeouts_still_apply_in_one_go(rel_project, faults, aws):
    """A CreateChangeSet or ExecuteChangeSet that took effect although the client saw a reset or a timeout is
    not sent again blindly (that would make a second change set, or fail on executing one twice)."""
    proxy = faults(
        rules={
            "CreateChangeSet": ["reset-after", "", "timeout", "reset"],
            "ExecuteChangeSet": ["", "reset-after", "timeout", "throttle"],
            "PutObject": ["reset-after", "timeout", "503"],
            "DescribeChangeSet": ["500"],
        }
    )
    result = dl("apply", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "Apply complete: 3 succeeded, 0 failed." in result.output
    add_rows(rel_project / "b.db", "cities", 1)
    proxy.rules = {"CreateChangeSet": ["timeout"], "ExecuteChangeSet": ["reset-after"]}
    result = dl("apply", "--yes", "--no-verify")
    assert result.exit_code == 0, result.output
    injected = {k: v for k, v in proxy.stats.items() if k != "requests"}
    assert injected == {"reset-after": 4, "timeout": 4, "reset": 1, "throttle": 1, "503": 1, "500": 1}
    assert_converged(aws)
    report(
        f"targeted writes: {injected} injected on CreateChangeSet/ExecuteChangeSet/PutObject, one apply each"
    )
