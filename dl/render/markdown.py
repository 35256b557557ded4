"""Safe Markdown for GitHub: escape untrusted text, quote code, and shorten documents without breaking them.

Everything that comes from users or their databases (instance, database, table and column names, metadata,
error messages) must pass through one of these helpers before it lands in Markdown or HTML that GitHub
renders. Which helper depends on where the text goes:

- ``escape_html``: inside raw HTML (``<summary>...</summary>``, attribute values).
- ``escape_markdown``: in ordinary Markdown text (paragraphs, list items, table cells, link text).
- ``code_span`` / ``code_block``: shown verbatim as code (nothing inside is interpreted).

``cut_markdown`` shortens a Markdown document at a line boundary and closes an open code fence, so a
shortened document never leaves text from a code block to be read as Markdown or HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

# ASCII punctuation that means something to CommonMark/GFM (``&<>"'`` are handled by html.escape).
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=^$:])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def text_length(text: str) -> int:
    """Length as GitHub counts it for a comment, conservatively: UTF-16 code units (>= code points)."""
    return len(text.encode("utf-16-le")) // 2


def utf8_length(text: str) -> int:
    """Length in UTF-8 bytes (the unit of the 1 MiB job summary limit)."""
    return len(text.encode("utf-8"))


def escape_html(text: str) -> str:
    """Escape text for raw HTML content or a quoted attribute; line breaks become spaces."""
    return html.escape(_LINE_BREAKS.sub(" ", str(text)), quote=True)


def escape_markdown(text: str) -> str:
    """Escape text so GitHub renders it literally in Markdown (also safe inside a GFM table cell).

    Markdown punctuation is backslash-escaped, then ``&<>"'`` become HTML entities, so no tag, link,
    emphasis, heading or table separator can come from the text. Line breaks become spaces, so the text
    cannot start a new block.
    """
    flat = _LINE_BREAKS.sub(" ", str(text))
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", flat), quote=True)


def code_span(text: str, *, in_table: bool = False) -> str:
    """Inline code showing ``text`` verbatim: the fence is longer than any backtick run inside it.

    ``in_table=True`` also escapes ``|``, which GFM reads as a cell separator even inside code spans.
    """
    flat = _LINE_BREAKS.sub(" ", str(text))
    if in_table:
        flat = flat.replace("|", "\\|")
    fence = "`" * (_longest_run(flat, "`") + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def code_block(text: str, language: str = "") -> str:
    """A fenced code block showing ``text`` verbatim (the fence outlasts any backtick run inside)."""
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    info = re.sub(r"[^A-Za-z0-9_+-]", "", language)
    body = str(text).rstrip("\n")
    return f"{fence}{info}\n{body}\n{fence}"


def safe_link(label: str, url: str) -> str:
    """A Markdown link to an http(s) URL with an escaped label; any other URL is shown as text only."""
    if re.fullmatch(r"https?://[^\s<>()\"'`\\]+", url or ""):
        return f"[{escape_markdown(label)}]({url})"
    return escape_markdown(label if label == url else f"{label} ({url})")


def cut_markdown(markdown: str, budget: int, measure: Callable[[str], int] = text_length) -> str:
    """The longest prefix of whole lines of ``markdown`` that fits ``budget`` (as counted by ``measure``).

    A code fence left open by the cut is closed (the closing fence is counted), so the kept text renders as
    it did in the whole document. Lines are never split: a line that does not fit ends the prefix.
    """
    kept: list[str] = []
    used = 0
    fence: str | None = None  # the fence string that closes the open code block
    for line in markdown.split("\n"):
        next_fence = _fence_after(line, fence)
        closing = measure("\n" + next_fence) if next_fence else 0
        cost = measure(line) + (1 if kept else 0)
        if used + cost + closing > budget:
            break
        kept.append(line)
        used += cost
        fence = next_fence
    if fence:
        kept.append(fence)
    return "\n".join(kept)


def _fence_after(line: str, fence: str | None) -> str | None:
    """The fence that is open after ``line``, given the one open before it (None: not in a code block)."""
    if fence is None:
        match = _FENCE_OPEN.match(line)
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            return match.group(1)
        return None
    indent = len(line) - len(line.lstrip(" "))
    stripped = line.strip()
    closes = indent <= 3 and bool(stripped) and set(stripped) == {fence[0]} and len(stripped) >= len(fence)
    return None if closes else fence


def _longest_run(text: str, char: str) -> int:
    """Length of the longest run of ``char`` in ``text``."""
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(r) for r in runs), default=0)
