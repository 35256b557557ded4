"""inspect_database: row counts and columns per table and view, in the shape Datasette's inspect_data reads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import pytest
from datasette.app import Datasette

from dl.build.inspection import inspect_database
from dl.errors import DlError
from tests.build.conftest import northwind_db


def test_tables_views_counts_and_columns(tmp_path):
    path = northwind_db(tmp_path / "northwind.db")
    data = inspect_database(path)
    assert data == {
        "file": "northwind.db",
        "hash": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
        "tables": {
            "customers": {"count": 91, "columns": ["id", "name", "value"]},
            "orders": {"count": 830, "columns": ["id", "name", "value"]},
        },
        "views": {"big_orders": {"columns": ["id", "name"]}},
    }
    assert json.loads(json.dumps(data)) == data  # plain JSON


def test_awkward_names_and_fts_tables_match_datasette_inspect(tmp_path):
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute('create table "we""ird name" ("a b" text, "c""d" int)')
        conn.execute('insert into "we""ird name" values (?, ?)', ("x", 1))
        conn.execute("create virtual table docs using fts5(body)")
        conn.execute("insert into docs (body) values ('hello')")
    conn.close()
    data = inspect_database(path)
    assert data["tables"]['we"ird name'] == {"count": 1, "columns": ["a b", 'c"d']}
    # the same tables and counts as `datasette inspect` (shadow tables of full-text search included);
    # (Datasette cannot count a table whose name holds "]": it quotes with brackets. We count it.)
    ours = {name: {"count": t["count"]} for name, t in data["tables"].items()}
    from datasette.cli import inspect_

    theirs = asyncio.run(inspect_([str(path)], sqlite_extensions=None))["odd"]
    assert ours == theirs["tables"]
    assert data["hash"] == theirs["hash"] and data["size"] == theirs["size"]


def test_datasette_takes_counts_from_inspect_data_instead_of_counting(tmp_path):
    path = northwind_db(tmp_path / "northwind.db")
    data = inspect_database(path)
    data["tables"]["orders"]["count"] = 12345  # a count Datasette could only have read from the inspect data
    ds = Datasette(immutables=[str(path)], inspect_data={"northwind": data})

    async def fetch():
        return (await ds.client.get("/northwind.json")).json()

    tables = {t["name"]: t["count"] for t in asyncio.run(fetch())["tables"]}
    assert tables["orders"] == 12345
    assert tables["customers"] == 91


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(DlError, match="notes.db: not a readable SQLite database"):
        inspect_database(path)


def test_table_names_with_brackets_are_counted(tmp_path):
    """Datasette's own count query brackets names and gives None here; the plan still sees real counts."""
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute('create table "a [b]" (x)')
        conn.executemany('insert into "a [b]" values (?)', [(1,), (2,)])
    conn.close()
    assert inspect_database(path)["tables"]["a [b]"] == {"count": 2, "columns": ["x"]}
