"""The shared pipeline of `plan`, `apply` and `status`: validate -> build -> observe -> plan.

Like Chalice's deployer: the function below reads like the list of stages. `plan` and `apply` differ only in
what they do with the result (render it, or hand it to the executor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dl.aws import Aws, require_credentials
from dl.desired import DesiredInstance, desired_state
from dl.manifest import Manifest
from dl.observed import ObservedState, observe
from dl.plan import Plan, make_plan

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    manifest: Manifest
    aws: Aws
    desired: dict[str, DesiredInstance]
    observed: ObservedState
    plan: Plan
    lock: object | None = None  # the project's dl.project_lock.ProjectLock when the caller took it
    conflicts: tuple = ()  # dl.conflicts.Conflict: what exists on AWS and would make the plan fail


def prepare(
    manifest: Manifest,
    *,
    targets: list[str] | None = None,
    parallelism: int = 4,
    log: Log = print,
    manifest_label: str = "",
    check_conflicts: bool = True,
) -> Prepared:
    """Validate (done by the caller's load) -> build the desired state -> observe AWS -> plan -> conflicts
    (dl/conflicts.py: resources that already exist and would make the plan fail; read-only)."""
    aws = Aws(manifest.region)
    require_credentials(aws)  # before the packages are built: both checks take no time
    names = [n for n in manifest.instances if not targets or n in targets]
    desired = desired_state(manifest, names, parallelism=parallelism, log=log)
    observed = observe(aws, manifest.project, parallelism=parallelism)
    unknown = [t for t in targets or [] if t not in manifest.instances and t not in observed.instances]
    if unknown:
        from dl.errors import UnknownInstance
        from dl.schema import suggest

        known = sorted(set(manifest.instances) | set(observed.instances))
        raise UnknownInstance(
            f"--target {unknown[0]}: no such instance in the manifest or deployed{suggest(unknown[0], known)}"
        )
    seal_secrets(manifest, desired, observed, aws, log)
    plan = make_plan(
        manifest.project,
        aws.region,
        {name: d.spec for name, d in desired.items()},
        observed,
        targets=targets or None,
        manifest=manifest_label,
    )
    conflicts = ()
    if check_conflicts:
        from dl.conflicts import find_conflicts

        conflicts = tuple(find_conflicts(aws, manifest.project, plan, observed))
    return Prepared(manifest, aws, desired, observed, plan, conflicts=conflicts)


def seal_secrets(
    manifest: Manifest, desired: dict[str, DesiredInstance], observed: ObservedState, aws, log
) -> None:
    """Secret values enter the specs only as keyed fingerprints (dl/secrets.py); one read of the key."""
    from dl import secrets

    if not any(d.instance.secrets for d in desired.values()):
        return
    key = secrets.read_fingerprint_key(aws, observed.bucket)
    deployed = {name: o.spec for name, o in observed.instances.items()}
    secrets.seal({n: d.spec for n, d in desired.items()}, manifest, key, deployed, log=log)
