"""The documentation's pages, for the tests that keep them true."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def page(name: str) -> str:
    """A page of docs/, or README.md at the root."""
    return (ROOT / name if name == "README.md" else DOCS / name).read_text(encoding="utf-8")


def section(text: str, title: str, level: int = 2) -> str:
    """The section that starts with this heading, up to the next heading of the same level."""
    marker = "#" * level + " "
    start = text.index(f"{marker}{title}")
    end = text.find(f"\n{marker}", start + len(marker))
    return text[start : end if end != -1 else None]
