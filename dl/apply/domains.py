"""Custom domains in apply: each domain's certificate, its handover between instances, its DNS record.

- A domain's certificate stack (us-east-1, one per domain whichever instance has it, so a domain that moves
  keeps its certificate) is brought up before the instance stack that uses it (:func:`instance_certificate`).
- A domain that moves from one instance to another is claimed only once the releasing instance let go of it
  (:func:`handover_waits`; a swap cannot be ordered and is refused before anything is written).
- A domain no Route 53 zone holds gets the DNS record its user must create (:func:`dns_record_advice`).
- The orphaned certificate stacks of the plan are removed once every instance has moved off them
  (:func:`remove_certificates`): ACM refuses to delete a certificate a distribution uses
  (``ResourceInUseException``, a marker that lags for minutes after the distribution let go), so a refused
  deletion is retried with backoff for a bounded time (``DL_CERTIFICATE_RELEASE_SECONDS``, default 20
  minutes), then left for the next apply, which is reported, not failed (:func:`release_certificate_stack`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import botocore.exceptions

from dl.apply.results import Outcome
from dl.apply.stacks import DeployError, Interrupted, Log, StackDeployer
from dl.aws import names, templates
from dl.aws.client import Aws, explain_client_error
from dl.aws.observed import ObservedState
from dl.build.desired import DesiredInstance
from dl.errors import DlError
from dl.manifest.tags import TAG_DOMAIN
from dl.plan.domains import domain_handovers
from dl.plan.model import CertificateRemoval, InstancePlan


def instance_certificate(
    aws: Aws,
    project: str,
    desired: DesiredInstance,
    *,
    deployer: Callable[..., StackDeployer],
    tags: dict,
) -> tuple[str | None, str | None]:
    """(certificate ARN, hosted zone id) for an instance with a domain. ``deployer(cfn_region=...)``: a
    StackDeployer for the certificate stack; ``tags``: the stack's (its domain is added)."""
    instance = desired.instance
    if not instance.domain:
        return None, None
    zone = aws.hosted_zone_for(instance.domain)
    if instance.certificate_arn:
        return instance.certificate_arn, zone
    if zone is None:
        raise DlError(
            f"{instance.name}: no Route 53 hosted zone holds {instance.domain}; add one, or set "
            "certificate_arn to an ACM certificate (us-east-1) for the domain"
        )
    # one stack per domain, whichever instance has it: a domain that moves keeps its certificate
    name = names.certificate_stack_name(project, instance.domain)
    stacks = deployer(cfn_region=names.CERTIFICATE_REGION)
    tags = {**tags, TAG_DOMAIN: instance.domain}
    _, stack = stacks.deploy(name, templates.certificate_template(project, instance, zone), tags=tags)
    outputs = {o["OutputKey"]: o.get("OutputValue") for o in (stack or {}).get("Outputs") or []}
    return outputs.get("CertificateArn"), zone


def remove_certificates(
    removals: tuple[CertificateRemoval, ...],
    failed: set[str],
    observed: ObservedState,
    *,
    deployer: Callable[..., StackDeployer],
    cancel: threading.Event,
    log: Log,
    parallelism: int,
) -> list[str]:
    """Delete the orphaned certificate stacks (in parallel: each may wait out ACM's lagging in-use marker),
    after the instances moved off them. A stack whose user failed to move (``failed``: its instance stack kept
    the certificate) is kept for the next apply. ``deployer(stack_name, cfn_region=...)``: a StackDeployer."""
    if not removals:
        return []

    def remove(removal: CertificateRemoval) -> str:
        users = sorted(
            name
            for name in failed
            if name in observed.instances
            and (
                (removal.domain and (observed.instances[name].spec or {}).get("domain") == removal.domain)
                or name == removal.instance
            )
        )
        if users:
            line = f"{removal.stack_name}: kept: {', '.join(users)} did not move off it (next apply)"
        else:
            if cancel.is_set():
                raise Interrupted("interrupted before removing orphaned certificate stacks")
            stacks = deployer(removal.stack_name, cfn_region=names.CERTIFICATE_REGION)
            line = release_certificate_stack(stacks, removal, log)
        log(line)
        return line

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        return list(pool.map(remove, removals))


def certificate_release_seconds() -> float:
    return float(os.environ.get("DL_CERTIFICATE_RELEASE_SECONDS", str(20 * 60)))


def certificate_in_use(reason: str) -> bool:
    """ACM's refusal as CloudFormation reports it in the certificate's DELETE_FAILED event: the error code
    (``ResourceInUseException``) or, in the older resource handlers' wording, only its message ("Certificate
    arn:... in account ... is in use.")."""
    return "ResourceInUseException" in reason or "is in use" in reason


