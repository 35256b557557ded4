"""Apply: the only code that writes to AWS. It executes a Plan, instance by instance.

Pipeline position: manifest -> desired state -> observed state -> plan -> **apply** -> render.

Order of work (like Chalice's executor, one small function per step; :func:`apply_plan` and
:meth:`Executor.execute`):
1. refuse what the plan may not do (destroys without --allow-destroy, protected instances, stale plans,
   missing secret values, an environment over Lambda's 4 KB) before anything is written (dl/apply/refusals.py);
2. the bootstrap stack (bucket, execution role, boundary, shared CloudFront; dl/aws/bootstrap.py), created or
   upgraded when missing or older and the caller may (dl/apply/bootstrap.py; the CI roles may not: they are
   told to run `dl bootstrap`); every instance and certificate change set then runs as its execution role
   (``RoleARN``);
3. per instance, in parallel (bounded): artifacts uploaded under content-addressed keys, skipped when present
   (dl/apply/artifacts.py); a domain's certificate stack (us-east-1, one per domain) brought up before the
   instance stack that uses it, a domain claimed only once the instance that releases it let go
   (dl/apply/domains.py); the stack brought to its template through a change set (dl/apply/stacks.py);
   CloudFront invalidated when content changed; the instance verified over HTTP and, when asked, rolled back
   (dl/apply/rollback.py); destroys delete the stack and its unshared artifacts;
4. the orphaned certificate stacks of the plan, once every instance has moved off them (ACM's lagging in-use
   marker is waited out for a bounded time, then the stack is left for the next apply: dl/apply/domains.py);
5. the unreferenced artifacts, under the project's lock (dl/apply/lock.py, dl/apply/artifacts.py);
6. a summary of what succeeded and what failed (with the failing resource's reason). CloudFormation rolls a
   failed update back, so the previous deployment keeps serving.

Ctrl-C sets a flag the workers check between steps; :class:`ApplyInterrupted` says which instances were done,
in progress and not started. Faults (throttles, resets, timeouts) are handled where the writes are sent
(dl/apply/stacks.py).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from functools import partial

import botocore.exceptions

from dl import __version__
from dl.apply import bootstrap, domains, rollback
from dl.apply.artifacts import (
    artifact_keys,
    collect_garbage,
    delete_unshared_artifacts,
    referenced_elsewhere,
    upload_artifacts,
)
from dl.apply.lock import ProjectLock
from dl.apply.refusals import (
    current_commit,
    refuse_oversized_environment,
    refuse_stale,
    refuse_unsafe,
    secret_values,
    warn_near_quotas,
)
from dl.apply.results import ApplyInterrupted, ApplyResult, Outcome, interruption_report
from dl.apply.stacks import Interrupted, Log, StackDeployer
from dl.aws import hosts, names, templates
from dl.aws import secrets as dl_secrets
from dl.aws.client import Aws, explain_client_error
from dl.aws.names import PREVIEW_KEY_OBJECT, artifact_prefix
from dl.aws.observed import ObservedState, observe
from dl.build.desired import DesiredInstance, spec_digest
from dl.errors import DlError
from dl.manifest.model import Manifest
from dl.manifest.tags import (
    TAG_COMMIT,
    TAG_DEPLOYED_AT,
    TAG_INSTANCE,
    TAG_PREVIEW,
    TAG_PROJECT,
    TAG_ROLE,
    TAG_SPEC,
    TAG_TOOL,
)
from dl.plan.model import Action, CertificateRemoval, InstancePlan, Plan

INTERRUPT_GRACE_SECONDS = 20.0  # how long Ctrl-C waits for the workers to reach a safe point


class Executor:
    """Executes one plan: the bootstrap, then every instance in parallel (in handover order), then the orphaned
    certificate stacks and the garbage collection; collaborators do each step (see the module docstring)."""

    def __init__(
        self,
        aws: Aws,
        manifest: Manifest,
        *,
        log: Log = print,
        parallelism: int = 4,
        verify: bool = False,
        rollback_on_failure: bool = False,
        lock=None,
        lock_timeout: float = 0.0,
        operation: str = "apply",
        preview: int | None = None,
    ):
        self.aws = aws
        self.manifest = manifest
        self.lock = lock  # a dl.apply.lock.ProjectLock the caller holds, or None: execute() takes one
        self.lock_timeout = lock_timeout
        self.operation = operation
        self.preview = (
            preview  # the pull request whose previews this executes (dl/apply/preview.py); None: production
        )
        self.foreign_keys: set[str] = set()  # artifacts the other scopes (production, other previews) use
        self.parallelism = parallelism
        self.keep_keys: set[str] = set()  # artifacts the desired state uses: never deleted by a destroy
        self.verify = verify
        self.rollback_on_failure = rollback_on_failure
        self._print_lock = threading.Lock()
        self._log = log
        self.commit = current_commit(manifest.path.parent)
        if preview is not None:  # the pull request's head, not the merge commit a pull_request run checks out
            from dl.github.events import head_commit

            self.commit = head_commit() or self.commit
        self.keys: dl_secrets.Keys | None = None  # fingerprint and derivation keys, read after the bootstrap
        self.role_arn: str | None = None  # the bootstrap's CloudFormation execution role
        # a preview destroyed as production's execution role (the nightly sweep runs with the apply role)
        self.as_production = False
        self.cancel = threading.Event()  # set by Ctrl-C: workers stop at their next safe point
        self.progress: dict[str, str] = {}  # instance -> "not started" | what it is doing | "done" | ...

    def log(self, line: str) -> None:
        with self._print_lock:
            self._log(line)

    def step(self, name: str, what: str) -> None:
        self.progress[name] = what

    def deployer(self, name: str, *, as_caller: bool = False, **kwargs) -> StackDeployer:
        """A StackDeployer that stops at Ctrl-C and records its steps under `name`. CloudFormation acts as the
        execution role, except for the bootstrap stack (``as_caller``), which creates that role."""
        return StackDeployer(
            self.aws,
            self.log,
            cancel=self.cancel,
            step=lambda what: self.step(name, what),
            key_prefix=artifact_prefix(self.preview),
            role_arn=None if as_caller else self.role_arn,
            **kwargs,
        )

    def base_tags(self, role: str) -> dict:
        tags = dict(self.manifest.tags)
        tags.update({TAG_PROJECT: self.manifest.project, TAG_ROLE: role, TAG_TOOL: __version__})
        if self.preview is not None:
            tags[TAG_PREVIEW] = str(self.preview)
        return tags

    def ensure_bootstrap(self, observed: ObservedState, *, force: bool = False) -> bootstrap.Deployed:
        """The project's bootstrap at the current version (dl/apply/bootstrap.py): production's created or
        upgraded when needed (with ``force``, brought to its template whatever it is: `dl bootstrap`); a
        preview's is production's, never changed. Its execution role is the one change sets run as from now."""
        if self.preview is not None:
            deployed = bootstrap.for_preview(observed, self.manifest.project, self.aws.region)
        else:
            deployed = bootstrap.ensure(
                self.aws,
                observed,
                self.manifest.project,
                deployer=lambda: self.deployer("bootstrap", as_caller=True),
                tags=self.base_tags("bootstrap"),
                log=self.log,
                force=force,
            )
        self.role_arn = deployed.execution_role_arn
        return deployed

    def certificate(self, desired: DesiredInstance) -> tuple[str | None, str | None]:
        """(certificate ARN, hosted zone id) for an instance with a domain (dl/apply/domains.py)."""
        return domains.instance_certificate(
            self.aws,
            self.manifest.project,
            desired,
            deployer=partial(self.deployer, desired.instance.name),
            tags=self.base_tags("certificate"),
        )

    def deploy_instance(
        self, plan: InstancePlan, desired: DesiredInstance, bucket: str, secrets: dict
    ) -> Outcome:
        instance = desired.instance
        upload_artifacts(
            self.aws,
            bucket,
            desired,
            cancel=self.cancel,
            step=partial(self.step, desired.name),
            log=self.log,
            print_lock=self._print_lock,
        )
        certificate_arn, zone = self.certificate(desired)
        spec = desired.spec
        keys = self.keys
        if keys and any(v is None for v in (spec.get("secrets") or {}).values()):
            # no key when planned (first apply): the fingerprints are filled in now that there is one
            spec["secrets"] = {
                env: dl_secrets.fingerprint(
                    keys.fingerprint, self.manifest.project, instance.name, env, secrets[env]
                )
                for env in sorted(secrets)
            }
        artifacts = templates.InstanceArtifacts.from_spec(
            spec, bucket, certificate_arn=certificate_arn, hosted_zone_id=zone
        )
        template = templates.instance_template(
            self.manifest.project, instance, artifacts, spec=spec, preview=self.preview
        )
        tags = {
            **self.base_tags("instance"),
            TAG_INSTANCE: instance.name,
            TAG_SPEC: spec_digest(spec),
            TAG_COMMIT: self.commit,
            TAG_DEPLOYED_AT: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        parameters = {names.secret_parameter(k): v for k, v in secrets.items()}
        # a preview's derived secrets: from the previews' own key, and different for every pull request
        derived_as = instance.name if self.preview is None else f"pr{self.preview}--{instance.name}"
        if keys and "DATASETTE_SECRET" not in secrets:
            parameters[templates.DATASETTE_SECRET_PARAMETER] = dl_secrets.datasette_secret(
                keys.derivation, self.manifest.project, derived_as
            )
        if instance.cdn and instance.endpoint == "http-api":
            if not keys:
                raise DlError(f"{instance.name}: no project key to derive the origin secret from")
            parameters[templates.ORIGIN_SECRET_PARAMETER] = dl_secrets.origin_secret(
                keys.derivation, self.manifest.project, derived_as
            )
        name = names.instance_stack_name(self.manifest.project, instance.name, self.preview)
        deployer = self.deployer(instance.name, bucket=bucket)
        if plan.stack_id:
            deployer.remove_stale_change_sets(name, plan.stack_id)
        previous = None  # what to re-deploy when verification fails
        if self.rollback_on_failure and plan.action is Action.UPDATE:
            previous = rollback.previous_deployment(self.aws, name)
        changed, stack = deployer.deploy(name, template, tags=tags, parameters=parameters)
        outputs = {o["OutputKey"]: o.get("OutputValue") for o in (stack or {}).get("Outputs") or []}
        distribution = outputs.get("DistributionId")
        host = None
        if distribution and distribution != "None":  # the emulator has no CloudFront: "None"
            host = hosts.record(self.aws, bucket, instance.name, distribution, self.preview)
        if instance.domain and zone is None:
            self.log(f"{instance.name}: {domains.dns_record_advice(instance.domain, distribution, host)}")
        if changed and plan.action is Action.UPDATE and outputs.get("DistributionId"):
            self.invalidate(instance, outputs["DistributionId"], plan)
        url = None
        if changed and self.verify:
            url = rollback.verify_or_roll_back(
                self.aws,
                name,
                spec,
                previous,
                deployer,
                parameters,
                bucket,
                log=self.log,
                external_dns=zone is None,
            )
        return Outcome(instance.name, plan.action, True, "applied" if changed else "no changes", url, changed)

    def invalidate(self, instance, distribution_id: str, plan: InstancePlan) -> None:
        content = any(c.path.split(".")[0] in ("metadata", "config", "package") for c in plan.changes)
        if not (content or plan.databases):
            return
        paths = [f"{instance.prefix}*"]
        ref = f"dl-{plan.after_digest[:16]}-{uuid.uuid4().hex[:6]}"
        invalidation = self.aws.invalidate(distribution_id, paths, ref)
        self.log(f"{instance.name}: CloudFront invalidation {invalidation} for {paths[0]}")

    def destroy_instance(self, plan: InstancePlan, observed: ObservedState) -> Outcome:
        name = names.instance_stack_name(self.manifest.project, plan.name, self.preview)
        deployer = self.deployer(plan.name)
        self.log(f"{plan.name}: deleting stack {name}")
        deployer.delete(plan.stack_id, name)  # its certificate stack is the plan's to remove (orphans)
        delete_unshared_artifacts(self.aws, plan.name, observed, self.keep_keys | self.foreign_keys, self.log)
        hosts.forget(self.aws, observed.bucket, plan.name, self.preview)
        return Outcome(plan.name, Action.DESTROY, True, "destroyed", changed=True)

    def run_one(self, plan: InstancePlan, desired, bucket, secrets, observed) -> Outcome:
        if self.cancel.is_set():
            return Outcome(plan.name, plan.action, False, "not started (interrupted)")
        self.step(plan.name, "started")
        try:
            if plan.action is Action.DESTROY:
                outcome = self.destroy_instance(plan, observed)
            else:
                outcome = self.deploy_instance(plan, desired[plan.name], bucket, secrets.get(plan.name, {}))
            self.step(plan.name, "done")
            return outcome
        except Interrupted as exc:
            return Outcome(plan.name, plan.action, False, f"interrupted: {exc}")
        except DlError as exc:
            self.log(f"{plan.name}: FAILED: {exc}")
            return Outcome(plan.name, plan.action, False, str(exc))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.log(f"{plan.name}: FAILED: {explain_client_error(exc)}")
            return Outcome(plan.name, plan.action, False, explain_client_error(exc))

    def execute(
        self, plan: Plan, desired: dict[str, DesiredInstance], observed: ObservedState, secrets: dict
    ) -> ApplyResult:
        work = [i for i in plan.instances if i.action is not Action.NOOP]
        result = ApplyResult()
        if not work and not plan.certificates:
            return result
        for item in work:
            self.progress[item.name] = "not started"
        self.keep_keys = set().union(*(artifact_keys(d.spec) for d in desired.values()))
        if any(i.action is Action.DESTROY for i in work):
            self.foreign_keys = referenced_elsewhere(
                self.aws, self.manifest.project, self.preview, self.parallelism
            )
        pool = ThreadPoolExecutor(max_workers=max(1, self.parallelism))
        futures = []
        taken = None  # a lock this call took (the caller's own lock is the caller's to release)
        try:
            if any(i.action is not Action.DESTROY for i in work):
                bucket = self.ensure_bootstrap(observed).bucket
            else:  # destroys only: whatever bootstrap there is (an older one has no execution role)
                bucket, self.role_arn = observed.bucket, observed.execution_role_arn()
                if self.preview is not None and not self.as_production:
                    # what the CI preview role may pass
                    self.role_arn = bootstrap.preview_role_arn(
                        observed, self.manifest.project, self.aws.region
                    )
            self.progress.pop("bootstrap", None)  # done (or not needed)
            if self.lock is None and bucket:
                # no bucket to hold a lock before this apply created it: take it now, and make sure nothing
                # changed between the plan and the lock
                taken = self.lock = self.take_lock(bucket)
                observed = observe(
                    self.aws, self.manifest.project, parallelism=self.parallelism, preview=self.preview
                )
                refuse_stale(plan, observed, desired)
            if self.lock is not None:
                self.lock.on_lost = lambda _message: self.cancel.set()
            if any(i.action is not Action.DESTROY for i in work):
                if self.preview is None:
                    self.keys = dl_secrets.ensure_keys(self.aws, bucket)
                else:  # production's fingerprint key, the previews' own derivation key
                    self.keys = dl_secrets.preview_keys(self.aws, bucket, PREVIEW_KEY_OBJECT)
            warn_near_quotas(self.aws, work, desired, observed, self.log)
            futures = domains.submit_in_order(
                pool,
                work,
                desired,
                observed,
                run=lambda item: self.run_one(item, desired, bucket, secrets, observed),
                log=self.log,
            )
            result.outcomes = [f.result() for f in futures]
            result.certificates = self.remove_certificates(plan.certificates, result.outcomes, observed)
            if bucket and result.ok and self.lock is not None and self.lock.held:
                # only under the lock: a concurrent apply may reuse artifacts
                collect_garbage(
                    self.aws, bucket, self.manifest.project, self.preview, self.parallelism, self.log
                )
        except (KeyboardInterrupt, Interrupted):
            self.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            wait(futures, timeout=INTERRUPT_GRACE_SECONDS)  # workers stop at their next safe point
            raise ApplyInterrupted(interruption_report(self.progress, futures)) from None
        finally:
            pool.shutdown(wait=False)
            if taken is not None:
                taken.release()
        return result

    def remove_certificates(
        self, removals: tuple[CertificateRemoval, ...], outcomes: list[Outcome], observed: ObservedState
    ) -> list[str]:
        """Delete the orphaned certificate stacks after the instances moved off them (dl/apply/domains.py);
        one whose user failed to move is kept for the next apply."""
        return domains.remove_certificates(
            removals,
            {o.name for o in outcomes if not o.ok},
            observed,
            deployer=self.deployer,
            cancel=self.cancel,
            log=self.log,
            parallelism=self.parallelism,
        )

    def take_lock(self, bucket: str) -> ProjectLock:
        lock = ProjectLock(
            self.aws,
            bucket,
            operation=self.operation,
            commit=self.commit,
            log=self.log,
            key=names.lock_key(self.preview),
        )
        lock.acquire(self.lock_timeout)
        return lock


def apply_plan(
    plan: Plan,
    desired: dict[str, DesiredInstance],
    aws: Aws,
    manifest: Manifest,
    *,
    allow_destroy: bool = False,
    parallelism: int = 4,
    log: Log = print,
    observed: ObservedState | None = None,
    verify: bool = False,
    rollback_on_failure: bool = False,
    lock=None,
    lock_timeout: float = 0.0,
) -> ApplyResult:
    """Execute `plan`. Refuses (before writing anything) unsafe or stale plans, missing secrets and an
    environment Lambda would refuse.

    ``lock``: the project's lock (dl/apply/lock.py) when the caller took it before observing; without one the
    executor takes it (waiting up to ``lock_timeout`` seconds) as soon as there is a bucket to hold it."""
    refuse_unsafe(plan, allow_destroy=allow_destroy)
    if observed is None:
        observed = observe(aws, manifest.project, parallelism=parallelism, preview=plan.preview)
    refuse_stale(plan, observed, desired)
    deploying = [i.name for i in plan.instances if i.action not in (Action.NOOP, Action.DESTROY)]
    secrets = secret_values(manifest, deploying)
    work = [i for i in plan.instances if i.action is not Action.NOOP]
    domains.handover_waits(work, desired, observed)  # refuses a domain swap
    refuse_oversized_environment(manifest, desired, deploying, secrets, observed.bucket)
    executor = Executor(
        aws,
        manifest,
        log=log,
        parallelism=parallelism,
        verify=verify,
        rollback_on_failure=rollback_on_failure,
        lock=lock,
        lock_timeout=lock_timeout,
        preview=plan.preview,
    )
    return executor.execute(plan, desired, observed, secrets)
