"""Interrupted applies: `python -m dl apply` killed with SIGKILL at seeded points (counted in requests through
the proxy, so each point is deterministic: before a write reaches AWS, or after it took effect and before dl
saw the answer), then `dl apply` again must converge. Ctrl-C (SIGINT) stops cleanly and says what was left.

moto finishes a stack operation within the ExecuteChangeSet call, so "killed while the stack updates" is
emulated by a kill right after ExecuteChangeSet reached moto (the operation happened, dl never saw it end).

Determinism, whatever the machine's load:
- the killed apply runs with ``--parallelism 1``: with parallel workers the n-th request depends on how the
  threads interleave, so a seed named a different request on a busy machine than on an idle one;
- nothing here is meant to time out, so these tests keep dl's normal read timeout. With the reliability
  suite's 1-second one, a slow moto (its CreateChangeSet parses the template in pure Python: over a second
  on a loaded machine) made dl time out and retry CreateChangeSet while the first request was still being
  handled. That retry is safe on AWS and not on moto, which differs from AWS twice (CloudFormation API
  reference): it ignores ``ClientToken`` and the rule that a change set name is unique among a stack's change
  sets, so the retry made a second change set of the same name (for a CREATE, a second stack of the same
  name), where AWS answers the retry with the first one; and executing a change set does not delete the
  stack's other change sets, which AWS does. The failures were "change sets left behind" and "duplicate
  stacks" after a converged apply. Retries of a write that did land are tested in test_faults.py, where the
  proxy holds the answer only after moto has finished the request; a retry of one still in flight, which AWS
  refuses or recognises by its token, in tests/apply/test_stack_states.py (botocore's Stubber).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from urllib.parse import parse_qs

from dl.aws import client as dl_aws
from tests.apply.conftest import add_rows, dl
from tests.reliability.conftest import assert_converged, report

KILL_POINTS = 22
SEED = 2024


def run_dl(args: list[str], proxy, timeout: float = 600) -> subprocess.CompletedProcess:
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


def request_line(n: int, service: str, action: str, body: bytes) -> str:
    """One request of the killed apply, for a failure message: number, action and what it names."""
    fields = parse_qs(body.decode("utf-8", "replace")) if service == "cloudformation" else {}
    named = " ".join(f"{k}={fields[k][0]}" for k in ("StackName", "ChangeSetType") if k in fields)
    return f"{n} {service} {action} {named}".rstrip()


def test_sigkill_at_seeded_points_then_apply_converges(rel_project, faults, aws, monkeypatch):
    monkeypatch.delenv("DL_AWS_READ_TIMEOUT")  # nothing here is meant to time out (see the docstring)
    rng = random.Random(SEED)
    target: dict = {}
    killed_at: Counter[str] = Counter()
    sent: list[str] = []  # the killed apply's requests, up to the kill

    def kill(n, service, action, body, *, after: bool):
        if not after and proxy.child.poll() is None:
            sent.append(request_line(n, service, action, body))
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
        sent.clear()
        result = run_dl(["apply", "--yes", "--no-verify", "--parallelism", "1"], proxy)
        if result.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert result.returncode == 0, result.stderr
        where = f"kill point {point} (request {target['n']}, {'after' if target['after'] else 'before'} AWS)"
        requests = "\n".join(sent)
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
        # a killed apply leaves its lock (until its lease expires): broken as a user would, after seeing it
        assert dl("unlock", "--yes").exit_code == 0
        again = dl("apply", "--yes", "--no-verify")
        assert again.exit_code == 0, f"{where}:\n{requests}\n{result.stderr}\n---\n{again.output}"
        try:
            assert_converged(aws)
        except AssertionError as exc:
            raise AssertionError(f"{where}, requests of the killed apply:\n{requests}\n---\n{exc}") from None
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    assert kills >= 20, f"only {kills} of {KILL_POINTS} runs were killed"
    report(
        f"SIGKILL: {kills} kills at seeded points, all converged with one more apply; at {dict(killed_at)}"
    )


def test_ctrl_c_stops_cleanly_and_says_what_was_left(rel_project, faults, aws, monkeypatch):
    monkeypatch.delenv("DL_AWS_READ_TIMEOUT")  # the held answer (1 s) must not time out: see the docstring

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
    from dl.apply.lock import read_lock
    from dl.aws.observed import bootstrap_bucket

    assert read_lock(dl_aws.Aws(), bootstrap_bucket(dl_aws.Aws(), "rel")) is None  # Ctrl-C released the lock
    again = dl("apply", "--yes", "--no-verify")
    assert again.exit_code == 0, again.output
    assert_converged(aws)
