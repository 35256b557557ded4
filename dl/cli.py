"""The `dl` command line: the click group and the registration of every command (dl/commands/, one module per
command or family).

Commands stay thin: they call the pipeline (manifest -> desired -> observed -> plan -> apply -> render)
and turn its errors into messages and exit codes: 0 success, 1 failure (a clear message, never a traceback),
2 usage errors (click's own). `DlGroup` does the turning, for every command.
"""

from __future__ import annotations

import os
import sys

import click

from dl import __version__
from dl.commands.options import SummaryGroup
from dl.errors import DlError, ManifestError


class DlGroup(SummaryGroup):
    """Turns DlError (and anything unexpected) into a message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            if os.environ.get("GITHUB_ACTIONS") == "true":  # each problem on its line of the manifest
                from dl.github.outputs import annotation

                for problem in exc.problems:
                    click.echo(annotation(problem))
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''} found.", err=True)
            sys.exit(1)
        except DlError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still no traceback for users unless they ask
            if os.environ.get("DL_DEBUG"):
                raise
            click.echo(
                f"Internal error: {type(exc).__name__}: {exc} (set DL_DEBUG=1 for the traceback)", err=True
            )
            sys.exit(1)


@click.group(cls=DlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dl")
def main() -> None:
    """datasette-lambda: publish SQLite databases with Datasette on AWS Lambda."""


# --- command registration: one line per command module -------------------------------------------
from dl.commands.bootstrap import bootstrap_command; main.add_command(bootstrap_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.logs import logs_command; main.add_command(logs_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.package import package_command; main.add_command(package_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.serve import serve_command; main.add_command(serve_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.template import template_command; main.add_command(template_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.status import status_command; main.add_command(status_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.preview import preview_command; main.add_command(preview_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.validate import validate_command; main.add_command(validate_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.plan import plan_command; main.add_command(plan_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.apply import apply_command; main.add_command(apply_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.destroy import destroy_command; main.add_command(destroy_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.destroy import unlock_command; main.add_command(unlock_command)  # noqa: E402, E702, I001  # fmt: skip
from dl.commands.sandbox import sandbox_group; main.add_command(sandbox_group)  # noqa: E402, E702, I001  # fmt: skip
