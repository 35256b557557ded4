"""Conflicts: resources that already exist and would make a deploy fail on AWS, found at plan time.

Pipeline position: after **plan**, before apply; read-only. AWS enforces uniqueness that the emulator does not:
a create that meets an existing resource fails after minutes and rolls the whole stack back. So before anything
is written, for every instance the plan creates or changes:

- **a stack of the instance's name that this project does not own** (another project's, or no ``dl:project``
  tag): dl never touches it, so the instance cannot be deployed under that name;
- **a log group ``/aws/lambda/<project>-<instance>`` its stack does not own** (left by an earlier deployment,
  or created by Lambda or by hand): ``AWS::Logs::LogGroup`` fails with ``AlreadyExists``;
- **Route 53 records for the domain that no stack of this project created** (A, AAAA or CNAME in the zone dl
  would write to): ``AWS::Route53::RecordSet`` fails because the record exists;
- **the domain as an alias on another CloudFront distribution** (``CNAMEAlreadyExists``), found with
  ``cloudfront:ListConflictingAliases``. CloudFront answers that only through a distribution of ours whose
  certificate covers the alias (its API reference), so it is checked when the instance's deployed distribution
  already has the certificate it will use (``certificate_arn`` unchanged); otherwise CloudFront's own refusal at
  apply time is the check, and a plan cannot see it.

``dl plan`` prints each conflict with what to do and exits 1; ``dl apply`` refuses before writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import botocore.exceptions

from dl.aws.client import Aws, explain_client_error
from dl.errors import DlError
from dl.manifest.tags import TAG_PROJECT
from dl.plan.model import Action, Plan

RECORD_TYPES = ("A", "AAAA", "CNAME")


@dataclass(frozen=True)
class Conflict:
    instance: str
    what: str  # what exists
    fix: str  # what to do about it

    def __str__(self) -> str:
        return f"{self.instance}: {self.what}\n    what to do: {self.fix}"


def _domains_served(observed) -> dict[str, str]:
    """{domain: instance} for the project's live instances: records and aliases these hold are dl's own."""
    return {
        o.spec["domain"]: name
        for name, o in observed.instances.items()
        if o.spec and o.spec.get("domain") and o.serving
    }


def _distributions(observed) -> set[str]:
    ids = set()
    for o in observed.instances.values():
        value = o.stack.outputs.get("DistributionId")
        if value and value != "None":
            ids.add(value)
    return ids


def find_conflicts(aws: Aws, project: str, plan: Plan, observed) -> list[Conflict]:
    """Every conflict of the plan's creates, updates and replacements with what exists on AWS. Read-only."""
    from dl.aws.names import instance_stack_name, log_group_name

    conflicts: list[Conflict] = []
    served = _domains_served(observed)
    ours = _distributions(observed)
    for item in plan.instances:
        if item.action not in (Action.CREATE, Action.UPDATE, Action.REPLACE) or item.desired is None:
            continue
        spec = item.desired
        stack_name = instance_stack_name(project, item.name, plan.preview)
        deployed = observed.instances.get(item.name)
        try:
            if deployed is None:
                conflicts += foreign_stack(aws, project, item.name, stack_name)
            if item.action is Action.CREATE:
                log_group = log_group_name(project, item.name, plan.preview)
                conflicts += stray_log_group(aws, item.name, log_group, deployed)
            domain = spec.get("domain")
            if domain and served.get(domain) is None:
                conflicts += existing_records(aws, item.name, domain)
                conflicts += alias_elsewhere(aws, item.name, domain, spec, deployed, ours)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise DlError(f"{item.name}: cannot check for conflicts: {explain_client_error(exc)}") from None
    return conflicts


def foreign_stack(aws: Aws, project: str, instance: str, stack_name: str) -> list[Conflict]:
    stack = aws.stack(stack_name)
    if stack is None:
        return []
    owner = stack.tags.get(TAG_PROJECT)
    if owner == project or (owner is None and stack.status == "REVIEW_IN_PROGRESS"):
        return []  # ours (an interrupted first deploy leaves an untagged REVIEW_IN_PROGRESS stack: apply clears it)
    whose = f"project {owner}" if owner else "no datasette-lambda project (no dl:project tag)"
    return [
        Conflict(
            instance,
            f"the stack {stack_name} exists and belongs to {whose}; dl never touches it",
            "rename the instance, or delete that stack if it is not needed",
        )
    ]


