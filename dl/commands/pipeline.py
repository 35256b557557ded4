"""The shared pipeline of `plan`, `apply` and `status`: validate -> build -> observe -> plan.

Like Chalice's deployer: the function below reads like the list of stages. `plan` and `apply` differ only in
what they do with the result (render it, or hand it to the executor). `run_pipeline` is that pipeline for a
command's block: inside the sandbox when asked, under the project's lock (`project_lock`) for `apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

from dl.apply.preview import PreviewRequest
from dl.aws.client import Aws, require_credentials
from dl.aws.observed import ObservedState, observe
from dl.build.desired import DesiredInstance, desired_state
from dl.commands.options import aws_context
from dl.commands.output import stderr
from dl.manifest.model import Manifest
from dl.plan.diff import make_plan
from dl.plan.model import Plan

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    manifest: Manifest  # a preview's: the manifest of preview copies (dl/apply/preview.py preview_manifest)
    aws: Aws
    desired: dict[str, DesiredInstance]
    observed: ObservedState
    plan: Plan
    production: Plan | None = None  # for a preview: the plan against production that chose its instances
    lock: object | None = None  # the project's dl.apply.lock.ProjectLock when the caller took it
    conflicts: tuple = ()  # dl.aws.conflicts.Conflict: what exists on AWS and would make the plan fail


def prepare(
    manifest: Manifest,
    *,
    targets: list[str] | None = None,
    parallelism: int = 4,
    log: Log = print,
    manifest_label: str = "",
    preview: PreviewRequest | None = None,
    check_conflicts: bool = True,
) -> Prepared:
    """Validate (done by the caller's load) -> build the desired state -> observe AWS -> plan -> conflicts
    (dl/aws/conflicts.py: resources that already exist and would make the plan fail; read-only).

    With ``preview`` (dl/apply/preview.py), the same again for the pull request's preview copies of the instances
    whose production plan is not empty (or of every instance): their plan is against that pull request's
    previews, which it creates, updates, or destroys when an instance no longer differs from production; the
    conflicts are the previews' (production is not deployed)."""
    aws = Aws(manifest.region)
    require_credentials(aws)  # before the packages are built: both checks take no time
    names = [n for n in manifest.instances if not targets or n in targets]
    desired = desired_state(manifest, names, parallelism=parallelism, log=log)
    observed = observe(aws, manifest.project, parallelism=parallelism)
    unknown = [t for t in targets or [] if t not in manifest.instances and t not in observed.instances]
    if unknown:
        from dl.errors import UnknownInstance
        from dl.manifest.schema import suggest

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
    if preview is not None:
        return prepare_preview(
            manifest,
            aws,
            plan,
            preview,
            targets=targets,
            parallelism=parallelism,
            log=log,
            label=manifest_label,
            check_conflicts=check_conflicts,
        )
    conflicts = ()
    if check_conflicts:
        from dl.aws.conflicts import find_conflicts

        conflicts = tuple(find_conflicts(aws, manifest.project, plan, observed))
    return Prepared(manifest, aws, desired, observed, plan, conflicts=conflicts)


def prepare_preview(
    manifest: Manifest,
    aws: Aws,
    production: Plan,
    request: PreviewRequest,
    *,
    targets: list[str] | None,
    parallelism: int,
    log: Log,
    label: str,
    check_conflicts: bool = True,
) -> Prepared:
    """The preview half of :func:`prepare`: build -> observe (that pull request's previews) -> plan."""
    from dl.apply import preview as previews

    chosen = [i.name for i in production.instances if i.name in manifest.instances]
    if not request.every:
        chosen = previews.changed_instances(production)
    copies = previews.preview_manifest(manifest, cdn=request.cdn)
    desired = desired_state(copies, chosen, parallelism=parallelism, log=log, preview=request.number)
    observed = observe(aws, manifest.project, parallelism=parallelism, preview=request.number)
    seal_secrets(copies, desired, observed, aws, log)  # the project's fingerprint key, as production's
    plan = make_plan(
        manifest.project,
        aws.region,
        {name: d.spec for name, d in desired.items()},
        observed,
        targets=targets or None,  # --target limits the previews too (the others are left alone)
        manifest=label,
        preview=request.number,
    )
    conflicts = ()
    if check_conflicts:
        from dl.aws.conflicts import find_conflicts

        conflicts = tuple(find_conflicts(aws, manifest.project, plan, observed))
    return Prepared(copies, aws, desired, observed, plan, production=production, conflicts=conflicts)


def seal_secrets(
    manifest: Manifest,
    desired: dict[str, DesiredInstance],
    observed: ObservedState,
    aws,
    log,
) -> None:
    """Secret values enter the specs only as keyed fingerprints (dl/aws/secrets.py); one read of the key."""
    from dl.aws import secrets

    if not any(d.instance.secrets for d in desired.values()):
        return
    key = secrets.read_fingerprint_key(aws, observed.bucket)
    deployed = {name: o.spec for name, o in observed.instances.items()}
    secrets.seal({n: d.spec for n, d in desired.items()}, manifest, key, deployed, log=log)


@contextmanager
def run_pipeline(
    manifest,
    *,
    sandbox: bool,
    targets,
    parallelism: int,
    label: str,
    lock: str | None = None,
    lock_timeout=0.0,
    preview=None,
):
    """The pipeline's result (manifest -> desired -> observed -> plan), inside the sandbox when asked: the
    emulator lives as long as the block, so `apply` can act on what it planned.

    ``lock``: the operation ("apply") that takes the project's lock (dl/apply/lock.py) for the whole block,
    before AWS is observed, so the plan shown is the plan applied; released when the block ends, Ctrl-C included.

    Targets keep their order without repeats; they may name deployed instances no longer in the manifest (to
    destroy them); names that are neither are refused by the pipeline once AWS has been read."""
    with aws_context(sandbox, manifest.region):
        number = preview.number if preview is not None else None
        with project_lock(manifest, lock, lock_timeout, number) if lock else nullcontext() as held:
            prepared = prepare(
                manifest,
                targets=list(dict.fromkeys(targets)),
                parallelism=parallelism,
                log=stderr,
                manifest_label=label,
                preview=preview,
            )
            yield replace(prepared, lock=held)


@contextmanager
def project_lock(manifest, operation: str, timeout: float, preview: int | None = None):
    """The project's lock, held for the block (None when the project has no artifact bucket yet: the executor
    takes it once the bootstrap has created one); with `preview`, the previews' own lock (dl/apply/preview.py)."""
    from dl.apply.executor import current_commit
    from dl.apply.lock import ProjectLock
    from dl.aws.client import Aws
    from dl.aws.names import lock_key
    from dl.aws.observed import bootstrap_bucket

    aws = Aws(manifest.region)
    bucket = bootstrap_bucket(aws, manifest.project)
    if bucket is None:
        yield None
        return
    lock = ProjectLock(
        aws,
        bucket,
        operation=operation,
        commit=current_commit(manifest.path.parent),
        log=stderr,
        key=lock_key(preview),
    )
    lock.acquire(timeout)
    try:
        yield lock
    finally:
        lock.release()
