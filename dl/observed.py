"""Observed state: what is deployed for a project, read from AWS. No local state file.

Pipeline position: manifest -> desired state -> **observed state** -> plan -> apply -> render.

Stacks are found by their tags (``dl:project``, ``dl:instance``, ``dl:role``). Each instance stack's template
carries, in its Metadata, the spec it was deployed from, so the stack and its spec change (and roll back)
together. Cost: one paginated ``DescribeStacks`` for the whole project, then one ``GetTemplate`` per
deployed instance, plus, for the bootstrap stack, one ``GetTemplate`` (its version, dl/bootstrap.py) and one
``DescribeStackResource`` (its bucket, when the Outputs do not say).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dl.aws import TAG_INSTANCE, TAG_PROJECT, TAG_ROLE, Aws, Stack
from dl.templates import metadata_spec

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
class ObservedState:
    project: str
    region: str
    bootstrap: Stack | None
    bucket: str | None
    instances: dict[str, ObservedInstance] = field(default_factory=dict)  # by instance name
    bootstrap_version: int | None = None  # None: no usable bootstrap stack

    def execution_role_arn(self) -> str | None:
        """The CloudFormation execution role of a current bootstrap (None before, or of an older one)."""
        from dl import bootstrap

        if self.bootstrap is None or (self.bootstrap_version or 0) < bootstrap.VERSION:
            return None
        return bootstrap.execution_role_arn(self.bootstrap.stack_id, self.project, self.region)


spec_of = metadata_spec  # the spec a template's Metadata holds, nulls restored, as it was deployed


def observe(aws: Aws, project: str, *, parallelism: int = 8) -> ObservedState:
    """Read the project's stacks and the spec each instance was deployed from."""
    bootstrap = None
    stacks: dict[str, Stack] = {}
    for stack in aws.stacks():
        if stack.tags.get(TAG_PROJECT) != project:
            continue
        role = stack.tags.get(TAG_ROLE)
        if role == "bootstrap":
            bootstrap = stack
        elif role == "instance" and stack.tags.get(TAG_INSTANCE):
            stacks[stack.tags[TAG_INSTANCE]] = stack

    def read(name: str) -> ObservedInstance:
        stack = stacks[name]
        if stack.status == "REVIEW_IN_PROGRESS":  # created by a change set never executed: nothing deployed
            return ObservedInstance(name, stack, None)
        return ObservedInstance(name, stack, spec_of(aws.template_metadata(stack.stack_id)))

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        instances = dict(zip(stacks, pool.map(read, stacks), strict=True))
    bucket = version = None
    if bootstrap is not None and bootstrap.status not in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"):
        from dl.bootstrap import version_of

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
        bootstrap_version=version,
    )


def bootstrap_bucket(aws: Aws, project: str) -> str | None:
    """The artifact bucket of the project's bootstrap stack (found by its settled name, one DescribeStacks),
    or None when there is none yet. Used to take the project's lock before anything else is read."""
    from dl.templates import bootstrap_stack_name

    stack = aws.stack(bootstrap_stack_name(project))
    if stack is None or stack.tags.get(TAG_PROJECT) != project:
        return None
    if stack.status.startswith(("REVIEW_", "ROLLBACK_", "DELETE_", "CREATE_IN", "CREATE_FAILED")):
        return None  # no bucket yet (or none any more)
    return stack.outputs.get("BucketName") or aws.stack_resource(stack.stack_id, BUCKET_LOGICAL_ID)
