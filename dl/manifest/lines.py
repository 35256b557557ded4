"""The Datasette lines an instance can run (manifest ``datasette:``): ``"0.65"`` (the default) or ``"1.0a"``.

Each line has, in ``dl/build/lock/``, its own top-level pins (``requirements[-LINE].in``), its hash-locked closure
(``lambda[-LINE].txt``) and the list of Datasette's settings of the locked version (``settings-LINE.json``:
name, default, help), all written by ``python dl/build/lock/regenerate.py``. The tool reads settings from that data,
never from whichever Datasette happens to be installed beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LOCK_DIR = Path(__file__).resolve().parents[1] / "build" / "lock"
DEFAULT_LINE = "0.65"
LINES = ("0.65", "1.0a")


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str

    @property
    def type(self) -> type:
        return type(self.default)


def _suffix(line: str) -> str:
    if line not in LINES:
        raise ValueError(f"unknown Datasette line {line!r} (expected one of {', '.join(LINES)})")
    return "" if line == DEFAULT_LINE else f"-{line}"


def lock_file(line: str = DEFAULT_LINE) -> Path:
    """The hash-locked closure of the Lambda package for ``line``."""
    return LOCK_DIR / f"lambda{_suffix(line)}.txt"


def requirements_file(line: str = DEFAULT_LINE) -> Path:
    """The top-level pins ``regenerate.py`` resolves for ``line``."""
    return LOCK_DIR / f"requirements{_suffix(line)}.in"


def settings_file(line: str = DEFAULT_LINE) -> Path:
    _suffix(line)
    return LOCK_DIR / f"settings-{line}.json"


@cache
def settings(line: str = DEFAULT_LINE) -> tuple[Setting, ...]:
    """Datasette's settings in the locked version of ``line``, in Datasette's order (base_url included)."""
    data = json.loads(settings_file(line).read_text(encoding="utf-8"))
    return tuple(Setting(s["name"], s["default"], s["help"]) for s in data["settings"])


@cache
def locked_version(line: str = DEFAULT_LINE) -> str:
    """The Datasette version ``line`` is locked to (from its settings data, written with the lock)."""
    return json.loads(settings_file(line).read_text(encoding="utf-8"))["datasette"]


def line_of(setting_name: str) -> list[str]:
    """The lines that have a setting of this name."""
    return [line for line in LINES if any(s.name == setting_name for s in settings(line))]
