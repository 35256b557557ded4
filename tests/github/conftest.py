"""Fixtures for the GitHub side: a fake REST API on 127.0.0.1 and an Actions-like environment.

``github_env`` sets what a pull_request run of a workflow has (event file for PR #7 with head commit
``HEAD_SHA``, API URL pointing at the fake, token, job summary and output files), so any test, including a
``dl plan --comment`` end-to-end test placed in this folder, can use the real code paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_github import HEAD_SHA, PR_NUMBER, REPOSITORY, FakeGitHub, pull_request_event


@dataclass
class GitHubEnv:
    """Paths and values of the Actions-like environment a test runs in."""

    fake: FakeGitHub
    workspace: Path
    event_path: Path
    step_summary: Path
    output: Path
    number: int = PR_NUMBER
    head_sha: str = HEAD_SHA

    def summary_text(self) -> str:
        return self.step_summary.read_text(encoding="utf-8") if self.step_summary.exists() else ""

    def write_event(self, event: dict) -> None:
        """Replace the event payload (set GITHUB_EVENT_NAME to match with monkeypatch)."""
        self.event_path.write_text(json.dumps(event), encoding="utf-8")


@pytest.fixture
def fake_github():
    """A started fake GitHub API; ``fake_github.api_url`` is its root."""
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def github_env(fake_github, tmp_path, monkeypatch) -> GitHubEnv:
    """os.environ set up like a pull_request workflow run talking to ``fake_github``."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    env = GitHubEnv(
        fake=fake_github,
        workspace=workspace,
        event_path=tmp_path / "event.json",
        step_summary=tmp_path / "step_summary.md",
        output=tmp_path / "github_output",
    )
    env.write_event(pull_request_event())
    values = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(env.event_path),
        "GITHUB_API_URL": fake_github.api_url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SHA": "e" * 40,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(env.step_summary),
        "GITHUB_OUTPUT": str(env.output),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(workspace)
    return env
