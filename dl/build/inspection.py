"""What is inside a SQLite database: tables with row counts and columns, views with columns.

The result serves two readers:

* Datasette, as one entry of ``Datasette(inspect_data={name: entry})``: it reads ``hash``, ``size`` and
  ``tables[t]["count"]`` so a cold start neither hashes the file nor counts rows (``datasette inspect`` makes
  the same shape; the extra keys are ignored by Datasette).
* ``dl plan``, to describe a database change ("Orders: rows 830 -> 845").

Shape (plain JSON types only)::

    {
      "file": "northwind.db",            # file name, no folder
      "hash": "<sha256 hex of the file>",
      "size": 123456,                    # bytes
      "tables": {"Orders": {"count": 830, "columns": ["OrderID", "CustomerID", ...]}, ...},
      "views": {"Invoices": {"columns": ["ShipName", ...]}, ...},
    }

Results are cached like file hashes (``dl.build.hashing``): keyed by the file's path, size, mtime and inode, so an
unchanged multi-GB database is not counted again by the next ``dl plan``.

``count`` is None when SQLite cannot count a table (e.g. a virtual table whose module is missing), as in
``datasette inspect``. Tables include hidden ones (FTS shadow tables), like Datasette's own counts.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from dl.build.hashing import read_cache_entry, sha256_file, stat_key, write_cache_entry
from dl.errors import DlError

CACHE_FORMAT = 1  # bump when the shape or the counting changes


def inspect_database(path: Path) -> dict:
    """Inspect one SQLite file (opened read-only, immutable); see the module docstring for the shape."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise DlError(f"{path}: cannot read ({e.strerror or e})") from None
    key = stat_key(path, st)
    cached = read_cache_entry("inspect", key)
    if cached and cached.get("format") == CACHE_FORMAT and cached.get("size") == st.st_size:
        return cached["inspection"]
    inspection = _inspect(path)
    if path.stat().st_mtime_ns == st.st_mtime_ns:  # not written to while we read it
        write_cache_entry(
            "inspect", key, {"format": CACHE_FORMAT, "size": st.st_size, "inspection": inspection}
        )
    return inspection


def _inspect(path: Path) -> dict:
    try:
        conn = _connect_readonly(path)
        try:
            tables = {name: _table_entry(conn, name) for name in _names(conn, "table")}
            views = {name: {"columns": _columns(conn, name)} for name in _names(conn, "view")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise DlError(f"{path}: not a readable SQLite database ({e})") from None
    return {
        "file": path.name,
        "hash": sha256_file(path),
        "size": path.stat().st_size,
        "tables": tables,
        "views": views,
    }


def _connect_readonly(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True)


def _names(conn: sqlite3.Connection, kind: str) -> list[str]:
    rows = conn.execute("select name from sqlite_master where type = ? order by name", (kind,))
    return [row[0] for row in rows]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _table_entry(conn: sqlite3.Connection, table: str) -> dict:
    try:
        count = conn.execute(f"select count(*) from {_quote(table)}").fetchone()[0]
    except sqlite3.DatabaseError:  # e.g. "no such module: fts4" or a broken virtual table
        count = None
    return {"count": count, "columns": _columns(conn, table)}


def _columns(conn: sqlite3.Connection, name: str) -> list[str]:
    try:
        return [row[1] for row in conn.execute(f"pragma table_info({_quote(name)})")]
    except sqlite3.DatabaseError:  # a view over a missing table
        return []
