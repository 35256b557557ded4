"""Fixtures for the runtime: real packages served by a real `dl serve`, and instance folders for the handler.

`served` (session): one `dl serve` process (`python -m dl serve --port 0`) on a manifest with two instances
built from the same databases: `site` (prefix /data/; its databases `data`, named like the prefix, `other`
and `tagged`; cors, metadata, default_page_size 5, a plugin) and
`plain` (everything default, to compare with plain Datasette). The first build of a session installs the
locked dependencies for this machine into the tool's cache (DL_CACHE_DIR); later sessions reuse them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from serving import make_shop_db, make_tagged_db, start_serve, stop_serve

PLUGIN = "datasette-block-robots==1.1.1"


MANIFEST = """\
version: 1
project: runtime-test
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
    config:
      default_page_size: 5
    plugins: [PLUGIN]
  plain:
    databases: [data.db, other.db]
    plugins: [PLUGIN]
""".replace("PLUGIN", PLUGIN)


@pytest.fixture(scope="session")
def shop_files(tmp_path_factory) -> Path:
    """The folder holding the session manifest and its databases."""
    folder = tmp_path_factory.mktemp("served")
    make_shop_db(folder / "data.db")
    make_shop_db(folder / "other.db", items=4)
    make_tagged_db(folder / "tagged.db")
    (folder / "datasette-lambda.yml").write_text(MANIFEST)
    return folder


@pytest.fixture(scope="session")
def served(shop_files):
    """One `dl serve` for the session (see the module docstring)."""
    process = start_serve(shop_files / "datasette-lambda.yml")
    yield process
    stop_serve(process)
