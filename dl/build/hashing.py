"""Content hashes of files: streamed (flat memory for any size) and cached.

The cache is keyed by (path, size, mtime_ns, inode), like git's index, so an unchanged multi-GB database is not
re-read on the next ``dl plan``. It lives in ``$DL_CACHE_DIR`` (default ``~/.cache/datasette-lambda``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

CHUNK = 4 * 1024 * 1024  # large reads keep hashing close to sha256sum's throughput


def cache_dir() -> Path:
    """The tool's cache folder (created on demand by writers)."""
    base = os.environ.get("DL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "datasette-lambda"
    )
    return Path(base)


def sha256_stream(path: Path) -> str:
    """sha256 hex digest of a file, read in large chunks into a reused buffer."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def stat_key(path: Path, st: os.stat_result) -> str:
    """A file's identity for the caches: (resolved path, size, mtime_ns, inode), hashed."""
    raw = f"{Path(path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
    return hashlib.sha256(raw.encode()).hexdigest()


def read_cache_entry(kind: str, key: str) -> dict | None:
    """The JSON document cached under ``<cache_dir>/<kind>/<key>``, or None."""
    try:
        value = json.loads((cache_dir() / kind / key).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_cache_entry(kind: str, key: str, value: dict) -> None:
    """Store a JSON document atomically (write, rename); a read-only cache only costs speed."""
    entry = cache_dir() / kind / key
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value, sort_keys=True))
        os.replace(tmp, entry)
    except OSError:
        pass


def sha256_file(path: Path, *, use_cache: bool = True) -> str:
    """sha256 of a file, from the stat-keyed cache when the file is unchanged."""
    path = Path(path)
    st = path.stat()
    if not use_cache:
        return sha256_stream(path)
    key = stat_key(path, st)
    cached = read_cache_entry("sha256", key)
    if cached and cached.get("size") == st.st_size and isinstance(cached.get("sha256"), str):
        return cached["sha256"]
    digest = sha256_stream(path)
    write_cache_entry("sha256", key, {"sha256": digest, "size": st.st_size})
    return digest
