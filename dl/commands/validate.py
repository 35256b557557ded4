"""`dl validate`: check the manifest and every file it names (dl/manifest/), reporting every problem at once.

The problems themselves reach the user through the group's error handler (dl/cli.py): FILE:LINE:COL: PATH:
MESSAGE, one per line, exit 1.
"""

from __future__ import annotations

import click

from dl.commands.options import load, manifest_option, outside_paths_option


@click.command("validate")
@manifest_option
@outside_paths_option
def validate_command(manifest_path: str, allow_outside_paths: bool) -> None:
    """Check the manifest and every file it names; report all problems at once.

    Exit 0 when valid, 1 when not (each problem as FILE:LINE:COL: PATH: MESSAGE), 2 for usage errors.
    """
    manifest = load(manifest_path, allow_outside_paths)
    databases = sum(len(i.databases) for i in manifest.instances.values())
    count = len(manifest.instances)
    click.echo(
        f"{manifest_path}: valid (project {manifest.project}: {count} instance{'s' if count != 1 else ''}, "
        f"{databases} database{'s' if databases != 1 else ''})"
    )
