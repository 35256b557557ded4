"""A naive Lambda package, like the ancestor project's: the baseline of ``benchmarks/cold_start.py``.

Plain ``pip install --target`` of the same pinned versions (pip, setuptools and all included), no bytecode
(Lambda's code folder is read-only, so every cold start compiles every module), no inspect data, and the
database opened mutable (Datasette counts rows and watches the file) by a two-line Mangum handler.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from dl.build.dependencies import LOCK_FILE, lock_pins

HANDLER = """\
import os
from datasette.app import Datasette
from mangum import Mangum

_here = os.path.dirname(os.path.abspath(__file__))
_files = sorted(os.path.join(_here, "db", f) for f in os.listdir(os.path.join(_here, "db")))
handler = Mangum(Datasette(files=_files).app(), lifespan="off")
"""


def build_naive(root: Path, databases: list[Path], python_version: str) -> Path:
    """Install the naive package into ``root`` (reused when present); returns ``root``."""
    if not (root / "naive_handler.py").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        pins = root.parent / f"{root.name}-pins.txt"
        pins.write_text(lock_pins(LOCK_FILE.read_text()))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(root), "--no-compile"]
        cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
        subprocess.run([*cmd, "-r", str(pins)], check=True, capture_output=True)
        (root / "naive_handler.py").write_text(HANDLER)
    shutil.rmtree(root / "db", ignore_errors=True)
    (root / "db").mkdir()
    for db in databases:
        shutil.copyfile(db, root / "db" / db.name)
    return root
