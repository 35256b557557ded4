"""`dl sandbox up|down`: a local AWS emulator that lasts between commands (dl/local/sandbox.py), for --sandbox."""

from __future__ import annotations

import os

import click

from dl.commands.options import SummaryGroup


@click.group("sandbox", cls=SummaryGroup)
def sandbox_group() -> None:
    """Run a local AWS emulator in the background, for --sandbox (state in memory, address in .dl/)."""


@sandbox_group.command("up")
def sandbox_up() -> None:
    """Start the local AWS emulator in the background (or say where the running one is)."""
    from dl.local.sandbox import state_dir, up

    found, started = up()
    where = os.path.relpath(state_dir())
    if started:
        click.echo(f"Sandbox started at {found.url} (pid {found.pid}; recorded in {where}/).")
    else:
        click.echo(f"Sandbox already running at {found.url} (pid {found.pid}; recorded in {where}/).")
    click.echo("Commands with --sandbox use it; `dl sandbox down` stops it and forgets everything it holds.")


@sandbox_group.command("down")
def sandbox_down() -> None:
    """Stop the local AWS emulator; everything deployed to it is gone."""
    from dl.local.sandbox import down

    stopped = down()
    if stopped is None:
        click.echo("No sandbox is running.")
    else:
        click.echo(f"Sandbox at {stopped.url} (pid {stopped.pid}) stopped.")
