"""`dl status`: the project's instances from the manifest and AWS together (the rows and their rendering are
dl/ops/status.py's), through the shared pipeline without the conflict check."""

from __future__ import annotations

import click

from dl.commands.options import aws_context, load, manifest_option, outside_paths_option, sandbox_option
from dl.commands.pipeline import prepare
from dl.ops.status import instance_statuses, render_certificate_orphans, render_status, status_json


@click.command("status")
@manifest_option
@outside_paths_option
@click.argument("instances", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (name, state, drift, url, ...).")
@click.option(
    "--parallelism", default=4, show_default=True, type=click.IntRange(1, 64), help="Instances read at once."
)
@sandbox_option
def status_command(instances, as_json, parallelism, manifest_path, allow_outside_paths, sandbox):
    """Show the project's instances: deployed or not, drift, URL, stack status, last deploy, databases."""
    manifest = load(manifest_path, allow_outside_paths)
    click.get_current_context().with_resource(aws_context(sandbox, manifest.region))
    prepared = prepare(
        manifest,
        targets=list(instances) or None,
        parallelism=parallelism,
        log=lambda line: click.echo(line, err=True),
        check_conflicts=False,
    )
    rows = instance_statuses(prepared)
    click.echo(status_json(rows) if as_json else render_status(rows), nl=False)
    if not as_json:
        click.echo(render_certificate_orphans(prepared.plan), nl=False)
