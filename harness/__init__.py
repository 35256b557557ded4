"""Checks run by hand, outside the test suite (``python -m pytest`` collects ``tests/`` only)."""
