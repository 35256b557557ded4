"""Certificate stacks: one per domain (`<project>--cert-<hash>`, us-east-1), reused when the domain moves, removed
once no instance uses them, with a bounded retry of ACM's in-use refusal.

moto keeps a certificate stack but does not emulate the `AWS::CertificateManager::Certificate` inside it (its
`CertificateArn` output is empty), and it never refuses a deletion: the orphan and reuse tests run on moto's
server; ACM's `ResourceInUseException` (a DELETE_FAILED stack whose certificate event gives that reason, the
in-use marker lagging after the distribution let go) is fed by botocore's Stubber, with the response shapes of
the CloudFormation API reference (DeleteStack, DescribeStacks, DescribeStackEvents).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from dl.apply.executor import Executor, StackDeployer, release_certificate_stack
from dl.aws import client as dl_aws
from dl.aws.client import Aws
from dl.aws.names import CERTIFICATE_REGION, certificate_stack_name, legacy_certificate_stack_name
from dl.aws.templates import certificate_template
from dl.build.desired import DesiredInstance
from dl.commands.options import load
from dl.plan.model import CertificateRemoval
from tests.apply.conftest import dl, write_manifest

CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab"
IN_USE = (
    f'Resource handler returned message: "Certificate {CERT_ARN} in account 123456789012 is in use. '
    '(Service: Acm, Status Code: 400, Request ID: 5a1f6e3b-0c1d-4e2f-8a9b-0123456789ab)" '
    "(RequestToken: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0, HandlerErrorCode: ResourceInUseException)"
)


def us_east_1():
    return boto3.client("cloudformation", region_name=CERTIFICATE_REGION)


def cert_stacks() -> list[str]:
    return sorted(s["StackName"] for s in us_east_1().describe_stacks()["Stacks"])


def leave_certificate_stack(manifest, domain: str, *, legacy_instance: str | None = None) -> str:
    """A certificate stack as an earlier apply left it (dl's template and tags; moto skips the certificate)."""
    project = manifest.project
    if legacy_instance:
        name = legacy_certificate_stack_name(project, legacy_instance)
        tags = {"dl:project": project, "dl:role": "certificate", "dl:instance": legacy_instance}
    else:
        name = certificate_stack_name(project, domain)
        tags = {"dl:project": project, "dl:role": "certificate", "dl:domain": domain}
    instance = dataclasses.replace(next(iter(manifest.instances.values())), domain=domain)
    us_east_1().create_stack(
        StackName=name,
        TemplateBody=json.dumps(certificate_template(project, instance, None)),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    return name


def test_an_orphaned_certificate_stack_shows_in_plan_and_status_and_the_next_apply_removes_it(project):
    manifest = load(
        str(write_manifest(project, "project: co\ninstances:\n  a:\n    databases: [alpha.db]\n"))
    )
    orphan = leave_certificate_stack(manifest, "old.example.org")
    legacy = leave_certificate_stack(manifest, "a.example.org", legacy_instance="a")
    assert orphan == "co--cert-" + hashlib.sha256(b"old.example.org").hexdigest()[:16]
    assert cert_stacks() == sorted([orphan, legacy])

    shown = dl("plan")
    assert shown.exit_code == 0, shown.output
    assert f"certificate stack {orphan} (old.example.org, us-east-1): orphaned" in shown.output
    assert f"certificate stack {legacy}" in shown.output
    assert "2 orphaned certificate stacks to remove" in shown.output
    status = dl("status")
    assert f"certificate stack {orphan} (old.example.org): orphan" in status.output, status.output

    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output
    assert f"{orphan}: removed the orphaned certificate stack (old.example.org)" in applied.output
    assert cert_stacks() == []  # nothing left in us-east-1
    again = dl("plan")
    assert "No changes." in again.output and "certificate stack" not in again.output


def test_a_domain_moved_between_instances_reuses_its_certificate_stack(project, calls):
    """Executor.certificate as the apply runs it: for instance a, then (the manifest moved the domain) for b,
    after a released it (the handover orders them): b finds the domain's stack and writes nothing new (moto's
    server, a Route 53 zone for the domain)."""
    boto3.client("route53").create_hosted_zone(Name="example.org", CallerReference="cert-move")
    domain = "    domain: data.example.org\n"

    def certificate_for(name: str, manifest_text: str) -> None:
        manifest = load(str(write_manifest(project, manifest_text)), check_files=False)
        executor = Executor(Aws(manifest.region), manifest, log=lambda _: None)
        executor.certificate(DesiredInstance(manifest.instances[name], {}, Path(), None))

    head = "project: cm\ninstances:\n"
    certificate_for(
        "a", head + "  a:\n    databases: [alpha.db]\n" + domain + "  b:\n    databases: [beta.db]\n"
    )
    first = cert_stacks()
    assert first == [certificate_stack_name("cm", "data.example.org")]
    assert calls.count("cloudformation.ExecuteChangeSet") == 1
    calls.clear()
    certificate_for("b", head + "  a:\n    databases: [alpha.db]\n  b:\n    databases: [beta.db]\n" + domain)
    assert cert_stacks() == first  # no second certificate stack
    assert "cloudformation.ExecuteChangeSet" not in calls  # the same template and tags: nothing to execute
    tags = {
        t["Key"]: t["Value"] for t in us_east_1().describe_stacks(StackName=first[0])["Stacks"][0]["Tags"]
    }
    assert (
        tags["dl:domain"] == "data.example.org" and tags["dl:project"] == "cm" and "dl:instance" not in tags
    )


# --- ACM's in-use refusal (Stubber: moto never refuses a deletion) ------------------------------------------------


def stack_description(stack_id: str, status: str, reason: str | None = None) -> dict:
    """DescribeStacks as the API reference shapes it (a stack described by its id, deleted ones included)."""
    stack = {
        "StackId": stack_id,
        "StackName": stack_id.split("/")[1],
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "StackStatus": status,
        "Tags": [{"Key": "dl:project", "Value": "cs"}, {"Key": "dl:role", "Value": "certificate"}],
    }
    if reason:
        stack["StackStatusReason"] = reason
    return {"Stacks": [stack]}


def in_use_events(stack_id: str, attempt: int) -> dict:
    """DescribeStackEvents after a refused deletion: the certificate's DELETE_FAILED with ACM's reason."""
    name = stack_id.split("/")[1]
    now = datetime.now(UTC)
    return {
        "StackEvents": [
            {
                "StackId": stack_id,
                "EventId": f"{name}-failed-{attempt}",
                "StackName": name,
                "LogicalResourceId": name,
                "PhysicalResourceId": stack_id,
                "ResourceType": "AWS::CloudFormation::Stack",
                "Timestamp": now,
                "ResourceStatus": "DELETE_FAILED",
                "ResourceStatusReason": "The following resource(s) failed to delete: [Certificate]. ",
            },
            {
                "StackId": stack_id,
                "EventId": f"Certificate-DELETE_FAILED-{attempt}",
                "StackName": name,
                "LogicalResourceId": "Certificate",
                "PhysicalResourceId": CERT_ARN,
                "ResourceType": "AWS::CertificateManager::Certificate",
                "Timestamp": now,
                "ResourceStatus": "DELETE_FAILED",
                "ResourceStatusReason": IN_USE,
            },
        ]
    }


def deletion(stack_id: str, role: str | None) -> dict:
    """DeleteStack's parameters: run as the bootstrap's execution role when there is one."""
    return {"StackName": stack_id, **({"RoleARN": role} if role else {})}


def answer_deletions(stub: Stubber, stack_id: str, *, refusals: int, role: str | None = None) -> None:
    """Each DeleteStack of the stack is answered when it is made (so its events are newer than the call, as on
    AWS): the first ``refusals`` end in DELETE_FAILED with ACM's in-use reason, the next one deletes it."""
    attempts = [0]

    def queue(params, **_):
        attempts[0] += 1
        stub.add_response("delete_stack", {}, deletion(stack_id, role))
        progress = stack_description(stack_id, "DELETE_IN_PROGRESS")
        stub.add_response("describe_stacks", progress, {"StackName": stack_id})
        if attempts[0] > refusals:
            gone = stack_description(stack_id, "DELETE_COMPLETE")
            stub.add_response("describe_stacks", gone, {"StackName": stack_id})
            return
        failed = stack_description(
            stack_id, "DELETE_FAILED", "The following resource(s) failed to delete: [Certificate]. "
        )
        stub.add_response("describe_stacks", failed, {"StackName": stack_id})
        events = in_use_events(stack_id, attempts[0])
        stub.add_response("describe_stack_events", events, {"StackName": stack_id})

    stub.client.meta.events.register("provide-client-params.cloudformation.DeleteStack", queue)


def removal(stack_id: str) -> CertificateRemoval:
    return CertificateRemoval(stack_id.split("/")[1], stack_id, "data.example.org", "no instance has it")


STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{certificate_stack_name('cs', 'data.example.org')}/0f1e2d3c-4b5a-11f0-8796-0a1b2c3d4e5f"


@pytest.fixture
def stubbed(aws, monkeypatch):
    """A StackDeployer on us-east-1 whose CloudFormation client answers from a Stubber."""
    monkeypatch.setenv("DL_POLL_SECONDS", "0.01")
    client = Aws(CERTIFICATE_REGION)
    deployer = StackDeployer(client, lambda _: None, cfn_region=CERTIFICATE_REGION)
    with Stubber(deployer.cfn) as stub:
        yield deployer, stub


def test_a_certificate_still_in_use_is_deleted_once_acm_lets_go(stubbed, monkeypatch):
    deployer, stub = stubbed
    monkeypatch.setenv("DL_CERTIFICATE_RELEASE_SECONDS", "3")  # backoff 0.15 s, then 0.3 s: well within it
    answer_deletions(stub, STACK_ID, refusals=2)
    logged: list[str] = []
    line = release_certificate_stack(deployer, removal(STACK_ID), logged.append)
    assert (
        line == f"{removal(STACK_ID).stack_name}: removed the orphaned certificate stack (data.example.org)"
    )
    assert len([x for x in logged if "still in use" in x]) == 2  # two retries, with backoff between them
    stub.assert_no_pending_responses()  # deleted on the third attempt, then asked nothing more


def test_a_certificate_in_use_past_the_bound_is_left_for_the_next_apply_not_failed(stubbed, monkeypatch):
    deployer, stub = stubbed
    monkeypatch.setenv("DL_CERTIFICATE_RELEASE_SECONDS", "0.5")  # backoff 0.025 s, doubling: ~4 attempts fit
    answer_deletions(stub, STACK_ID, refusals=1000)  # more refusals than the bound leaves time for
    logged: list[str] = []
    line = release_certificate_stack(deployer, removal(STACK_ID), logged.append)
    assert "left for the next apply: ACM still reports the certificate in use" in line
    retries = len([x for x in logged if "still in use" in x])
    assert 1 <= retries < 20  # retried with backoff, then stopped at the bound (not at the refusals' end)
    stub.assert_no_pending_responses()


EXECUTION_ROLE = "arn:aws:iam::123456789012:role/cs--cfn-exec-eu-west-1"  # the bootstrap's (moto's account)


def test_destroying_an_instance_with_a_domain_leaves_no_certificate_stack_after_acm_lets_go(
    project, monkeypatch
):
    """`dl destroy` end to end: the instance stack on moto's server; the us-east-1 certificate stack of its domain
    answered by a Stubber, whose deletion ACM refuses twice (DELETE_FAILED, ResourceInUseException) before it
    goes. The instance uses `certificate_arn` (moto cannot give an issued certificate's ARN), so this stack is
    the one an earlier apply issued for the domain."""
    monkeypatch.setenv("DL_CERTIFICATE_RELEASE_SECONDS", "3")
    write_manifest(
        project,
        "project: cs\ninstances:\n  a:\n    databases: [alpha.db]\n"
        f"    domain: data.example.org\n    certificate_arn: {CERT_ARN}\n",
    )
    applied = dl("apply", "--yes", "--no-verify")
    assert applied.exit_code == 0, applied.output

    stubs: list[Stubber] = []
    original = dl_aws.Aws.client

    def client(self, service, region=None, *, retries=True):
        made = original(self, service, region, retries=retries)
        if service == "cloudformation" and region == CERTIFICATE_REGION and retries and not stubs:
            stub = Stubber(made)
            listings = []

            def listing(params, **_):  # observe lists the project's certificate stacks (us-east-1)
                if "StackName" in params:
                    return
                listed = stack_description(STACK_ID, "CREATE_COMPLETE")
                listed["Stacks"][0]["Tags"].append({"Key": "dl:domain", "Value": "data.example.org"})
                stub.add_response("describe_stacks", {"Stacks": []} if listings else listed, {})
                listings.append(params)  # the second (artifact GC after the destroy) finds none left

            made.meta.events.register("provide-client-params.cloudformation.DescribeStacks", listing)
            answer_deletions(stub, STACK_ID, refusals=2, role=EXECUTION_ROLE)
            stub.activate()
            stubs.append(stub)
        return made

    monkeypatch.setattr(dl_aws.Aws, "client", client)
    destroyed = dl("destroy", "a", "--yes")
    assert destroyed.exit_code == 0, destroyed.output
    name = certificate_stack_name("cs", "data.example.org")
    assert f"certificate stack {name} (data.example.org, us-east-1): orphaned" in destroyed.output
    assert destroyed.output.count(f"{name}: the certificate is still in use") == 2
    assert f"{name}: removed the orphaned certificate stack (data.example.org)" in destroyed.output
    stubs[0].assert_no_pending_responses()  # deleted on the third attempt: nothing was left to ask
    assert boto3.client("cloudformation").describe_stacks()["Stacks"][0]["StackName"] == "cs--bootstrap"


def test_a_certificate_stack_whose_instance_failed_to_move_off_it_is_kept_for_the_next_apply(project):
    """The instance stack's update failed (CloudFormation rolled it back onto the old certificate): deleting the
    old certificate stack could only fail, so it is kept and said so (moto's server holds the stack)."""
    from dl.apply.executor import Outcome
    from dl.aws.client import Stack
    from dl.aws.observed import ObservedInstance, ObservedState
    from dl.plan.model import Action

    manifest = load(
        str(write_manifest(project, "project: ck\ninstances:\n  a:\n    databases: [alpha.db]\n"))
    )
    name = leave_certificate_stack(manifest, "old.example.org")
    stack_id = us_east_1().describe_stacks(StackName=name)["Stacks"][0]["StackId"]
    deployed = Stack("ck-a", "arn:stack/ck-a/1", "UPDATE_ROLLBACK_COMPLETE", None, {}, {}, None, None)
    observed = ObservedState(
        "ck", "eu-west-1", None, None, {"a": ObservedInstance("a", deployed, {"domain": "old.example.org"})}
    )
    executor = Executor(Aws(manifest.region), manifest, log=lambda _: None)
    failed = [Outcome("a", Action.UPDATE, False, "UPDATE_ROLLBACK_COMPLETE")]
    orphan = CertificateRemoval(name, stack_id, "old.example.org", "no instance has it")
    assert executor.remove_certificates((orphan,), failed, observed) == [
        f"{name}: kept: a did not move off it (next apply)"
    ]
    assert cert_stacks() == [name]
    done = [Outcome("a", Action.UPDATE, True, "applied")]
    assert executor.remove_certificates((orphan,), done, observed) == [
        f"{name}: removed the orphaned certificate stack (old.example.org)"
    ]
    assert cert_stacks() == []
