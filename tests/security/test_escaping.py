"""Names and strings from the manifest and the databases are inert wherever they land: the PR comment's
Markdown (rendered by cmark-gfm with raw HTML allowed, so only our escaping stands in the way), terminal
output, CloudFormation templates and the GitHub Action's shell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cmarkgfm
import pytest
import yaml
from cmarkgfm.cmark import Options

from dl.plan.model import Plan
from dl.render.comment import compose_comment
from dl.render.plan import comment_parts
from tests.apply.conftest import dl, write_manifest
from tests.conftest import make_db

ROOT = Path(__file__).resolve().parents[2]
HTML_TABLE = "</details><img src=x onerror=alert(1)>"
TITLE = "<script>alert('title')</script> ${AWS::AccountId} \"}] `x`"
TERMINAL_TABLES = [
    "\x1b[31mred\x1b[0m",
    "evil\u202egnp.exe",
    "bell\x07",
    "cr\roverwrite",
    "osc\x1b]0;title\x07",
]
MANIFEST = f"""\
project: esc
instances:
  alpha:
    databases: [alpha.db]
    metadata:
      title: {json.dumps(TITLE)}
      description: {json.dumps(HTML_TABLE)}
"""


@pytest.fixture
def hostile(project):
    make_db(project / "alpha.db", {HTML_TABLE: 2, **{t: 1 for t in TERMINAL_TABLES}})
    write_manifest(project, MANIFEST)
    return project


def change_everything(project: Path) -> None:
    """New rows in every hostile table, a new hostile table, a new hostile title: all listed by the plan."""
    (project / "alpha.db").unlink()
    make_db(project / "alpha.db", {HTML_TABLE: 3, "<b>new</b>": 1, **{t: 2 for t in TERMINAL_TABLES}})
    manifest = project / "datasette-lambda.yml"
    manifest.write_text(manifest.read_text().replace("title')", "title 2')"))


def plan_of(result) -> Plan:
    return Plan.from_json(json.loads(result.output[result.output.index("{") :]))


def test_html_in_names_renders_as_text_in_the_pr_comment(hostile):
    for step in ("create", "update"):
        plan = plan_of(dl("plan", "--format", "json"))
        markdown = compose_comment(comment_parts(plan, manifest="datasette-lambda.yml"))
        html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
        assert not re.search(r"<img|<script", html, re.I), html
        assert html.count("<details") == html.count("</details>")  # nothing closed early
        if step == "create":
            assert dl("apply", "--yes", "--no-verify").exit_code == 0
            change_everything(hostile)
        else:
            assert "onerror=alert(1)" in html and "&lt;script&gt;alert('title 2')" in html  # shown, as text
    text = dl("plan", "--format", "markdown").output
    html = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    assert not re.search(r"<img|<script|<b>", html, re.I), html


def test_terminal_output_carries_no_control_characters(hostile):
    for args in (("plan",), ("apply", "--yes", "--no-verify"), ("plan",), ("status",)):
        if args == ("plan",) and "applied" in locals():
            change_everything(hostile)
        out = dl(*args).output
        applied = args[0] == "apply"
        bad = sorted(
            {hex(ord(c)) for c in out if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F}
        )
        bidi = sorted({hex(ord(c)) for c in out if 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069})
        assert bad == [] and bidi == [], (args, bad, bidi)
        if args == ("plan",) and "changed" in locals():
            assert "red" in out and "gnp.exe" in out, out  # listed, made visible rather than interpreted
        changed = args == ("plan",) and "applied" in locals()


def test_templates_carry_user_strings_only_in_description_and_metadata(hostile):
    result = dl("template", "alpha", "--bucket", "example-bucket")
    assert result.exit_code == 0, result.output
    template = json.loads(result.output[result.output.index("{") :])
    markers = ("alert(", "AWS::AccountId} ", "gnp.exe")

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, (*path, i))
        elif isinstance(node, str):
            yield path, node

    places = set()
    for path, value in walk(template, ()):
        if any(m in json.dumps(value) for m in markers):
            places.add(path[0] if path[0] == "Metadata" else "/".join(map(str, path)))
        if "Fn::Sub" in path:
            assert "AWS::AccountId} " not in value and "alert" not in value, path
    assert places == {"Metadata"}, places


def test_the_action_passes_inputs_to_its_scripts_through_the_environment():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    scripts = [step["run"] for step in action["runs"]["steps"] if "run" in step]
    assert scripts, "the composite action has run steps"
    for script in scripts:
        assert "${{" not in script, script
