"""Apply's side of the bootstrap (the stack itself is dl/aws/bootstrap.py): make sure it is there and current.

Production applies create or upgrade the bootstrap stack when it is missing or older than this dl
(:func:`ensure`), with the caller's credentials: CloudFormation cannot act as an execution role the bootstrap
has not made yet. The CI roles may not change it: their refusal is explained (:func:`denied_message`: run
`dl bootstrap` once with administrator credentials), and `dl plan` refuses an older bootstrap the same way
(:func:`outdated_message`). Previews use production's bootstrap and never change it (:func:`for_preview`).
Either way apply learns the bucket and the execution role every other change set runs as (:class:`Deployed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import botocore.exceptions

from dl.aws import bootstrap, names
from dl.aws.client import explain_client_error
from dl.aws.observed import ObservedState
from dl.errors import DlError

ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InsufficientCapabilities")


@dataclass(frozen=True)
class Deployed:
    """What apply needs to know of a deployed bootstrap: version, bucket, the execution role's ARN."""

    version: int
    bucket: str
    execution_role_arn: str


def outdated_message(project: str, region: str, version: int) -> str:
    return (
        f"the bootstrap stack {project}--bootstrap in {region} is version {version}; this dl needs version "
        f"{names.BOOTSTRAP_VERSION}. Upgrade it once, with administrator credentials: `dl bootstrap` (in the manifest's folder, "
        f"region {region}); then plan again"
    )


def denied_message(project: str, region: str, what: str, detail: str) -> str:
    return (
        f"{what} the bootstrap stack {project}--bootstrap in {region}, and these credentials may not ({detail}). "
        "The CI roles cannot change it by design: run `dl bootstrap` once with administrator credentials, "
        "then apply again"
    )


def is_access_denied(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code") in ACCESS_DENIED
    text = str(exc)
    return any(code in text for code in ACCESS_DENIED) or "not authorized to perform" in text


def for_preview(observed: ObservedState, project: str, region: str) -> Deployed:
    """Previews use production's bootstrap and never change it: its bucket, and the preview execution role
    CloudFormation acts as for every preview stack."""
    if not observed.bucket or (observed.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
        raise DlError(
            f"project {project} has no current bootstrap in {region}: previews use "
            "production's; deploy production once (`dl apply`) first, or run `dl bootstrap`"
        )
    return Deployed(names.BOOTSTRAP_VERSION, observed.bucket, preview_role_arn(observed, project, region))


def preview_role_arn(observed: ObservedState, project: str, region: str) -> str | None:
    if observed.bootstrap is None or (observed.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
        return None
    return names.preview_execution_role_arn(observed.bootstrap.stack_id, project, region)


def ensure(
    aws,
    observed: ObservedState,
    project: str,
    *,
    deployer: Callable[[], object],
    tags: dict,
    log: Callable[[str], None],
    force: bool = False,
) -> Deployed:
    """The project's bootstrap at the current version: created or upgraded when missing or older (or,
    with ``force``, brought to its template whatever it is: `dl bootstrap`). The caller's credentials
    deploy it (``deployer()``: a StackDeployer without the execution role); the CI roles may not, and are
    told to run `dl bootstrap`."""
    region = aws.region
    name = names.bootstrap_stack_name(project)
    current = observed.bucket and (observed.bootstrap_version or 0) >= names.BOOTSTRAP_VERSION
    if current and not force:
        return Deployed(names.BOOTSTRAP_VERSION, observed.bucket, observed.execution_role_arn())
    if observed.bootstrap is None or not observed.bucket:
        what = "creating"
    elif (observed.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
        what = f"upgrading (version {observed.bootstrap_version} to {names.BOOTSTRAP_VERSION})"
    else:
        what = "updating"
    log(f"bootstrap: {what} the bootstrap stack {name} (bucket, execution role, boundary, CloudFront)")
    try:
        deployer().deploy(
            name,
            bootstrap.bootstrap_template(project),
            tags=tags,
            capabilities=("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"),
        )
    except (DlError, botocore.exceptions.ClientError) as exc:
        if is_access_denied(exc):
            detail = explain_client_error(exc) if isinstance(exc, botocore.exceptions.ClientError) else exc
            raise DlError(denied_message(project, region, what.split(" ")[0], str(detail))) from None
        raise
    bucket = aws.stack_resource(name, "ArtifactBucket")
    stack = aws.stack(name)
    if not bucket or stack is None:
        raise DlError(f"{name}: deployed, but its bucket cannot be found")
    return Deployed(
        names.BOOTSTRAP_VERSION, bucket, names.execution_role_arn(stack.stack_id, project, region)
    )
