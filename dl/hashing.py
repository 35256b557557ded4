"""Content hashes of files: streamed (flat memory for any size) and cached.

The cache is keyed by (path, size, mtime_ns, inode), like git's index, so an unchanged multi-GB database is not
re-read on the next ``dl plan``. It lives in ``$DL_CACHE_DIR`` (default ``~/.cache/datasette-lambda``).
"""

from __future__ import annotations

import hashlib
import json
import os
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


def _cache_key(path: Path, st: os.stat_result) -> str:
    raw = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
    return hashlib.sha256(raw.encode()).hexdigest()


def sha256_file(path: Path, *, use_cache: bool = True) -> str:
    """sha256 of a file, from the stat-keyed cache when the file is unchanged."""
    path = Path(path)
    st = path.stat()
    if not use_cache:
        return sha256_stream(path)
    entry = cache_dir() / "sha256" / _cache_key(path, st)
    try:
        cached = json.loads(entry.read_text())
        if cached.get("size") == st.st_size:
            return cached["sha256"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = sha256_stream(path)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sha256": digest, "size": st.st_size}))
        os.replace(tmp, entry)
    except OSError:
        pass  # a read-only cache only costs speed
    return digest
