"""Fixtures of tests/local: the sandbox tour builds packages into the cache tests/apply shares."""

from tests.apply.conftest import shared_cache  # noqa: F401 (a pytest fixture, used by name)
