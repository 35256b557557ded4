"""`dl logs INSTANCE`: an instance's CloudWatch logs, one line per event (reading and shortening them is
dl/ops/logs.py's); --follow polls until Ctrl-C."""

from __future__ import annotations

import time

import click

from dl.aws.names import log_group_name
from dl.commands.options import aws_context, load, manifest_option, sandbox_option, select_instances
from dl.errors import DlError
from dl.ops.logs import (
    DEFAULT_SINCE,
    MissingLogGroup,
    logs_client,
    nothing_to_show,
    parse_since,
    read_logs,
)


def _sleep(seconds: float) -> None:
    """The pause between --follow polls (a module function so tests can replace it)."""
    time.sleep(seconds)


@click.command("logs")
@click.argument("instance")
@manifest_option
@click.option(
    "--since",
    default=DEFAULT_SINCE,
    show_default=True,
    metavar="WHEN",
    help="Start this long ago (45s, 10m, 2h, 3d, 1w) or at an ISO-8601 time (UTC unless it has a zone).",
)
@click.option(
    "--filter",
    "filter_pattern",
    metavar="PATTERN",
    help="Only events matching this CloudWatch Logs filter pattern, e.g. ERROR or '\"Task timed out\"'.",
)
@click.option("--follow", is_flag=True, help="Keep polling for new events until interrupted (Ctrl-C).")
@sandbox_option
def logs_command(
    instance: str, manifest_path: str, since: str, filter_pattern: str | None, follow: bool, sandbox: bool
):
    """Show the CloudWatch logs of INSTANCE's Lambda function, one line per event (UTC times).

    Lambda's START/END lines are dropped and REPORT lines shortened to duration, billed duration, init
    duration and memory. With --follow, polls every 2 seconds; Ctrl-C ends it (exit 0). Exit 1 when there is
    nothing to show: the function has never logged, or no event falls in the --since window (or --filter).
    """
    try:
        start_ms = parse_since(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    manifest = load(manifest_path, allow_outside_paths=True, check_files=False)
    select_instances(manifest, (instance,))
    group = log_group_name(manifest.project, instance)
    click.get_current_context().with_resource(aws_context(sandbox, manifest.region))
    client = logs_client(manifest.region)
    shown = 0
    try:
        for line in read_logs(client, group, start_ms, filter_pattern, follow=follow, sleep=_sleep):
            click.echo(line)
            shown += 1
    except MissingLogGroup as e:
        raise DlError(f"no logs yet for instance {instance}: {e}; has it been deployed?") from None
    except KeyboardInterrupt:  # the normal end of --follow
        return
    if not shown:
        raise DlError(nothing_to_show(client, group, instance, start_ms, filter_pattern))
