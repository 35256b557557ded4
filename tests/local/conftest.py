"""Fixtures of tests/local: a real `dl serve` over real HTTP, and the package cache tests/apply shares.

`served` (session): one `dl serve` process (`python -m dl serve --port 0`) on a manifest with two instances
built from the same databases: `site` (prefix /data/; its databases `data`, named like the prefix, `other`
and `tagged`; cors, metadata, default_page_size 5, a plugin) and
`plain` (everything default, to compare with plain Datasette). The first build of a session installs the
locked dependencies for this machine into the tool's cache (DL_CACHE_DIR); later sessions reuse them.

Every test using `served` runs once per Datasette line (`line`: "0.65", "1.0a"; manifest `datasette:`).

The sandbox tour builds into ``shared_cache`` (tests/conftest.py), the cache every deploying folder shares.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dl.manifest.lines import LINES
from tests.runtime.serving import make_shop_db, make_tagged_db, start_serve, stop_serve

PLUGIN = "datasette-block-robots==1.1.1"


MANIFEST = """\
version: 1
project: runtime-test
defaults:
  datasette: "LINE"
instances:
  site:
    databases: [data.db, other.db, tagged.db]
    prefix: /data
    cors: true
    metadata:
      title: Runtime test site
      description: Served by the exact Lambda package
      databases:
        data:
          tables:
            items: {description: Things for sale}
            owners: {sort_desc: name}
          queries:
            cheap: {sql: "select name, value from items where value < 5 order by id", title: Cheap things}
        other:
          allow_sql: {id: root}
      plugins:
        datasette-block-robots: {disallow: [/data/other]}
    config:
      default_page_size: 5
    plugins: [PLUGIN]
  plain:
    databases: [data.db, other.db]
    plugins: [PLUGIN]
""".replace("PLUGIN", PLUGIN)


@pytest.fixture(scope="session", params=LINES)
def line(request) -> str:
    """The Datasette line the served instances run."""
    return request.param


@pytest.fixture(scope="session")
def shop_files(tmp_path_factory, line) -> Path:
    """The folder holding the session manifest and its databases."""
    folder = tmp_path_factory.mktemp(f"served-{line}")
    make_shop_db(folder / "data.db")
    make_shop_db(folder / "other.db", items=4)
    make_tagged_db(folder / "tagged.db")
    (folder / "datasette-lambda.yml").write_text(MANIFEST.replace("LINE", line))
    return folder


@pytest.fixture(scope="session")
def served(shop_files):
    """One `dl serve` for the session (see the module docstring)."""
    process = start_serve(shop_files / "datasette-lambda.yml")
    yield process
    stop_serve(process)
