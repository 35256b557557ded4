"""Interrupted applies: `python -m dl apply` killed with SIGKILL at seeded points (counted in requests through
the proxy, so each point is deterministic: before a write reaches AWS, or after it took effect and before dl
saw the answer), then `dl apply` again must converge. Ctrl-C (SIGINT) stops cleanly and says what was left.

moto finishes a stack operation within the ExecuteChangeSet call, so "killed while the stack updates" is
emulated by a kill right after ExecuteChangeSet reached moto (the operation happened, dl never saw it end).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import urllib.request
from collections import Counter

from dl import aws as dl_aws
from tests.deploy.conftest import add_rows, dl
from tests.reliability.conftest import assert_converged, report

KILL_POINTS = 22
SEED = 2024


def run_dl(args: list[str], proxy, timeout: float = 90) -> subprocess.CompletedProcess:
    """`python -m dl ...` in a child process talking to AWS through `proxy`; proxy callbacks get its pid."""
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "dl", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proxy.child = child
    out, err = child.communicate(timeout=timeout)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def reset(aws_url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{aws_url}/moto-api/reset", method="POST")).read()


def test_sigkill_at_seeded_points_then_apply_converges(rel_project, faults, aws, monkeypatch):
    rng = random.Random(SEED)
    target: dict = {}
    killed_at: Counter[str] = Counter()

    def kill(n, service, action, body, *, after: bool):
        if n == target.get("n") and target.get("after") == after and proxy.child.poll() is None:
            os.kill(proxy.child.pid, signal.SIGKILL)
            killed_at[f"{action} ({'after it reached AWS' if after else 'before it reached AWS'})"] += 1

    proxy = faults(on_request=lambda *a: kill(*a, after=False), on_forwarded=lambda *a: kill(*a, after=True))
    kills = 0
    tables = {"a.db": "orders", "b.db": "cities", "c.db": "rivers"}
    for point in range(KILL_POINTS):
        fresh = point % 6 == 0  # from nothing: bootstrap stack, uploads, three creates
        if fresh:
            reset(aws)
        else:  # an update: one database gains rows (a new object to upload, one stack to update)
            db = list(tables)[point % 3]
            add_rows(rel_project / db, tables[db], 1)
        target.update(n=rng.randint(1, 50 if fresh else 22), after=rng.random() < 0.5)
        proxy.count = 0
        result = run_dl(["apply", "--yes", "--no-verify"], proxy)
        if result.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert result.returncode == 0, result.stderr
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
        # a killed apply leaves its lock (until its lease expires): broken as a user would, after seeing it
        assert dl("unlock", "--yes").exit_code == 0
        again = dl("apply", "--yes", "--no-verify")
        assert again.exit_code == 0, f"kill point {point} ({target}):\n{result.stderr}\n---\n{again.output}"
        assert_converged(aws)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    assert kills >= 20, f"only {kills} of {KILL_POINTS} runs were killed"
    report(
        f"SIGKILL: {kills} kills at seeded points, all converged with one more apply; at {dict(killed_at)}"
    )


def test_ctrl_c_stops_cleanly_and_says_what_was_left(rel_project, faults, aws, monkeypatch):
    def interrupt(n, service, action, body):
        if action == "CreateChangeSet" and b"StackName=rel-b" in body:
            proxy.child.send_signal(signal.SIGINT)
            return "forward-then-hold"  # the signal lands while dl waits for CloudFormation's answer
        return None

    proxy = faults(on_request=interrupt, hold_seconds=1.0)
    result = run_dl(["apply", "--yes", "--no-verify", "--parallelism", "1"], proxy)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert "Interrupted: the apply stopped early." in result.stderr
    assert "  done: a\n" in result.stderr
    assert "  in progress: b (creating a change set)\n" in result.stderr
    assert "  not started: c\n" in result.stderr
    assert "run `dl apply` again" in result.stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    from dl.observed import bootstrap_bucket
    from dl.project_lock import read_lock

    assert read_lock(dl_aws.Aws(), bootstrap_bucket(dl_aws.Aws(), "rel")) is None  # Ctrl-C released the lock
    again = dl("apply", "--yes", "--no-verify")
    assert again.exit_code == 0, again.output
    assert_converged(aws)
