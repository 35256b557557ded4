"""Observed state: what is deployed for a project, read from AWS. No local state file.

Pipeline position: manifest -> desired state -> **observed state** -> plan -> apply -> render.

Stacks are found by their tags (``dl:project``, ``dl:instance``, ``dl:role``). Preview stacks (``dl:preview``,
dl/apply/preview.py) are never part of production's state: ``observe(preview=N)`` reads one pull request's and
``observe_previews`` every pull request's. Each instance stack's template
carries, in its Metadata, the spec it was deployed from, so the stack and its spec change (and roll back)
together. Cost: one paginated ``DescribeStacks`` for the whole project, then one ``GetTemplate`` per
deployed instance, plus, for the bootstrap stack, one ``GetTemplate`` (its version, dl/aws/bootstrap.py) and one
``DescribeStackResource`` (its bucket, when the Outputs do not say); and one paginated ``DescribeStacks`` in
us-east-1 for the project's certificate stacks (``dl:role=certificate``), unless that is the project's region.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dl.aws import names
from dl.aws.client import Aws, Stack
from dl.aws.metadata_json import metadata_spec
from dl.manifest.tags import TAG_DOMAIN, TAG_INSTANCE, TAG_PREVIEW, TAG_PROJECT, TAG_ROLE

BUCKET_LOGICAL_ID = "ArtifactBucket"


@dataclass(frozen=True)
class ObservedInstance:
    name: str
    stack: Stack
    spec: dict | None  # the spec it was deployed from; None when the stack has none yet (never completed)

    @property
    def serving(self) -> bool:
        """Whether a previous deployment is live (a failed first create or an unexecuted one is not)."""
        return self.spec is not None and self.stack.status not in (
            "ROLLBACK_COMPLETE",
            "ROLLBACK_FAILED",
            "REVIEW_IN_PROGRESS",
            "CREATE_FAILED",
            "DELETE_FAILED",
            "DELETE_IN_PROGRESS",
        )


@dataclass(frozen=True)
class ObservedCertificate:
    """A certificate stack of the project (us-east-1). ``domain``: from its ``dl:domain`` tag; ``legacy``: the
    instance of a per-instance stack of earlier versions (``<project>-<instance>--certificate``), which no
    instance reuses: it is removed once its instance's distribution moved to the domain's own stack."""

    stack: Stack
    domain: str | None
    legacy: str | None = None


@dataclass(frozen=True)
class ObservedState:
    project: str
    region: str
    bootstrap: Stack | None
    bucket: str | None
    instances: dict[str, ObservedInstance] = field(default_factory=dict)  # by instance name
    certificates: tuple[ObservedCertificate, ...] = ()  # the project's certificate stacks (production only)
    preview: int | None = None  # the pull request whose previews these are; None: production
    bootstrap_version: int | None = None  # None: no usable bootstrap stack

    def execution_role_arn(self) -> str | None:
        """The CloudFormation execution role of a current bootstrap (None before, or of an older one)."""

        if self.bootstrap is None or (self.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
            return None
        return names.execution_role_arn(self.bootstrap.stack_id, self.project, self.region)


def certificate_of(stack: Stack) -> ObservedCertificate:
    domain = stack.tags.get(TAG_DOMAIN)
    legacy = stack.tags.get(TAG_INSTANCE) if domain is None else None
    return ObservedCertificate(stack, domain, legacy)


spec_of = metadata_spec  # the spec a template's Metadata holds, nulls restored, as it was deployed


def observe(aws: Aws, project: str, *, parallelism: int = 8, preview: int | None = None) -> ObservedState:
    """Read the project's stacks and the spec each instance was deployed from: production's (stacks tagged
    ``dl:preview`` excluded), or with ``preview`` the previews of that pull request only."""
    bootstrap, scopes, certificates = _scan(aws, project)
    return _read(aws, project, bootstrap, scopes.get(preview, {}), preview, parallelism, certificates)


def observe_previews(aws: Aws, project: str, *, parallelism: int = 8) -> dict[int, ObservedState]:
    """Every pull request's previews of the project, by pull request number (one DescribeStacks in all)."""
    return {n: o for n, o in observe_scopes(aws, project, parallelism=parallelism).items() if n is not None}


