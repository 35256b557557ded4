"""The `dl` command line: one click group, one small function per command.

Commands stay thin: they call the pipeline (manifest -> desired -> observed -> plan -> apply -> render)
and turn its errors into messages and exit codes.
"""

from __future__ import annotations

import click

from dl import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dl")
def main() -> None:
    """datasette-lambda: publish SQLite databases with Datasette on AWS Lambda."""


# --- command registration: one line per command module -------------------------------------------
from dl.package import package_command; main.add_command(package_command)  # noqa: E402, E702, I001  # fmt: skip
