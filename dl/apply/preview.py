"""Preview deployments: a pull request's own live copy of the instances it changes.

A preview goes through the same pipeline as production (dl/commands/pipeline.py ``prepare(preview=N)``, then the one
executor in dl/apply/executor.py); what makes it a preview is decided here:

- **Which instances**: those whose plan against production is not empty (:func:`changed_instances`), or all.
- **What a preview is** (:func:`preview_instance`): never a custom domain or certificate, never ``protect``, no
  CloudFront unless asked (a distribution takes minutes to create, the Function URL answers in seconds), log
  retention of at most :data:`LOG_RETENTION_DAYS` days.
- **Names and tags**: stack ``<project>--pr<N>--<instance>`` (no production stack can have that name: project
  and instance names hold no ``--``), its function name hash-shortened to Lambda's 64 characters
  (``dl.aws.names.function_name``); tagged ``dl:preview=<N>`` and ``dl:commit=<the pull request's head>``.
- **Artifacts** live under ``previews/`` in the project's bucket (:func:`dl.aws.names.artifact_prefix`): the CI preview role
  may write nowhere else, so a pull request can neither overwrite nor plant (content-addressed keys are
  predictable) an artifact that production deploys. Previews of different pull requests share them.
- **Lock**: preview applies and destroys hold the previews' own lock (``dl.aws.names.PREVIEW_LOCK_KEY``), which serialises them
  with each other and with the garbage collection of ``previews/``, and never delays or blocks production's.
- **Secrets**: Datasette's signing secret of a preview is derived from the previews' own key
  (``previews/keys/secrets.key``), never from production's: a preview cannot forge production's cookies.

Deleting a pull request's previews is :func:`destroy_previews` (``dl destroy --preview``, ``dl preview gc``);
the commands are in dl/commands/ (``dl preview list`` and ``dl preview gc``: dl/commands/preview.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from dl.errors import DlError
from dl.manifest.model import Instance, Manifest
from dl.plan.model import Action, InstancePlan, Plan

LOG_RETENTION_DAYS = 3  # a CloudWatch Logs retention value (templates.LOG_RETENTION_DAYS)


@dataclass(frozen=True)
class PreviewRequest:
    """`dl apply --preview N [--all] [--preview-cdn]`."""

    number: int
    every: bool = False  # every instance of the manifest, not only those whose production plan is not empty
    cdn: bool = False  # keep CloudFront for instances that have it (default: the Function URL alone)


def preview_instance(instance: Instance, *, cdn: bool = False) -> Instance:
    """The preview copy of an instance (see the module docstring)."""
    return replace(
        instance,
        domain=None,
        certificate_arn=None,
        protect=False,
        cdn=instance.cdn and cdn,
        log_retention_days=min(instance.log_retention_days, LOG_RETENTION_DAYS),
    )


def preview_manifest(manifest: Manifest, *, cdn: bool = False) -> Manifest:
    """The manifest with every instance replaced by its preview copy."""
    instances = {name: preview_instance(i, cdn=cdn) for name, i in manifest.instances.items()}
    return replace(manifest, instances=MappingProxyType(instances))


def changed_instances(plan: Plan) -> list[str]:
    """Instances of the manifest whose production plan is not empty (a destroy has nothing to preview)."""
    return [i.name for i in plan.instances if i.action in (Action.CREATE, Action.UPDATE, Action.REPLACE)]


def check_number(number: int) -> int:
    if number < 1:
        raise DlError(f"--preview {number}: a pull request number is 1 or more")
    return number


def destroy_plan(project: str, region: str, observed, names: list[str] | None = None) -> Plan:
    """A plan destroying the previews of one pull request (all of them, or the named instances')."""
    from dl.build.desired import spec_digest

    names = list(observed.instances) if names is None else names
    items = tuple(
        InstancePlan(
            name,
            Action.DESTROY,
            f"preview of pull request {observed.preview}",
            stack_id=observed.instances[name].stack.stack_id,
            stack_status=observed.instances[name].stack.status,
            # what was observed: the executor refuses it if the stack changed before it held the lock
            before_digest=spec_digest(spec) if (spec := observed.instances[name].spec) is not None else None,
        )
        for name in names
    )
    return Plan(project=project, region=region, instances=items, preview=observed.preview)


# --- the pull request comment ---------------------------------------------------------------------------


def preview_urls(aws, plan: Plan, observed) -> tuple[tuple[str, str | None], ...]:
    """(instance, URL or None when not deployed) for each instance that gets a preview (its production plan is
    not empty) and each preview that is deployed, in plan order."""
    from dl.aws.hosts import public_url

    names = changed_instances(plan)
    names += [n for n in observed.instances if n not in names]
    rows = []
    for name in names:
        inst = observed.instances.get(name)
        url = (
            public_url(aws, inst.stack, inst.spec, observed.bucket)
            if inst is not None and inst.serving
            else None
        )
        rows.append((name, url))
    return tuple(rows)


def previews_markdown(number: int, urls) -> str:
    """The comment's previews table: each instance's live preview URL, or "not deployed"."""
    from dl.render.markdown import escape_markdown, safe_link

    if not urls:
        return f"**Previews of #{number}:** none (no instance differs from production)."
    rows = [
        f"| {escape_markdown(name)} | {safe_link(url, url) if url else '*not deployed*'} |"
        for name, url in urls
    ]
    return "\n".join(
        [
            f"**Previews of #{number}** (unmerged data, public URLs):",
            "",
            "| Instance | Preview |",
            "| --- | --- |",
            *rows,
        ]
    )


def with_previews(parts, previews):
    """Comment parts (dl/render/comment.py) with the previews table after the summary; `previews` is
    (number, urls) or None (unchanged)."""
    if previews is None:
        return parts
    return replace(parts, summary=parts.summary + "\n\n" + previews_markdown(*previews))


def destroy_previews(
    aws,
    manifest: Manifest,
    observed,
    *,
    names=None,
    log,
    parallelism: int = 4,
    lock=None,
    sweep: bool = False,
):
    """Delete one pull request's previews (or the named ones) and the artifacts no other stack uses; `lock`:
    the previews' lock when the caller holds it (else the executor takes it). CloudFormation deletes them as
    the preview execution role (what the CI preview role may pass), or with `sweep` as production's (the
    nightly sweep runs with the apply role, which may pass only that one)."""
    from dl.apply.executor import Executor

    plan = destroy_plan(manifest.project, aws.region, observed, names)
    executor = Executor(
        aws,
        manifest,
        log=log,
        parallelism=parallelism,
        preview=observed.preview,
        lock=lock,
        operation="destroy",
    )
    executor.as_production = sweep
    return plan, executor.execute(plan, {}, observed, {})
