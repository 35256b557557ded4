"""Every relative link of README.md and docs/*.md reaches an existing file, and its #anchor a heading there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.pages import DOCS, ROOT

PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return "\n".join(part for i, part in enumerate(re.split(r"^ *```.*$", text, flags=re.M)) if i % 2 == 0)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    headings = re.findall(r"^#{1,6} (.+)$", prose(path.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def links() -> list[tuple[Path, str]]:
    found = []
    for path in PAGES:
        for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
            if not re.match(r"[a-z]+:", target):
                found.append((path, target))
    return found


@pytest.mark.parametrize(("page", "target"), links(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_relative_link_resolves(page, target):
    file, _, anchor = target.partition("#")
    resolved = (page.parent / file).resolve() if file else page
    assert resolved.exists(), f"{page.relative_to(ROOT)}: {target} points to no file"
    if anchor:
        assert resolved.suffix == ".md", (
            f"{page.relative_to(ROOT)}: {target} anchors a file that is not Markdown"
        )
        assert anchor in anchors(resolved), f"{page.relative_to(ROOT)}: {target}: no such heading"


def test_every_docs_page_is_linked_from_the_index():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for path in DOCS.glob("*.md"):
        if path.name != "README.md":
            assert f"]({path.name})" in index, f"docs/README.md does not link {path.name}"
