"""The `dl` command line: one click group, one small function per command.

Commands stay thin: they call the pipeline (manifest -> desired -> observed -> plan -> apply -> render)
and turn its errors into messages and exit codes: 0 success, 1 failure (a clear message, never a traceback),
2 usage errors (click's own).
"""

from __future__ import annotations

import os
import sys

import click

from dl import __version__
from dl.errors import DlError, ManifestError
from dl.options import load, manifest_option, outside_paths_option


class DlGroup(click.Group):
    """Turns DlError (and anything unexpected) into a message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''} found.", err=True)
            sys.exit(1)
        except DlError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still no traceback for users unless they ask
            if os.environ.get("DL_DEBUG"):
                raise
            click.echo(f"Internal error: {type(exc).__name__}: {exc} (set DL_DEBUG=1 for the traceback)", err=True)
            sys.exit(1)


@click.group(cls=DlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dl")
def main() -> None:
    """datasette-lambda: publish SQLite databases with Datasette on AWS Lambda."""


@main.command()
@manifest_option
@outside_paths_option
def validate(manifest_path: str, allow_outside_paths: bool) -> None:
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


# --- command registration: one line per command module -------------------------------------------
from dl.logs import logs_command; main.add_command(logs_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.package import package_command; main.add_command(package_command)  # noqa: E402, E702, I001  # fmt: skip
