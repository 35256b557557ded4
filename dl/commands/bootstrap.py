"""`dl bootstrap`: create or upgrade the project's bootstrap stack (dl/aws/bootstrap.py), like ``cdk bootstrap``.

Thin: the executor (dl/apply/executor.py) deploys the template, then the secrets keys are made
(dl/aws/secrets.py).
"""

from __future__ import annotations

import click

from dl.aws.names import BOOTSTRAP_VERSION
from dl.commands.options import aws_context, load, manifest_option, sandbox_option


@click.command("bootstrap")
@manifest_option
@sandbox_option
def bootstrap_command(manifest_path, sandbox):
    """Create or upgrade the project's bootstrap stack (bucket, execution role, boundary, CloudFront).

    Run it once per project and region with administrator credentials (the CI roles cannot change it);
    again after upgrading dl when `dl plan` asks for it.
    """
    from dl.apply.executor import Executor
    from dl.aws import secrets
    from dl.aws.client import Aws
    from dl.aws.observed import observe

    manifest = load(manifest_path, check_files=False)
    click.get_current_context().with_resource(aws_context(sandbox, manifest.region))
    aws = Aws(manifest.region)
    executor = Executor(aws, manifest, log=lambda line: click.echo(line, err=True))
    deployed = executor.ensure_bootstrap(observe(aws, manifest.project), force=True)
    secrets.ensure_keys(aws, deployed.bucket)  # both secrets keys, so the first plan can fingerprint
    click.echo(
        f"Bootstrap {manifest.project}--bootstrap in {aws.region}: version {BOOTSTRAP_VERSION}, bucket {deployed.bucket}, "
        f"execution role {deployed.execution_role_arn}"
    )
