"""The lock script runs as the docs say (``python dl/build/lock/regenerate.py``, from a checkout): it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_script_starts_from_a_checkout():
    result = subprocess.run(
        [sys.executable, "dl/build/lock/regenerate.py", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "--line" in result.stdout and "--action" in result.stdout