def stray_log_group(aws: Aws, instance: str, name: str, deployed) -> list[Conflict]:
    logs = aws.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups") or []
    if not any(g.get("logGroupName") == name for g in groups):
        return []
    if deployed is not None:  # the stack being re-created may own it (it goes with that stack)
        owned = aws.stack_resource(deployed.stack.stack_id, "LogGroup")
        if owned == name:
            return []
    return [
        Conflict(
            instance,
            f"the log group {name} exists and no stack of this project owns it (left by an earlier deployment, "
            "or created by Lambda or by hand); creating the stack would fail with AlreadyExists",
            f"delete it (its events go with it): aws logs delete-log-group --log-group-name {name} "
            f"--region {aws.region}",
        )
    ]


def existing_records(aws: Aws, instance: str, domain: str) -> list[Conflict]:
    zone = aws.hosted_zone_for(domain)
    if zone is None:
        return []  # dl writes no records outside Route 53
    route53 = aws.client("route53", "us-east-1")
    wanted = domain.rstrip(".").lower() + "."
    found = []
    kwargs = {"HostedZoneId": zone, "StartRecordName": wanted}
    while True:
        page = route53.list_resource_record_sets(**kwargs)
        for record in page.get("ResourceRecordSets") or []:
            name = record["Name"].lower().replace("\\052", "*")
            if name != wanted:
                break
            if record["Type"] in RECORD_TYPES:
                found.append(record["Type"])
        else:
            if page.get("IsTruncated"):
                kwargs = {
                    "HostedZoneId": zone,
                    "StartRecordName": page["NextRecordName"],
                    "StartRecordType": page["NextRecordType"],
                }
                continue
        break
    if not found:
        return []
    kinds = "/".join(sorted(set(found)))
    return [
        Conflict(
            instance,
            f"Route 53 zone {zone} already has {kinds} records for {domain} that no stack of this project "
            "created; creating dl's records would fail",
            f"delete those records (once nothing needs them), or choose another domain for {instance}",
        )
    ]


def alias_elsewhere(
    aws: Aws, instance: str, domain: str, spec: dict, deployed, ours: set[str]
) -> list[Conflict]:
    """ListConflictingAliases through the instance's own distribution, when that already carries the
    certificate it will use (see the module docstring)."""
    if deployed is None or not deployed.serving or not deployed.spec:
        return []
    before = deployed.spec
    if not (spec.get("certificate_arn") and before.get("domain") and before.get("certificate_arn")):
        return []
    if before["certificate_arn"] != spec["certificate_arn"]:
        return []
    distribution = deployed.stack.outputs.get("DistributionId")
    if not distribution or distribution == "None":
        return []
    return conflicting_aliases(aws.client("cloudfront", "us-east-1"), instance, distribution, domain, ours)


def conflicting_aliases(
    cloudfront, instance: str, distribution: str, domain: str, ours: set[str]
) -> list[Conflict]:
    """The aliases CloudFront lists as conflicting with ``domain`` on distributions that are not the project's
    (CloudFront hides part of other distributions' and accounts' ids)."""
    items: list[dict] = []
    kwargs = {"DistributionId": distribution, "Alias": domain}
    try:
        while True:
            page = cloudfront.list_conflicting_aliases(**kwargs)["ConflictingAliasesList"]
            items += page.get("Items") or []
            if not page.get("NextMarker"):
                break
            kwargs["Marker"] = page["NextMarker"]
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidArgument":
            return []  # the distribution's certificate does not cover the alias: CloudFront cannot say
        raise
    others = [i for i in items if not any(_masked_equal(i.get("DistributionId", ""), d) for d in ours)]
    return [
        Conflict(
            instance,
            f"{i['Alias']} is an alias of CloudFront distribution {i.get('DistributionId')} (account "
            f"{i.get('AccountId')}); CloudFront refuses a second one (CNAMEAlreadyExists)",
            f"remove {i['Alias']} from that distribution first (in its account), or choose another domain",
        )
        for i in others
    ]


def _masked_equal(masked: str, full: str) -> bool:
    """Whether CloudFront's partly hidden id (``*`` for hidden characters) is ``full``."""
    return len(masked) == len(full) and all(m in ("*", f) for m, f in zip(masked, full, strict=True))


def render_conflicts(conflicts: list[Conflict]) -> str:
    count = len(conflicts)
    lines = [
        f"{count} conflict{'s' if count != 1 else ''} with what already exists on AWS (nothing was changed):"
    ]
    lines += [f"  {c}" for c in conflicts]
    return "\n".join(lines)
