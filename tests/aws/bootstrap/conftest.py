"""Fixtures of the deploy tests (a project folder, a CLI runner) for the bootstrap tests."""

from tests.apply.conftest import calls, every_call, project, shared_cache  # noqa: F401
