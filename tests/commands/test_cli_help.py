"""`dl --help` lists every command with its whole summary (click would cut it to fit one line)."""

from __future__ import annotations

from click.testing import CliRunner

from dl.cli import main


def test_help_shows_every_command_summary_whole():
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    commands = result.output[result.output.index("Commands:") :]
    assert "..." not in commands
    flat = " ".join(commands.split())
    for name, command in main.commands.items():
        summary = command.get_short_help_str(limit=10_000)
        assert f"{name} {' '.join(summary.split())}" in flat, name
    sandbox = CliRunner().invoke(main, ["sandbox", "--help"], terminal_width=80).output
    assert "up    Start the local AWS emulator in the background (or say where the" in sandbox
