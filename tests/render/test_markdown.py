"""Escaping and shortening Markdown, checked by rendering with cmark-gfm (the renderer GitHub uses)."""

from __future__ import annotations

import html
import re

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import given, settings
from hypothesis import strategies as st

from dl.render.markdown import code_block, code_span, cut_markdown, escape_html, escape_markdown, safe_link

HOSTILE = [
    "</details><img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**bold** _it_ `code` [link](https://evil.example) ![i](x.png)",
    "| a | b |",
    "# heading",
    "- item",
    "1. item",
    "> quote",
    "&amp; &lt;b&gt; &#60;",
    "line\nbreak\r\n## heading",
    "www.example.com http://example.com user@example.com",
    "a\\*b\\",
    "~~strike~~ <!-- comment --> ---",
]

# Printable text without control characters (cmark replaces NUL; other controls are not names anyone uses).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=60)


def render(markdown: str) -> str:
    """GitHub-flavoured HTML, raw HTML passed through (GitHub sanitises later; we want to see it)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def paragraph_text(markdown_inline: str) -> str:
    """Render ``Name: <inline> end`` and return the inline part as text, asserting no tag was produced.

    Only e-mail autolinks are let through: cmark-gfm links ``user@example.com`` after escapes and entities
    are resolved, so no escaping prevents it; the link shows the same text.
    """
    out = render(f"Name: {markdown_inline} end").strip()
    assert out.startswith("<p>Name: ") and out.endswith(" end</p>"), out
    inner = out[len("<p>Name: ") : -len(" end</p>")]
    # GFM links e-mail addresses found in text whatever their escaping; the link text is the same text.
    inner = re.sub(r'<a href="mailto:([^"<>]*)">\1</a>', r"\1", inner)
    assert "<" not in inner, f"markup leaked: {out}"
    return html.unescape(inner)


def flat(text: str) -> str:
    return re.sub(r"[\r\n\u2028\u2029]+", " ", text)


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_markdown_renders_as_the_same_text(text):
    assert paragraph_text(escape_markdown(text)) == flat(text)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_escaped_markdown_renders_any_text_literally(text):
    assert paragraph_text(escape_markdown(text)) == flat(text)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_code_span_shows_any_text_verbatim(text):
    out = render(f"Name: {code_span(text)} end").strip()
    match = re.fullmatch(r"<p>Name: <code>(.*)</code> end</p>", out, re.S)
    assert match, out
    # CommonMark strips one leading and trailing space when both are present and the content is not blank.
    assert html.unescape(match.group(1)).strip(" ") == flat(text).strip(" ")


def test_escaped_markdown_inside_a_table_cell_stays_in_its_cell():
    table = (
        "| Table | Rows |\n| --- | --- |\n"
        + f"| {escape_markdown('a | b')} | {code_span('c|d', in_table=True)} |\n"
    )
    out = render(table)
    assert out.count("<td>") == 2
    assert "<td>a | b</td>" in out and "<td><code>c|d</code></td>" in out


def test_escaped_html_in_a_summary_element_is_text():
    title = "</details><img src=x onerror=alert(1)>"
    out = render(f"<details><summary>{escape_html(title)}</summary>\n\nbody\n\n</details>\n")
    assert "<img" not in out and out.count("</details>") == 1
    assert html.escape(title, quote=False) in out


def test_code_block_cannot_be_closed_by_its_content():
    text = "```\n</details><img src=x>\n````"
    out = render(code_block(text))
    assert out.count("<pre>") == 1 and "<img" not in out
    assert html.unescape(re.search(r"<code>(.*)</code>", out, re.S).group(1)).rstrip("\n") == text


def test_safe_link_only_links_http_urls():
    assert render(safe_link("site", "https://example.com/x")).strip() == (
        '<p><a href="https://example.com/x">site</a></p>'
    )
    assert "<a" not in render(safe_link("x", "javascript:alert(1)"))


def test_cut_markdown_keeps_whole_lines_within_budget():
    text = "\n".join(f"line {i}" for i in range(100))
    cut = cut_markdown(text, 50)
    assert len(cut) <= 50
    assert cut == "\n".join(f"line {i}" for i in range(len(cut.splitlines())))


def test_cut_markdown_closes_an_open_code_fence():
    text = "intro\n\n````diff\n" + "\n".join(f"+ <b>row {i}</b>" for i in range(100)) + "\n````\n\nafter"
    cut = cut_markdown(text, 120)
    assert len(cut) <= 120
    assert cut.endswith("\n````")
    out = render(cut + "\n\n**next**")
    assert "<b>" not in out and "<strong>next</strong>" in out


def test_cut_markdown_returns_everything_that_fits():
    text = "a\n\n```\ncode\n```\n\nb"
    assert cut_markdown(text, 1000) == text
