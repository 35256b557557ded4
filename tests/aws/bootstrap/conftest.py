"""Fixtures of the deploy tests (a project folder, a CLI runner) for the bootstrap tests."""

from tests.apply.conftest import calls, every_call, project  # noqa: F401
