"""Is this file a SQLite database Datasette can serve? Checked without writing to it, results cached.

The reasons are meant for users: each names what is wrong and, where there is one, the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from dl.build.hashing import cache_dir

HEADER = b"SQLite format 3\x00"
CHECK_VERSION = 1  # bump when the checks change, so cached verdicts are not reused


def _header_problem(path: Path, size: int) -> str | None:
    if size == 0:
        return "is empty (0 bytes), expected a SQLite database"
    with open(path, "rb") as f:
        header = f.read(100)
    if not header.startswith(HEADER):
        return "is not a SQLite database (its first bytes are not 'SQLite format 3')"
    if len(header) < 100:
        return f"is truncated: {size} bytes, shorter than a SQLite header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    change_counter = int.from_bytes(header[24:28], "big")
    page_count = int.from_bytes(header[28:32], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    if page_size < 512 or page_size & (page_size - 1):
        return f"is corrupt: invalid page size {page_size} in its header"
    if page_count and valid_for == change_counter and size < page_count * page_size:
        return f"is truncated: its header says {page_count * page_size} bytes, the file has {size}"
    if size % page_size:
        return f"is truncated or corrupt: {size} bytes is not a whole number of {page_size}-byte pages"
    wal = Path(f"{path}-wal")
    if header[18] == 2 and wal.exists() and wal.stat().st_size > 0:
        return (
            f"is in WAL mode with pending writes in {wal.name}: they would not be published; run "
            f"sqlite3 {path.name} 'PRAGMA wal_checkpoint(TRUNCATE)' first"
        )
    return None


def _content_problem(path: Path) -> str | None:
    uri = f"file:{path.as_posix()}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
            if [r[0] for r in rows] != ["ok"]:
                return "failed PRAGMA quick_check: " + "; ".join(str(r[0]) for r in rows)
            tables = conn.execute("select count(*) from sqlite_master where type = 'table'").fetchone()[0]
            if not tables:
                return "has no tables: there is nothing to publish"
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"is not a readable SQLite database: {exc}"
    return None


def problem(path: Path) -> str | None:
    """Why `path` cannot be served, or None when it is a healthy SQLite database with tables."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if path.is_dir():
        return "is a directory, expected a SQLite file"
    if not path.is_file():
        return "is not a regular file"
    key = hashlib.sha256(
        f"{CHECK_VERSION}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode()
    ).hexdigest()
    entry = cache_dir() / "sqlite-check" / key
    try:
        return json.loads(entry.read_text())["problem"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        verdict = _header_problem(path, st.st_size) or _content_problem(path)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    wal = Path(f"{path}-wal")
    if verdict is None and not wal.exists():  # a WAL file can change without touching the database file
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"problem": verdict}))
            os.replace(tmp, entry)
        except OSError:
            pass
    return verdict