def observe_scopes(aws: Aws, project: str, *, parallelism: int = 8) -> dict[int | None, ObservedState]:
    """Production's state (key None, always present) and every pull request's previews' (by number)."""
    bootstrap, scopes, certificates = _scan(aws, project)
    scopes.setdefault(None, {})
    return {
        number: _read(aws, project, bootstrap, stacks, number, parallelism, certificates)
        for number, stacks in sorted(scopes.items(), key=lambda item: -1 if item[0] is None else item[0])
    }


def preview_number(stack: Stack) -> int | None:
    """The pull request number of a preview's stack; None for production's."""
    value = stack.tags.get(TAG_PREVIEW)
    if value is None:
        return None
    return int(value) if value.isdigit() else -1  # a malformed tag is still never production's


def _scan(aws: Aws, project: str) -> tuple[Stack | None, dict[int | None, dict[str, Stack]], list]:
    """The bootstrap stack, the instance stacks by scope (None: production; N: pull request N's previews), and
    the certificate stacks (us-east-1: a second DescribeStacks unless that is the project's region)."""
    from dl.aws.names import CERTIFICATE_REGION

    bootstrap = None
    scopes: dict[int | None, dict[str, Stack]] = {}
    certificates: list[ObservedCertificate] = []
    for stack in aws.stacks():
        if stack.tags.get(TAG_PROJECT) != project:
            continue
        role = stack.tags.get(TAG_ROLE)
        if role == "bootstrap":
            bootstrap = stack
        elif role == "instance" and stack.tags.get(TAG_INSTANCE):
            scopes.setdefault(preview_number(stack), {})[stack.tags[TAG_INSTANCE]] = stack
        elif role == "certificate" and aws.region == CERTIFICATE_REGION:
            certificates.append(certificate_of(stack))
    if aws.region != CERTIFICATE_REGION:
        certificates = [
            certificate_of(s)
            for s in aws.stacks(CERTIFICATE_REGION)
            if s.tags.get(TAG_PROJECT) == project and s.tags.get(TAG_ROLE) == "certificate"
        ]
    return bootstrap, scopes, sorted(certificates, key=lambda c: c.stack.name)


def _read(
    aws: Aws,
    project: str,
    bootstrap: Stack | None,
    stacks: dict[str, Stack],
    preview: int | None,
    parallelism: int,
    certificates: list,
) -> ObservedState:
    def read(name: str) -> ObservedInstance:
        stack = stacks[name]
        if stack.status == "REVIEW_IN_PROGRESS":  # created by a change set never executed: nothing deployed
            return ObservedInstance(name, stack, None)
        return ObservedInstance(name, stack, spec_of(aws.template_metadata(stack.stack_id)))

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        instances = dict(zip(stacks, pool.map(read, stacks), strict=True))
    bucket = version = None
    if bootstrap is not None and bootstrap.status not in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"):
        from dl.aws.names import version_of

        bucket = bootstrap.outputs.get("BucketName") or aws.stack_resource(
            bootstrap.stack_id, BUCKET_LOGICAL_ID
        )
        # the template, not the Outputs: an emulator may not refresh Outputs when a change set runs
        version = version_of(aws.template_metadata(bootstrap.stack_id))
    return ObservedState(
        project=project,
        region=aws.region,
        bootstrap=bootstrap,
        bucket=bucket,
        instances=instances,
        certificates=tuple(certificates) if preview is None else (),  # a preview never has a domain
        bootstrap_version=version,
        preview=preview,
    )


def bootstrap_bucket(aws: Aws, project: str) -> str | None:
    """The artifact bucket of the project's bootstrap stack (found by its settled name, one DescribeStacks),
    or None when there is none yet. Used to take the project's lock before anything else is read."""
    from dl.aws.names import bootstrap_stack_name

    stack = aws.stack(bootstrap_stack_name(project))
    if stack is None or stack.tags.get(TAG_PROJECT) != project:
        return None
    if stack.status.startswith(("REVIEW_", "ROLLBACK_", "DELETE_", "CREATE_IN", "CREATE_FAILED")):
        return None  # no bucket yet (or none any more)
    return stack.outputs.get("BucketName") or aws.stack_resource(stack.stack_id, BUCKET_LOGICAL_ID)
