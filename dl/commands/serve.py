"""``dl serve``: run the exact Lambda package of each instance locally (see ``dl/local/serve.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from dl.commands.options import aws_context, load, manifest_option, outside_paths_option
from dl.local.serve import Log, Serve

POLL_SECONDS = 1.0


@click.command("serve")
@click.argument("instance_names", metavar="[INSTANCE]...", nargs=-1)
@manifest_option
@outside_paths_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port of the first instance; the others get the following ports (0: any free port).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Also write the functions' log lines to the sandbox's CloudWatch Logs, for `dl logs --sandbox`.",
)
def serve_command(instance_names, manifest_path, allow_outside_paths, host, port, sandbox):
    """Run the Lambda package of each INSTANCE (default: all) locally, exactly as Lambda runs it.

    Each instance gets its own port and is rebuilt when the manifest, a database or a metadata file changes.
    With --sandbox, what each function prints also goes to its log group in the local AWS emulator.
    Stop with Ctrl-C.
    """
    function_log = None
    if sandbox:
        function_log = _sandbox_function_log(manifest_path, allow_outside_paths)
    serve = Serve(
        manifest_path,
        instance_names,
        host=host,
        port=port,
        allow_outside_paths=allow_outside_paths,
        function_log=function_log,
    )
    try:
        serve.start()
        for name, url in serve.urls.items():
            click.echo(f"{name}: {url}")
        click.echo("Serving; rebuilds on changes. Press Ctrl-C to stop.")
        while True:
            time.sleep(POLL_SECONDS)
            serve.reload_if_changed()
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        serve.stop()


def _sandbox_function_log(manifest_path: str, allow_outside_paths: bool) -> Callable[[str], Log]:
    """For each instance, a writer to its function's log group in the sandbox (kept for the command's life)."""
    from dl.aws.names import log_group_name
    from dl.local.log_sink import CloudWatchLines
    from dl.ops.logs import logs_client

    manifest = load(manifest_path, allow_outside_paths)
    click.get_current_context().with_resource(aws_context(True, manifest.region))
    client = logs_client(manifest.region)
    return lambda name: CloudWatchLines(client, log_group_name(manifest.project, name), click.echo)