def release_certificate_stack(deployer: StackDeployer, removal: CertificateRemoval, log: Log) -> str:
    """Delete a certificate stack no distribution should use any more. ACM refuses while its in-use marker
    lags (the stack goes to DELETE_FAILED, the certificate's event says ``ResourceInUseException``): retried
    with exponential backoff until ``DL_CERTIFICATE_RELEASE_SECONDS``, then left (and said so) for the next
    apply, which finds it orphaned again. Any other failure is reported the same way: never an apply failure,
    since every instance is already serving."""
    budget = certificate_release_seconds()
    deadline = time.monotonic() + budget
    delay = max(min(10.0, budget / 20), 0.01)
    name = removal.stack_name
    while True:
        try:
            deployer.delete(removal.stack_id, name)
            return f"{name}: removed the orphaned certificate stack ({removal.domain or 'no domain tag'})"
        except Interrupted:
            raise
        except DlError as exc:
            if not isinstance(exc, DeployError) or not certificate_in_use(str(exc)):
                return f"{name}: left for the next apply: {exc}"
            if time.monotonic() + delay > deadline:
                return (
                    f"{name}: left for the next apply: ACM still reports the certificate in use after "
                    f"{budget:.0f} s (its in-use marker lags after a distribution lets go)"
                )
            log(f"{name}: the certificate is still in use (ACM's marker lags); retrying in {delay:.3g} s")
            deployer.pause(delay)
            delay = min(delay * 2, 120.0)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            return f"{name}: left for the next apply: {explain_client_error(exc)}"


def handover_waits(work, desired, observed) -> dict[str, dict[str, str]]:
    """{claimer: {domain: releaser}} among the instances being worked on. A domain swap (each instance claims
    what the other releases) cannot be ordered: DlError, before anything is written."""
    working = [i.name for i in work]
    specs = {n: d.spec for n, d in desired.items()}
    waits: dict[str, dict[str, str]] = {}
    for h in domain_handovers(specs, observed, working):
        waits.setdefault(h.claimer, {})[h.domain] = h.releaser
    placed = {n for n in working if n not in waits}
    progress = True
    while progress:
        progress = False
        for claimer, releases in waits.items():
            if claimer not in placed and all(r in placed for r in releases.values()):
                placed.add(claimer)
                progress = True
    stuck = sorted(c for c in waits if c not in placed)
    if stuck:
        raise DlError(
            f"{', '.join(stuck)} swap domains: none can claim its new domain before another released it. "
            "Apply in two steps (first remove the domains that move, then set them); nothing was changed"
        )
    return waits


def submit_in_order(
    pool: ThreadPoolExecutor,
    work: list[InstancePlan],
    desired: dict,
    observed: ObservedState,
    *,
    run: Callable[[InstancePlan], Outcome],
    log: Log,
) -> list[Future]:
    """Submit every instance (``run(item)``); one that claims a domain another instance releases waits for that
    release to finish (:func:`dl.plan.domains.domain_handovers`), the others start at once. Releasers are submitted
    first, so a waiting claimer never holds the pool's threads from the work it waits for. Futures in plan
    order."""
    waits = handover_waits(work, desired, observed)
    releasers = {r for releases in waits.values() for r in releases.values()}
    pending = sorted(work, key=lambda i: (i.name in waits, i.name not in releasers))  # releasers first
    futures: dict[str, Future] = {}
    while pending:  # topological: an instance after every instance it waits for (swaps were refused)
        item = next(i for i in pending if all(r in futures for r in waits.get(i.name, {}).values()))
        pending.remove(item)
        before = [(futures[r], r, d) for d, r in waits.get(item.name, {}).items()]
        futures[item.name] = pool.submit(_run_after, before, item, run, log)
    return [futures[i.name] for i in work]


def _run_after(before, plan: InstancePlan, run: Callable[[InstancePlan], Outcome], log: Log) -> Outcome:
    for future, releaser, domain in before:
        outcome = future.result()
        if not outcome.ok:
            return Outcome(plan.name, plan.action, False, f"not started: {releaser} did not release {domain}")
        log(f"{plan.name}: {releaser} released {domain}; claiming it now")
    return run(plan)


def dns_record_advice(domain: str, distribution_id: str | None, host: str | None) -> str:
    """The DNS record a user must create for a domain no Route 53 zone holds (with the real target when known)."""
    target = host or (
        f"the domain name of CloudFront distribution {distribution_id or '(see the stack outputs)'}"
    )
    return f"no Route 53 zone holds {domain}: create the DNS record {domain} CNAME {target} (or an ALIAS at an apex)"
