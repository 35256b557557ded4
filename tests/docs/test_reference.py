"""The docs stay true: every manifest property of schema.json is in docs/manifest.md, every CLI command and
option is documented in docs/commands.md and has help text, and the README's Quick start shows the commands
it promises."""

from __future__ import annotations

import re

import click
import pytest

from dl.cli import main
from dl.manifest.schema import schema
from tests.docs.pages import ROOT, page, section

MANIFEST = page("manifest.md")
COMMANDS = page("commands.md")
README = page("README.md")


def schema_properties() -> list[str]:
    s = schema()
    names = set(s["properties"]) | set(s["$defs"]["instance"]["properties"])
    names |= set(s["$defs"]["instance"]["properties"]["config"]["properties"])
    names |= set(s["$defs"]["instance"]["properties"]["databases"]["items"]["properties"])
    return sorted(names)


@pytest.mark.parametrize("name", schema_properties())
def test_every_schema_property_is_in_the_manifest_reference(name):
    assert f"`{name}`" in MANIFEST[: MANIFEST.index("\n## Plan JSON")]  # the reference, not the plan's JSON


def test_every_schema_property_has_a_description():
    s = schema()
    for props in (s["properties"], s["$defs"]["instance"]["properties"]):
        for name, prop in props.items():
            assert prop.get("description"), name


def commands() -> list[tuple[str, click.Command]]:
    return sorted(main.commands.items())


@pytest.mark.parametrize(("name", "command"), commands(), ids=[n for n, _ in commands()])
def test_every_command_and_option_is_in_the_cli_reference(name, command):
    reference = COMMANDS
    assert re.search(rf"^## `dl {name}\b", reference, re.M), f"no section for dl {name}"
    assert command.help, f"dl {name} has no help text"
    body = reference[re.search(rf"^## `dl {name}\b", reference, re.M).start() :]
    body = body[: body.find("\n## ", 3) if "\n## " in body[3:] else None]
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"dl {name} {param.opts[0]} has no help text"
            assert any(f"`{opt}" in body or f"{opt}`" in body or f", {opt}" in body for opt in param.opts), (
                f"dl {name}: option {param.opts} is not documented in its section of docs/commands.md"
            )


def test_readme_quick_start_commands_exist():
    quick = section(README, "Quick start")
    assert "dl serve -f datasette-lambda.yml.example" in quick
    assert "python -m pytest" in quick
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci  # CI runs the README's test command
