"""The README stays true: every manifest property of schema.json and every CLI command and option is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from dl.cli import main
from dl.manifest.schema import schema

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 3)
    return README[start : end if end != -1 else None]


def schema_properties() -> list[str]:
    s = schema()
    names = set(s["properties"]) | set(s["$defs"]["instance"]["properties"])
    names |= set(s["$defs"]["instance"]["properties"]["config"]["properties"])
    names |= set(s["$defs"]["instance"]["properties"]["databases"]["items"]["properties"])
    return sorted(names)


@pytest.mark.parametrize("name", schema_properties())
def test_every_schema_property_is_in_the_manifest_reference(name):
    assert f"`{name}`" in section("Manifest reference")


def test_every_schema_property_has_a_description():
    s = schema()
    for props in (s["properties"], s["$defs"]["instance"]["properties"]):
        for name, prop in props.items():
            assert prop.get("description"), name


def commands() -> list[tuple[str, click.Command]]:
    return sorted(main.commands.items())


@pytest.mark.parametrize(("name", "command"), commands(), ids=[n for n, _ in commands()])
def test_every_command_and_option_is_in_the_cli_reference(name, command):
    reference = section("CLI reference")
    assert re.search(rf"^### `dl {name}\b", reference, re.M), f"no section for dl {name}"
    assert command.help, f"dl {name} has no help text"
    body = reference[re.search(rf"^### `dl {name}\b", reference, re.M).start() :]
    body = body[: body.find("\n### ", 4) if "\n### " in body[4:] else None]
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"dl {name} {param.opts[0]} has no help text"
            assert any(f"`{opt}" in body or f"{opt}`" in body or f", {opt}" in body for opt in param.opts), (
                f"dl {name}: option {param.opts} is not documented in its README section"
            )


def test_readme_quick_start_commands_exist():
    quick = section("Quick start")
    assert "dl serve -f datasette-lambda.yml.example" in quick
    assert "python -m pytest" in quick
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest" in ci  # CI runs the README's test command
