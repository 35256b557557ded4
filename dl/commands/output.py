"""What the deploying commands (plan, apply, destroy) print and ask: stderr lines, colour, the manifest's label,
the confirmation prompt and the per-instance report of an apply or destroy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dl.errors import DlError


def stderr(line: str) -> None:
    click.echo(line, err=True)


def colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def manifest_label(manifest) -> str:
    try:
        return os.path.relpath(manifest.path, manifest.root)
    except ValueError:
        return manifest.path.name


def label_of(manifest_path: str) -> str:
    """The label ``manifest_label`` gives, from the path alone (for a manifest that may not load)."""
    from dl.manifest.load import find_root

    path = Path(manifest_path).absolute()
    try:
        return os.path.relpath(path, find_root(path.parent))
    except ValueError:
        return path.name


def confirm(yes: bool, question: str, verb: str = "apply") -> None:
    if yes or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    if not sys.stdin.isatty():
        raise DlError(f"no terminal to confirm on: pass --yes to {verb} without confirmation")
    if not click.confirm(question, default=False):
        raise DlError("cancelled: nothing was changed")


def report_outcomes(result, command: str = "Apply") -> None:
    """One line per instance, then `Apply complete: ...` (or `Destroy complete: ...` for `dl destroy`)."""
    ok = [o for o in result.outcomes if o.ok]
    failed = [o for o in result.outcomes if not o.ok]
    for o in ok:
        done = o.message if o.message == "destroyed" else f"{o.action.value} {o.message}"
        click.echo(f"{o.name}: {done}" + (f" -> {o.url}" if o.url else ""))
    for o in failed:
        click.echo(f"{o.name}: FAILED ({o.action.value}): {o.message}", err=True)
    for line in result.certificates:  # orphaned certificate stacks: removed, or left for the next apply
        click.echo(line)
    verb = f"{command} complete" if not failed else f"{command} failed"
    click.echo(f"{verb}: {len(ok)} succeeded, {len(failed)} failed.")
