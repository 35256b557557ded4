"""The README's GitHub section stays in step with the files it shows (workflow, IAM policies, Action)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHOWN = [ROOT / "examples" / "github-workflow.yml", *sorted((ROOT / "docs" / "aws-iam").glob("*.json"))]


@pytest.mark.parametrize("path", SHOWN, ids=lambda p: p.name)
def test_the_readme_shows_the_file_verbatim(path):
    text = path.read_text(encoding="utf-8").strip()
    assert text in README.read_text(encoding="utf-8"), (
        f"README.md must show {path.relative_to(ROOT)} verbatim (the section 'GitHub: plan on pull requests, "
        "apply on merge' embeds it in a code block); update the README after changing the file"
    )


def test_every_action_input_and_output_is_documented():
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    readme = README.read_text(encoding="utf-8")
    for kind in ("inputs", "outputs"):
        for name, spec in action[kind].items():
            assert spec.get("description"), f"action.yml {kind}.{name} has no description"
            assert f"| `{name}` |" in readme, (
                f"README.md: the Action's {kind[:-1]} `{name}` is not in its table"
            )
