"""The opt-in real-AWS suite: deselected unless ``DL_AWS_TESTS=1`` (it creates and deletes real resources, costs
a little money and takes about half an hour; CI never runs it). See README "Testing on real AWS"."""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("DL_AWS_TESTS") == "1"
REASON = "tests/real_aws runs against real AWS only with DL_AWS_TESTS=1 and credentials (see README)"


def pytest_report_header(config):
    return None if ENABLED else f"tests/real_aws: deselected ({REASON})"


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    here = os.path.dirname(__file__)
    mine = [item for item in items if str(item.path).startswith(here + os.sep)]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


@pytest.fixture(autouse=True)
def real_aws(monkeypatch):
    """Real AWS: no emulator endpoint, whatever the environment says (the gate's hook has nothing to watch)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("DL_EMULATOR_HOOK", raising=False)
