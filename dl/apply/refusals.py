"""Refusals: what apply checks before it writes anything, and what it reads from its surroundings to do so.

A plan is refused, with every problem named at once and nothing changed, when it would destroy or replace
without ``--allow-destroy`` or touch a protected instance (:func:`refuse_unsafe`), when it is stale: the
deployed state or the manifest's files changed since it was made (:func:`refuse_stale`), when a secret has no
value in the environment (:func:`secret_values`), or when a function's environment would exceed Lambda's 4 KB
(:func:`refuse_oversized_environment`, which Lambda itself reports only once the stack is updating).
:func:`warn_near_quotas` is advice, not a gate: the account's CloudFront quotas. :func:`current_commit` is the
commit the stacks are tagged with.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import botocore.exceptions

from dl.aws import secrets as dl_secrets
from dl.aws import templates
from dl.aws.client import Aws, explain_client_error
from dl.aws.names import secret_parameter
from dl.aws.observed import ObservedState
from dl.build.desired import DesiredInstance, spec_digest
from dl.errors import DlError
from dl.manifest.model import Manifest
from dl.plan.model import Action, InstancePlan, Plan


def refuse_unsafe(plan: Plan, *, allow_destroy: bool) -> None:
    """Destroys and replacements need --allow-destroy; protected instances are never destroyed or replaced."""
    problems = []
    for i in plan.destructive():
        if i.protected:
            problems.append(f"{i.name}: protected (protect: true) and the plan would {i.action.value} it")
        elif not allow_destroy:
            problems.append(
                f"{i.name}: the plan would {i.action.value} it; pass --allow-destroy to allow that"
            )
    if problems:
        raise DlError("refusing to apply:\n  " + "\n  ".join(problems))


def refuse_stale(plan: Plan, observed: ObservedState, desired: dict[str, DesiredInstance]) -> None:
    """A saved plan applies only to the state it was made against, with the artifacts it was made from."""
    problems = []
    for i in plan.instances:
        now = observed.instances.get(i.name)
        now_digest = spec_digest(now.spec) if now is not None and now.spec is not None else None
        now_stack = now.stack.stack_id if now is not None else None
        if now_digest != i.before_digest or (i.before_digest is not None and now_stack != i.stack_id):
            problems.append(f"{i.name}: the deployed state changed since the plan was made")
        if i.action is not Action.DESTROY and i.action is not Action.NOOP:
            d = desired.get(i.name)
            if d is None or spec_digest(d.spec) != i.after_digest:
                problems.append(
                    f"{i.name}: the manifest or its files changed since the plan was made "
                    f"(planned {(i.after_digest or '-')[:12]}, now {(spec_digest(d.spec) if d else '-')[:12]})"
                )
    if problems:
        raise DlError("the plan is stale; make a new one with `dl plan`:\n  " + "\n  ".join(problems))


def secret_values(manifest: Manifest, names: list[str]) -> dict[str, dict[str, str]]:
    """{instance: {FUNCTION_ENV: value}} read from the environment; every missing one is reported at once."""
    values: dict[str, dict[str, str]] = {}
    missing = []
    for name in names:
        for env_name, source in manifest.instances[name].secrets.items():
            if source not in os.environ:
                missing.append(f"{name}: secret {env_name} needs the environment variable {source}")
            else:
                values.setdefault(name, {})[env_name] = os.environ[source]
    if missing:
        raise DlError("secrets without values (nothing was changed):\n  " + "\n  ".join(missing))
    return values


BUCKET_NAME_MAX = 63  # an S3 bucket name's longest: stands for the bucket before the bootstrap made it


def refuse_oversized_environment(
    manifest: Manifest,
    desired: dict[str, DesiredInstance],
    instance_names: list[str],
    secrets: dict,
    bucket: str | None,
) -> None:
    """Lambda refuses an environment over 4 KB (names and values, secret values included) only when the stack
    is already updating: refuse it before anything is written, naming the instance and its largest secrets
    (their sizes, never their values)."""
    problems = []
    for name in instance_names:
        instance, spec = desired[name].instance, desired[name].spec
        values = secrets.get(name, {})
        artifacts = templates.InstanceArtifacts.from_spec(spec, bucket or "b" * BUCKET_NAME_MAX)
        env = templates.function_environment(instance, artifacts, tuple(sorted(instance.secrets)))
        # derived values have the same length whatever the key (the real one may not exist yet)
        derived = dl_secrets.datasette_secret(bytes(32), manifest.project, name)
        parameters = {
            templates.DATASETTE_SECRET_PARAMETER: derived,
            templates.ORIGIN_SECRET_PARAMETER: derived,
            **{secret_parameter(k): v for k, v in values.items()},
        }
        size = templates.environment_bytes(env, parameters)
        if size > templates.LAMBDA_ENVIRONMENT_MAX:
            largest = sorted(values, key=lambda k: len(values[k].encode()), reverse=True)[:3]
            shown = ", ".join(f"{k} ({len(values[k].encode()):,} bytes)" for k in largest) or "none"
            problems.append(
                f"{name}: the function's environment would take {size:,} bytes, over Lambda's limit of "
                f"{templates.LAMBDA_ENVIRONMENT_MAX:,} (4 KB, every name and value counted); largest secrets: "
                f"{shown}"
            )
    if problems:
        raise DlError("refusing to apply (nothing was changed):\n  " + "\n  ".join(problems))


# --- provenance ------------------------------------------------------------------------------------------


def current_commit(directory: Path) -> str:
    """The git commit being deployed: GITHUB_SHA in Actions, else the repository's HEAD, else 'unknown'."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --- advice (not a gate) ---------------------------------------------------------------------------------


def warn_near_quotas(aws: Aws, work: list[InstancePlan], desired: dict, observed: ObservedState, log) -> None:
    """Warn when the distributions and CloudFront Functions this apply adds bring the account near its
    quotas (dl/aws/quotas.py). Only when it adds some; a failed count is said and skipped (advice, not a gate)."""
    from dl.aws import quotas

    def had_cdn(name: str) -> bool:
        before = observed.instances.get(name)
        return bool(before and before.serving and (before.spec or {}).get("cdn"))

    adding = sum(
        1
        for i in work
        if i.action is not Action.DESTROY and desired[i.name].spec.get("cdn") and not had_cdn(i.name)
    )
    if not adding:
        return
    try:
        counts = quotas.cloudfront_counts(aws.client("cloudfront", "us-east-1"))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        log(f"warning: CloudFront quotas not checked: {explain_client_error(exc)}")
        return
    for line in quotas.warnings(counts, adding):
        log(line)
