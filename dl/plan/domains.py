"""Domains and certificate stacks in a plan: a custom domain that moves from one instance to another (the order
apply must keep, and the window in which it does not serve), and the certificate stacks (one per domain, in
us-east-1) that no instance uses once the plan is applied. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from dl.plan.model import Action, CertificateRemoval, Change, InstancePlan


@dataclass(frozen=True)
class Handover:
    """``releaser`` gives up ``domain`` (destroyed, or updated to another domain or none) and ``claimer`` takes it:
    CloudFront lets one distribution hold an alias at a time, and the Route 53 records exist once, so the claim
    may only start once the release is complete."""

    domain: str
    releaser: str
    claimer: str


def domain_handovers(
    desired: dict[str, dict | None], observed, names: list[str] | None = None
) -> list[Handover]:
    """Every domain that moves from one instance to another in this change (``desired``: instance -> spec, None or
    absent when removed). Pure."""
    names = list(desired) + [n for n in observed.instances if n not in desired] if names is None else names
    releasers: dict[str, str] = {}
    for name in names:
        o = observed.instances.get(name)
        domain = (o.spec or {}).get("domain") if o is not None and o.serving else None
        if domain and (desired.get(name) or {}).get("domain") != domain:
            releasers[domain] = name
    handovers = []
    for name in names:
        domain = (desired.get(name) or {}).get("domain")
        if domain and domain in releasers and releasers[domain] != name:
            handovers.append(Handover(domain, releasers[domain], name))
    return handovers


def handover_lines(handover: Handover, claimer_spec: dict | None) -> tuple[str, str]:
    """(line for the releaser, line for the claimer): the order, and the window in which the domain does not serve."""
    h = handover
    issued = "" if (claimer_spec or {}).get("certificate_arn") else ", plus issuing its certificate"
    order = f"{h.releaser} releases {h.domain} before {h.claimer} claims it"
    return (
        f"{order}: {h.claimer} starts only once this is done",
        f"{order}: {h.claimer} waits for it; {h.domain} does not serve from when {h.releaser} lets it go "
        f"until the distribution of {h.claimer} is deployed (CloudFront: 5-15 minutes{issued})",
    )


def issued_domain(spec: dict | None) -> str | None:
    """The domain whose certificate dl issues for an instance (none when the manifest gives certificate_arn)."""
    if not spec or not spec.get("domain") or spec.get("certificate_arn"):
        return None
    return spec["domain"]


def domains_in_use(desired: dict[str, dict | None], observed, names: list[str]) -> set[str]:
    """Domains with a dl-issued certificate once the plan is applied: the planned instances' desired ones and
    the deployed ones of instances the plan leaves alone (``--target``)."""
    used = set()
    for name in set(desired) | set(observed.instances):
        if name in names:
            spec = desired.get(name)
        else:
            o = observed.instances.get(name)
            spec = o.spec if o is not None else None
        if issued_domain(spec):
            used.add(issued_domain(spec))
    return used


def certificate_removals(
    project: str, desired: dict[str, dict | None], observed, names: list[str]
) -> tuple[CertificateRemoval, ...]:
    """The project's certificate stacks that no instance uses after this plan: per-domain stacks of a domain
    no instance has, and per-instance stacks of earlier versions once their instance is part of the plan
    (which moves its distribution to the domain's stack, or destroys it). Pure."""
    used = domains_in_use(desired, observed, names)
    out = []
    for cert in getattr(observed, "certificates", ()):
        if cert.legacy is not None:
            if cert.legacy in observed.instances and cert.legacy not in names:
                continue  # its instance is left alone (--target): its distribution still uses it
            reason = f"the per-instance certificate stack of {cert.legacy} (earlier versions): no longer used"
        elif cert.domain in used:
            continue
        else:
            reason = f"no instance of project {project} has the domain {cert.domain} any more"
        out.append(CertificateRemoval(cert.stack.name, cert.stack.stack_id, cert.domain, reason, cert.legacy))
    return tuple(out)


def switch_legacy_certificate(item: InstancePlan, observed) -> InstancePlan:
    """An unchanged instance whose distribution still uses its per-instance certificate stack of earlier
    versions is updated onto the domain's own certificate stack (so the old stack can be removed)."""
    from dataclasses import replace

    from dl.aws.names import certificate_stack_name

    domain = issued_domain(item.desired)
    legacy = [c for c in getattr(observed, "certificates", ()) if c.legacy == item.name]
    if item.action is not Action.NOOP or not domain or not legacy:
        return item
    new = certificate_stack_name(observed.project, domain)
    return replace(
        item,
        action=Action.UPDATE,
        changes=(Change("certificate", legacy[0].stack.name, new, "one certificate stack per domain"),),
        consequences=(
            f"the distribution moves to the certificate of stack {new}; then {legacy[0].stack.name} is removed",
        ),
    )
