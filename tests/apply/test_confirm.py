"""`dl apply` asks before it changes anything when it runs on a terminal: a real pseudo-terminal here, with the
in-process sandbox (moto) as AWS. Without a terminal (and without CI=true or --yes) it refuses rather than guess."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from tests.apply.conftest import dl, write_manifest

MANIFEST = "project: ask\ninstances:\n  alpha:\n    databases: [alpha.db]\n"


def run_on_terminal(cwd, answer: str, timeout: float = 240) -> tuple[int, str]:
    """Run `dl apply --sandbox` with a pty as stdin/stdout; type `answer` at the prompt."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "AWS_ENDPOINT_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dl", "apply", "--sandbox"],
        cwd=cwd,
        stdin=follower,
        stdout=follower,
        stderr=follower,  # a terminal shows both streams (click prompts on stderr)
        env=env,
    )
    os.close(follower)
    seen, answered = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"Apply these changes? [y/N]" in seen:
            os.write(leader, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, seen.decode(errors="replace")


def test_apply_asks_on_a_terminal_and_no_means_nothing_changes(project):
    from dl.local.sandbox import down

    write_manifest(project, MANIFEST)
    try:  # both runs use one sandbox (the first starts it): "n" leaves it empty, "y" creates
        code, output = run_on_terminal(project, "n")
        assert "+ alpha: create" in output and "Apply these changes? [y/N]" in output
        assert code == 1 and "cancelled: nothing was changed" in output
        code, output = run_on_terminal(project, "y")
        assert code == 0, output
        assert "Apply complete: 1 succeeded, 0 failed." in output
    finally:
        down(project / ".dl")


def test_without_a_terminal_apply_refuses_unless_told(project, monkeypatch):
    write_manifest(project, MANIFEST)
    result = dl("apply")
    assert result.exit_code == 1 and "no terminal to confirm on: pass --yes to apply" in result.output
    monkeypatch.setenv("CI", "true")
    assert dl("apply").exit_code == 0
    monkeypatch.delenv("CI")
    result = dl("destroy", "alpha")
    assert result.exit_code == 1
    assert "no terminal to confirm on: pass --yes to destroy without confirmation" in result.output
