"""Fixtures for the runtime: the Datasette line the handler runs (`line`: "0.65", "1.0a").

The real `dl serve` fixtures (`served`, `shop_files`) are in tests/local/conftest.py.
"""

from __future__ import annotations

import pytest

from dl.manifest.lines import LINES


@pytest.fixture(scope="session", params=LINES)
def line(request) -> str:
    """The Datasette line the served instances run."""
    return request.param
