"""Names and constants shared by the stages: stacks, functions, log groups, roles, exports, bucket keys.

Pure (no AWS call, no boto3): templates, plan, observed state and apply all name things from here. A double
hyphen never occurs in ``<project>-<instance>`` (the manifest allows single hyphens only), so the bootstrap,
certificate and preview stacks can never collide with an instance stack of any project.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from dl.errors import DlError

if TYPE_CHECKING:
    from dl.manifest.model import Instance


# --- constants ------------------------------------------------------------------------------------------------

STACK_NAME_LIMIT = 128  # CloudFormation stack names
FUNCTION_NAME_LIMIT = 64  # Lambda function names (AWS::Lambda::Function FunctionName maxLength)
CERTIFICATE_REGION = "us-east-1"  # CloudFront only uses ACM certificates from us-east-1
METADATA_KEY = "DatasetteLambda"
CACHE_MAX_TTL = 31_536_000  # one year: Datasette's static assets say "max-age=..., immutable"
ARTIFACT_RETENTION_DAYS = 30  # unreferenced artifacts are kept this long (rollbacks), then expire
BOOTSTRAP_VERSION = 2
LEGACY_BOOTSTRAP_VERSION = 1  # the bucket-only bootstrap: its template records no version


# --- stacks, functions, log groups, parameters ----------------------------------------------------------------


def bootstrap_stack_name(project: str) -> str:
    """The project's bootstrap stack (artifact bucket), one per region."""
    return _checked_stack_name(f"{project}--bootstrap")


def instance_stack_name(project: str, instance: str, preview: int | None = None) -> str:
    """The instance's stack; also its Lambda function's name and its log group's suffix.

    A preview's (dl/apply/preview.py): ``<project>--pr<N>--<instance>``, which no production stack can be (project and
    instance names hold no ``--``); its function name is :func:`function_name`."""
    if preview is None:
        return _checked_stack_name(f"{project}-{instance}")
    return _checked_stack_name(f"{project}--pr{preview}--{instance}", limit=STACK_NAME_LIMIT)


def function_name(project: str, instance: str, preview: int | None = None) -> str:
    """The Lambda function's name: the stack's, shortened with a hash when over Lambda's 64 characters
    (only a preview's can be: the first 55 characters, '-' and 8 hex of the stack name's sha256). It keeps the
    stack name's start, ``<project>--pr<N>--``, which the preview IAM policies match."""
    name = instance_stack_name(project, instance, preview)
    if len(name) <= FUNCTION_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: FUNCTION_NAME_LIMIT - 9]}-{digest}"


def certificate_stack_name(project: str, domain: str) -> str:
    """The stack holding the ACM certificate of ``domain`` in us-east-1: one per domain and project, so the
    certificate stays when the domain moves between instances. Named from a hash: a domain runs to 253
    characters, a stack name to 128."""
    digest = hashlib.sha256(domain.encode()).hexdigest()[:16]
    return _checked_stack_name(f"{project}--cert-{digest}", limit=128)


def legacy_certificate_stack_name(project: str, instance: str) -> str:
    """The per-instance certificate stack of earlier versions: dl only removes these now."""
    return _checked_stack_name(f"{project}-{instance}--certificate", limit=128)


def log_group_name(project: str, instance: str, preview: int | None = None) -> str:
    """The function's log group (Lambda's default name, which ``dl logs`` relies on)."""
    return f"/aws/lambda/{function_name(project, instance, preview)}"


def secret_parameter(env_name: str) -> str:
    """Template parameter carrying the value of the function's environment variable ``env_name``.

    Env names are ``[A-Z_][A-Z0-9_]*``; ``_`` becomes ``x`` (never otherwise present), so the mapping is 1:1.
    """
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", env_name):
        raise DlError(f"secret {env_name!r}: expected an environment variable name such as API_TOKEN")
    return "Secret" + env_name.replace("_", "x")


def _checked_stack_name(name: str, limit: int = 64) -> str:
    if len(name) > limit or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name):
        raise DlError(f"{name!r} is not a valid stack name (letters, digits and '-', at most {limit})")
    return name


def public_url(instance: Instance, host: str) -> str:
    """The URL users open: ``https://<host><prefix>`` (host: domain, CloudFront, Function URL or API host)."""
    host = host.removeprefix("https://").split("/", 1)[0]
    return f"https://{host}{instance.prefix}"


# --- the bootstrap: version, roles, boundaries, exports -------------------------------------------------------


def version_of(metadata: dict) -> int:
    entry = metadata.get(METADATA_KEY) or {}
    return (
        int(entry.get("version") or LEGACY_BOOTSTRAP_VERSION)
        if isinstance(entry, dict)
        else LEGACY_BOOTSTRAP_VERSION
    )


def execution_role_name(project: str, region: str) -> str:
    return f"{project}--cfn-exec-{region}"


def boundary_policy_name(project: str, region: str) -> str:
    return f"{project}--boundary-{region}"


def export_name(project: str, what: str) -> str:
    """Exports are per region, like the bootstrap stack: ``<project>--cache-policy-id``."""
    return f"{project}--{what}"


def function_role_path(project: str) -> str:
    """IAM path of every role dl's instance stacks create: an exact namespace (``data`` is not ``data-eu``)."""
    return f"/dl/{project}/"


def boundary_arn_sub(project: str) -> dict:
    """The permissions boundary's ARN as a template value (instance stacks live in the bootstrap's region)."""
    return {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/"
        + boundary_policy_name(project, "${AWS::Region}")
    }


def import_value(project: str, what: str) -> dict:
    return {"Fn::ImportValue": export_name(project, what)}


def execution_role_arn(stack_id: str, project: str, region: str) -> str:
    """The role's ARN from the bootstrap stack's ID (``arn:<partition>:cloudformation:<region>:<account>:...``)."""
    parts = stack_id.split(":")
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{execution_role_name(project, region)}"


def preview_execution_role_name(project: str, region: str) -> str:
    return f"{project}--cfn-preview-{region}"


def preview_boundary_policy_name(project: str, region: str) -> str:
    return f"{project}--preview-boundary-{region}"


def preview_role_path(project: str) -> str:
    """IAM path of the function roles of previews: inside the project's, so production's execution role can
    clean them up too, while the preview execution role may create roles only here."""
    return f"{function_role_path(project)}previews/"


def preview_boundary_arn_sub(project: str) -> dict:
    return {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/"
        + preview_boundary_policy_name(project, "${AWS::Region}")
    }


def preview_execution_role_arn(stack_id: str, project: str, region: str) -> str:
    parts = stack_id.split(":")
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{preview_execution_role_name(project, region)}"


# --- keys in the artifact bucket ------------------------------------------------------------------------------

LOCK_KEY = "locks/project.json"
PREVIEW_PREFIX = "previews/"  # every artifact a preview uploads, and the previews' secrets key
PREVIEW_KEY_OBJECT = f"{PREVIEW_PREFIX}keys/secrets.key"
PREVIEW_LOCK_KEY = (
    f"{PREVIEW_PREFIX}locks/previews.json"  # previews' applies take this lock, never production's
)


def artifact_prefix(preview: int | None) -> str:
    """Where a scope's artifacts live in the bucket: production at the top, previews under ``previews/``."""
    return "" if preview is None else PREVIEW_PREFIX


def lock_key(preview: int | None) -> str:
    """The lock object a scope's applies and destroys hold: production's, or the previews' own."""
    return LOCK_KEY if preview is None else PREVIEW_LOCK_KEY
