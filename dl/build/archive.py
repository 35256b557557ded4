"""The deterministic zip: sorted entries, fixed timestamps, permissions and compression level.

The same inputs give a byte-identical zip, so its sha256 identifies it (see ``dl/build/package.py``).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from dl.errors import DlError

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 6  # level 9 makes the code 1% smaller for 2.6x the CPU of every build


def tree_entries(root: Path) -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for every file under ``root``."""
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix(), path


def check_unique(entries: list[tuple[str, Path]]) -> None:
    """DlError when two entries would have the same name in the zip."""
    counts = Counter(name for name, _ in entries)
    duplicates = sorted(name for name, n in counts.items() if n > 1)
    if duplicates:
        raise DlError(f"package entries collide: {', '.join(duplicates[:5])}")


def write_zip(out: Path, entries: list[tuple[str, Path]]) -> int:
    """Write a reproducible zip of (name, file) entries, in the given order; returns the unzipped size.

    Fixed: timestamps (1980-01-01), permissions (0644 regular files), creator system (unix), compression
    (deflate level 6). Written to a temporary name and renamed, so ``out`` is never half-written.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    total = 0
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
            for name, source in entries:
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.create_system = 3
                info.external_attr = (0o100644 & 0xFFFF) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                _set_level(info)
                size = source.stat().st_size
                info.file_size = size  # lets zipfile decide on zip64 up front
                with open(source, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                total += size
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return total


def _set_level(info: zipfile.ZipInfo) -> None:
    """ZipFile.open(info, "w") takes the level from the ZipInfo (attribute renamed in Python 3.13)."""
    if hasattr(zipfile.ZipInfo, "compress_level"):
        info.compress_level = ZIP_LEVEL
    else:
        info._compresslevel = ZIP_LEVEL
