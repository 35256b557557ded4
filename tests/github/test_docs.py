"""The docs stay in step with the files they show: docs/github.md the workflow and the Action's inputs and
outputs, docs/aws.md the IAM policies of the CI roles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "docs" / "github.md"
AWS = ROOT / "docs" / "aws.md"
SHOWN = [
    (ROOT / "examples" / "github-workflow.yml", GITHUB),
    *((path, AWS) for path in sorted((ROOT / "docs" / "aws-iam").glob("*.json"))),
]


@pytest.mark.parametrize(("path", "page"), SHOWN, ids=[p.name for p, _ in SHOWN])
def test_the_docs_show_the_file_verbatim(path, page):
    text = path.read_text(encoding="utf-8").strip()
    assert text in page.read_text(encoding="utf-8"), (
        f"{page.relative_to(ROOT)} must show {path.relative_to(ROOT)} verbatim (embedded in a code block); "
        "update the page after changing the file"
    )


def test_every_action_input_and_output_is_documented():
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    docs = GITHUB.read_text(encoding="utf-8")
    for kind in ("inputs", "outputs"):
        for name, spec in action[kind].items():
            assert spec.get("description"), f"action.yml {kind}.{name} has no description"
            assert f"| `{name}` |" in docs, (
                f"docs/github.md: the Action's {kind[:-1]} `{name}` is not in its table"
            )
