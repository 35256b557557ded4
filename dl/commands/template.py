"""`dl template`: print a stack's CloudFormation template as JSON (like ``cdk synth``); nothing is deployed.

The templates themselves are pure data (dl/aws/templates.py, dl/aws/bootstrap.py); this command is their impure
edge: it builds the package (to know its content-addressed key) and, for what only AWS knows (bucket name,
certificate, hosted zone), reads deployed stacks unless given options.
"""

from __future__ import annotations

import json

import click

from dl.aws.bootstrap import bootstrap_template
from dl.aws.names import CERTIFICATE_REGION, bootstrap_stack_name, certificate_stack_name
from dl.aws.templates import (
    InstanceArtifacts,
    Template,
    certificate_template,
    instance_template,
    template_json,
)
from dl.commands.options import aws_context, load, manifest_option, outside_paths_option, sandbox_option
from dl.errors import DlError


@click.command("template")
@click.argument("instance_name", metavar="[INSTANCE]", required=False)
@manifest_option
@outside_paths_option
@click.option("--bootstrap", is_flag=True, help="Print the project's bootstrap stack (artifact bucket).")
@click.option("--certificate", is_flag=True, help="Print the instance's certificate stack (us-east-1).")
@click.option("--bucket", help="Artifact bucket name (default: the deployed bootstrap stack's output).")
@click.option(
    "--certificate-arn", help="ACM certificate for the domain (default: manifest or certificate stack)."
)
@click.option("--hosted-zone-id", help="Route 53 zone of the domain (default: looked up in Route 53).")
@click.option("--compact", is_flag=True, help="Compact canonical JSON, byte for byte what `dl apply` sends.")
@sandbox_option
def template_command(
    instance_name, manifest_path, allow_outside_paths, bootstrap, certificate, bucket, certificate_arn,
    hosted_zone_id, compact, sandbox,
):  # fmt: skip
    """Print a stack's CloudFormation template as JSON (like `cdk synth`); nothing is deployed.

    The instance's package is built (cached) so that its content-addressed key is exact.
    """
    manifest = load(manifest_path, allow_outside_paths, check_files=not bootstrap)
    if bootstrap:
        if instance_name or certificate:
            raise click.UsageError(
                "--bootstrap prints the project's stack: give no INSTANCE or --certificate"
            )
        return _echo(bootstrap_template(manifest.project), compact)
    if not instance_name:
        raise click.UsageError("name an INSTANCE (or pass --bootstrap)")
    if instance_name not in manifest.instances:
        known = ", ".join(manifest.instances) or "none"
        raise DlError(f"no instance {instance_name!r} in {manifest.path.name} (instances: {known})")
    instance = manifest.instances[instance_name]
    click.get_current_context().with_resource(aws_context(sandbox, manifest.region))  # AWS for the lookups
    lookup = _Lookup(manifest.region)
    if certificate:
        if not instance.domain:
            raise DlError(f"instance {instance_name} has no domain, so no certificate stack")
        zone = hosted_zone_id or lookup.hosted_zone(instance.domain)
        return _echo(certificate_template(manifest.project, instance, zone), compact)
    _echo(
        _instance_template_for(manifest, instance, lookup, bucket, certificate_arn, hosted_zone_id), compact
    )


def _instance_template_for(manifest, instance, lookup, bucket, certificate_arn, hosted_zone_id) -> Template:
    from dl.build.desired import build_instance

    def log(line: str) -> None:
        click.echo(line, err=True)

    bucket = bucket or lookup.bucket(manifest.project)  # what only AWS knows first: fail before building
    zone = cert = None
    if instance.domain:
        zone = hosted_zone_id or lookup.hosted_zone(instance.domain)
        cert = (
            certificate_arn
            or instance.certificate_arn
            or lookup.certificate(manifest.project, instance.domain)
        )
    spec = build_instance(manifest.project, instance, log=log, tags=dict(manifest.tags)).spec
    artifacts = InstanceArtifacts.from_spec(spec, bucket, certificate_arn=cert, hosted_zone_id=zone)
    return instance_template(manifest.project, instance, artifacts, spec=spec)


def _echo(template: Template, compact: bool) -> None:
    if compact:
        click.echo(template_json(template))
    else:
        click.echo(json.dumps(template, sort_keys=True, indent=2, ensure_ascii=False))


class _Lookup:
    """Read-only answers from the deployed stacks, for what the options did not give."""

    def __init__(self, region: str | None):
        self.region = region
        self._aws = None

    def aws(self, region: str | None = None):
        from dl.aws.client import Aws

        if region:
            return Aws(region)
        if self._aws is None:
            self._aws = Aws(self.region)
        return self._aws

    def bucket(self, project: str) -> str:
        from dl.aws.observed import BUCKET_LOGICAL_ID

        stack = self.aws().stack(bootstrap_stack_name(project))
        name = None
        if stack is not None:  # as the observed state reads it (an emulator may not refresh Outputs)
            name = stack.outputs.get("BucketName") or self.aws().stack_resource(
                stack.stack_id, BUCKET_LOGICAL_ID
            )
        if not name:
            raise DlError(
                f"the artifact bucket is not known: stack {bootstrap_stack_name(project)} is not deployed "
                "(run `dl bootstrap` or `dl apply` once) or pass --bucket"
            )
        return name

    def hosted_zone(self, domain: str) -> str | None:
        return self.aws().hosted_zone_for(domain)

    def certificate(self, project: str, domain: str) -> str:
        name = certificate_stack_name(project, domain)
        stack = self.aws(CERTIFICATE_REGION).stack(name)
        arn = stack.outputs.get("CertificateArn") if stack else None
        if not arn:
            raise DlError(f"no certificate yet: stack {name} is not deployed; pass --certificate-arn")
        return arn
