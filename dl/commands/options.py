"""Options shared by several commands (small decorators, as in sqlite-utils), the manifest loading they do, and
`SummaryGroup` (the help listing of `dl` and `dl sandbox`)."""

from __future__ import annotations

import click

from dl.manifest.load import DEFAULT_MANIFEST, load_manifest
from dl.manifest.model import Manifest


class SummaryGroup(click.Group):
    """`--help` lists each command with its whole first sentence, wrapped (click cuts it to fit one line)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def manifest_option(f):
    """-f/--manifest FILE (env DL_MANIFEST, default datasette-lambda.yml)."""
    return click.option(
        "-f",
        "--manifest",
        "manifest_path",
        default=DEFAULT_MANIFEST,
        envvar="DL_MANIFEST",
        show_default=True,
        show_envvar=True,
        type=click.Path(
            dir_okay=True
        ),  # directories are reported as a located manifest error, not a usage error
        help="The manifest file.",
    )(f)


def outside_paths_option(f):
    """--allow-outside-paths: let databases and metadata files live outside the manifest's repository."""
    return click.option(
        "--allow-outside-paths",
        is_flag=True,
        help="Allow database and metadata paths outside the repository that holds the manifest.",
    )(f)


def load(manifest_path: str, allow_outside_paths: bool = False, *, check_files: bool = True) -> Manifest:
    """Load the manifest for a command; ManifestError propagates to the CLI's error handler (exit 1)."""
    return load_manifest(manifest_path, allow_outside_paths=allow_outside_paths, check_files=check_files)


def select_instances(manifest: Manifest, names: tuple[str, ...]) -> list[str]:
    """The named instances (all when none are named); an unknown name is a usage error with a suggestion."""
    from dl.manifest.schema import suggest

    if not names:
        return list(manifest.instances)
    known = list(manifest.instances)
    for name in names:
        if name not in manifest.instances:
            raise click.BadParameter(
                f"no instance {name!r} in {manifest.path.name}{suggest(name, known)}; instances: {', '.join(known)}",
                param_hint="INSTANCE",
            )
    return list(dict.fromkeys(names))


def sandbox_option(f):
    """--sandbox: use the local AWS emulator of `dl sandbox up` (started when none runs) instead of AWS."""
    return click.option(
        "--sandbox",
        is_flag=True,
        help="Use the local AWS emulator (`dl sandbox up`; started when none runs) instead of AWS.",
    )(f)


def aws_context(sandbox: bool, region: str | None):
    """The block's AWS: the sandbox when asked (boto3 pointed at it), else boto3's own configuration."""
    from contextlib import nullcontext

    if not sandbox:
        return nullcontext()
    from dl.local.sandbox import environment

    return environment(region, log=lambda line: click.echo(line, err=True))


def pipeline_options(f):
    """--target (repeatable), --parallelism, --sandbox: shared by plan and apply."""
    f = sandbox_option(f)
    f = click.option(
        "--parallelism",
        default=4,
        show_default=True,
        type=click.IntRange(1, 64),
        help="Instances worked on at once.",
    )(f)
    f = click.option(
        "--target", "targets", multiple=True, metavar="INSTANCE", help="Limit to this instance (repeatable)."
    )(f)
    return f


def lock_timeout_option(f):
    return click.option(
        "--lock-timeout",
        default=0,
        show_default=True,
        type=click.IntRange(0),
        metavar="SECONDS",
        help="Wait this long for another apply or destroy of the project to release its lock (0: fail at once).",
    )(f)
