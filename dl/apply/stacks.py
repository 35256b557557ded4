"""Stacks: bring one CloudFormation stack to a template through a change set, whatever state it is found in.

:class:`StackDeployer` is what apply uses for every stack it writes (the bootstrap, the instances, the
certificates): it waits out an operation in progress, removes what an interrupted or failed first deploy left
(REVIEW_IN_PROGRESS, ROLLBACK_COMPLETE, ...), refuses another project's stack, creates a change set (a large
template goes through the bucket), says what a reviewer should know of it (:func:`change_set_consequences`:
replacements, IAM, CloudFront), executes it and streams the stack's events until it settles. CloudFormation
acts as the bootstrap's execution role (``RoleARN``) when one is given.

Faults and interruptions (tests/reliability): reads and idempotent writes rely on botocore's retries; the two
non-idempotent writes (CreateChangeSet, ExecuteChangeSet) are sent once per attempt and, after a throttle, a
5xx, a reset or a timeout, CloudFormation is asked whether the request took effect before it is sent again
(:func:`once`), with the same client token (ClientToken, ClientRequestToken) so AWS recognises a retry of a
request that was still in flight. Change sets left behind by an interrupted apply are deleted by the next one.
Ctrl-C sets the deployer's cancel flag: it stops at its next safe point (:class:`Interrupted`).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import botocore.exceptions

from dl.aws import templates
from dl.aws.client import (
    TERMINAL_OK,
    Aws,
    describe_live_stack,
    explain_client_error,
    is_no_change,
    is_transient,
)
from dl.errors import DlError
from dl.manifest.tags import TAG_PROJECT

TEMPLATE_BODY_LIMIT = 51_200  # bytes; larger templates go through S3 (TemplateURL)
STACK_WAIT_SECONDS = 60 * 60  # CloudFront can take a while; a stack is never waited on longer than this
Log = Callable[[str], None]


def poll_interval() -> float:
    return float(os.environ.get("DL_POLL_SECONDS", "5"))


WRITE_ATTEMPTS = 8  # attempts of a non-idempotent write (each after checking the previous one did not land)


class DeployError(DlError):
    """A stack did not reach its template; carries the failing resources' reasons."""


class Interrupted(DlError):
    """Raised in a worker at its next safe point after Ctrl-C; the message says where it stopped."""


def once(
    call: Callable[[], object],
    landed: Callable[[], object | None],
    *,
    what: str,
    refused_retry: frozenset[str] = frozenset(),
):
    """Run a non-idempotent write at most once per attempt. After a transient failure (throttling, 5xx,
    reset connection, timeout) ``landed()`` asks AWS whether the write took effect (returning its result,
    else None) before it is sent again: a blind retry could create a second change set or execute one twice.

    The answer can come too early: a timed-out request may still be in flight when ``landed()`` looks. The
    retry then carries the same client token (AWS recognises it), and a retry that AWS refuses with one of
    the error codes in ``refused_retry`` (the earlier attempt took effect after all: AlreadyExistsException
    for a change set name, InvalidChangeSetStatus for a change set already executing) is answered by
    ``landed()`` again instead of failing the apply."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return call()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            code = (
                exc.response.get("Error", {}).get("Code")
                if isinstance(exc, botocore.exceptions.ClientError)
                else None  # a reset or a timeout (some carry response=None)
            )
            if attempt and code in refused_retry:
                result = landed()
                if result is not None:
                    return result
                raise
            if not is_transient(exc):
                raise
            result = landed()
            if result is not None:
                return result
            if attempt == WRITE_ATTEMPTS - 1:
                raise DlError(
                    f"{what}: gave up after {WRITE_ATTEMPTS} attempts: {explain_client_error(exc)}"
                ) from None
            time.sleep(min(0.25 * 2**attempt, 8.0) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


class StackDeployer:
    """Brings one stack to a template through a change set, handling every state a stack can be found in."""

    def __init__(
        self,
        aws: Aws,
        log: Log,
        *,
        cfn_region: str | None = None,
        bucket: str | None = None,
        cancel: threading.Event | None = None,
        step: Callable[[str], None] | None = None,
        key_prefix: str = "",
        role_arn: str | None = None,
    ):
        self.aws = aws
        self.key_prefix = key_prefix  # where large templates go in the bucket (a preview's: previews/)
        # the bootstrap's execution role: CloudFormation acts as it, not as the caller
        self.role_arn = role_arn
        self.log = log
        self.cfn = aws.client("cloudformation", cfn_region)
        self.cfn_once = aws.client("cloudformation", cfn_region, retries=False)  # see once()
        self.bucket = bucket
        self.cancel = cancel or threading.Event()
        self.step = step or (lambda _: None)

    def pause(self, seconds: float) -> None:
        """Sleep between polls; Ctrl-C (the cancel flag) ends the wait at once."""
        if self.cancel.wait(seconds):
            raise Interrupted("interrupted while waiting")

    def checkpoint(self, where: str) -> None:
        if self.cancel.is_set():
            raise Interrupted(where)

    def describe(self, name: str):
        return describe_live_stack(self.cfn, name)

    def wait_settled(self, name: str) -> dict | None:
        """Wait (bounded) while another operation is in progress on the stack; return it settled."""
        deadline = time.monotonic() + STACK_WAIT_SECONDS
        announced = False
        while True:
            stack = self.describe(name)
            status = stack["StackStatus"] if stack else None
            if not status or not status.endswith("_IN_PROGRESS") or status == "REVIEW_IN_PROGRESS":
                return stack
            if not announced:
                self.log(f"{name}: waiting for an operation already in progress ({status})")
                announced = True
            if time.monotonic() > deadline:
                raise DlError(
                    f"{name}: still {status} after {STACK_WAIT_SECONDS // 60} minutes; try again later"
                )
            self.pause(poll_interval())

    def delete(self, stack_id: str, name: str) -> None:
        self.step("stack deletion started (CloudFormation finishes it)")
        since = time.time()
        self.cfn.delete_stack(StackName=stack_id, **({"RoleARN": self.role_arn} if self.role_arn else {}))
        deadline = time.monotonic() + STACK_WAIT_SECONDS
        while True:
            stack = self.describe(stack_id)
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            if status == "DELETE_COMPLETE":
                return
            if status == "DELETE_FAILED":
                raise DeployError(f"{name}: delete failed: {self.failure_reasons(stack_id, since)}")
            if time.monotonic() > deadline:
                raise DlError(f"{name}: delete still running after {STACK_WAIT_SECONDS // 60} minutes")
            self.pause(poll_interval())

    def prepare(self, name: str, project: str | None = None) -> dict | None:
        """The stack ready for a change set: None when it must be created. Refuses another project's stack."""
        stack = self.wait_settled(name)
        if stack is None:
            return None
        status = stack["StackStatus"]
        owner = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}.get(TAG_PROJECT)
        if project and owner != project and (owner is not None or status != "REVIEW_IN_PROGRESS"):
            whose = (
                f"project {owner}" if owner else "something other than datasette-lambda (no dl:project tag)"
            )
            raise DlError(f"{name}: the stack exists and belongs to {whose}: refusing to touch it")
        if status == "REVIEW_IN_PROGRESS":
            self.log(f"{name}: removing a stack left by an interrupted first deploy (REVIEW_IN_PROGRESS)")
            self.delete(stack["StackId"], name)
            return None
        if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"):
            self.log(f"{name}: deleting the stack of a failed first create ({status}) to create it again")
            self.delete(stack["StackId"], name)
            return None
        if status == "UPDATE_ROLLBACK_FAILED":
            raise DlError(
                f"{name}: the stack is in UPDATE_ROLLBACK_FAILED; recover it with `aws cloudformation "
                f"continue-update-rollback --stack-name {name} --region {self.cfn.meta.region_name}` "
                "(skipping resources that cannot roll back if needed), then run `dl apply` again"
            )
        if status == "DELETE_FAILED":
            raise DlError(
                f"{name}: the stack is in DELETE_FAILED; delete it in the console, then apply again"
            )
        return stack

    def remove_stale_change_sets(self, name: str, stack_id: str) -> None:
        """Delete our change sets that an interrupted or failed apply left unexecuted on the stack."""
        token = None
        stale = []
        while True:
            page = self.cfn.list_change_sets(StackName=stack_id, **({"NextToken": token} if token else {}))
            stale += [
                c["ChangeSetId"]
                for c in page.get("Summaries") or []
                if c.get("StackId", stack_id) == stack_id  # moto lists every stack's change sets
                and c["ChangeSetName"].startswith("dl-")
                and c.get("ExecutionStatus") in ("AVAILABLE", "UNAVAILABLE", "OBSOLETE", "EXECUTE_FAILED")
                and c.get("Status") in ("CREATE_COMPLETE", "FAILED")
            ]
            token = page.get("NextToken")
            if not token:
                break
        for change_set_id in stale:
            self.delete_change_set(change_set_id)
        if stale:
            self.log(f"{name}: deleted {len(stale)} change set(s) an earlier apply left unexecuted")

    def delete_change_set(self, change_set_id: str) -> None:
        try:
            self.cfn.delete_change_set(ChangeSetName=change_set_id)
        except botocore.exceptions.ClientError as exc:
            if "ChangeSetNotFound" not in str(exc) and "does not exist" not in str(exc):
                raise

    def find_change_set(self, stack_name: str, change_set_name: str) -> str | None:
        """The id of change set `change_set_name` of the stack, when it exists."""
        try:
            return self.cfn.describe_change_set(StackName=stack_name, ChangeSetName=change_set_name)[
                "ChangeSetId"
            ]
        except botocore.exceptions.ClientError:
            return None

    def executed(self, change_set_id: str) -> bool | None:
        """True when the change set's execution has started (or finished), else None."""
        status = self.cfn.describe_change_set(ChangeSetName=change_set_id).get("ExecutionStatus")
        return True if status not in ("AVAILABLE", "UNAVAILABLE") else None

    def template_argument(self, template: dict) -> dict:
        body = templates.template_json(template)
        if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
            return {"TemplateBody": body}
        if not self.bucket:
            raise DlError(
                "the template is larger than 51,200 bytes and there is no artifact bucket to hold it"
            )
        key = f"{self.key_prefix}templates/{hashlib.sha256(body.encode()).hexdigest()}.json"
        if not self.aws.object_exists(self.bucket, key):
            self.aws.put_object(self.bucket, key, body.encode())
        region = self.aws.region
        return {"TemplateURL": f"https://{self.bucket}.s3.{region}.amazonaws.com/{key}"}

    def deploy(
        self,
        name: str,
        template: dict,
        *,
        tags: dict,
        parameters: dict | None = None,
        capabilities: tuple[str, ...] = ("CAPABILITY_IAM",),
    ) -> tuple[bool, dict]:
        """Create or update stack `name`. Returns (changed?, stack description)."""
        self.checkpoint("interrupted before its stack was changed")
        stack = self.prepare(name, tags.get(TAG_PROJECT))
        kind = "CREATE" if stack is None else "UPDATE"
        change_set_name = f"dl-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        kwargs = {
            "StackName": name,
            "ChangeSetName": change_set_name,
            "ChangeSetType": kind,
            "ClientToken": change_set_name,
            "Capabilities": list(capabilities),
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            **self.template_argument(template),
        }
        if self.role_arn:
            kwargs["RoleARN"] = self.role_arn
        if parameters:
            kwargs["Parameters"] = [
                {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())
            ]
        self.step("creating a change set")
        try:
            change_set_id = once(
                lambda: self.cfn_once.create_change_set(**kwargs)["Id"],
                lambda: self.find_change_set(name, change_set_name),
                what=f"{name}: creating a change set",
                refused_retry=frozenset({"AlreadyExistsException"}),  # its name is unique on the stack
            )
        except botocore.exceptions.ClientError as exc:
            if is_no_change(str(exc)):
                return False, stack
            raise DeployError(f"{name}: change set refused: {explain_client_error(exc)}") from None
        try:
            description = self.wait_change_set(change_set_id)
            self.checkpoint("interrupted after its change set was created; the change set was deleted")
        except Interrupted:
            self.delete_change_set(change_set_id)
            raise
        if description["Status"] == "FAILED":
            self.delete_change_set(change_set_id)
            if is_no_change(description.get("StatusReason")):
                return False, stack
            raise DeployError(f"{name}: change set failed: {description.get('StatusReason')}")
        for line in self.describe_consequences(change_set_id):
            self.log(f"{name}: {line}")
        started = datetime.now(UTC)
        self.step(f"stack {kind} started (CloudFormation continues it if dl stops)")
        once(
            lambda: (
                self.cfn_once.execute_change_set(
                    ChangeSetName=change_set_id, ClientRequestToken=f"{change_set_name}-execute"
                )
                and True
            ),
            lambda: self.executed(change_set_id),
            what=f"{name}: executing the change set",
            refused_retry=frozenset({"InvalidChangeSetStatus", "TokenAlreadyExistsException"}),
        )
        final = self.follow(name, description["StackId"], started)
        if final["StackStatus"] not in TERMINAL_OK:
            reasons = self.failure_reasons(description["StackId"], started.timestamp())
            raise DeployError(f"{name}: {final['StackStatus']}: {reasons}")
        return True, final

    def wait_change_set(self, change_set_id: str) -> dict:
        deadline = time.monotonic() + 15 * 60
        while True:
            description = self.cfn.describe_change_set(ChangeSetName=change_set_id)
            if description["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return description
            if time.monotonic() > deadline:
                raise DlError(f"change set {change_set_id} still {description['Status']} after 15 minutes")
            self.pause(min(poll_interval(), 2.0))

    def describe_consequences(self, change_set_id: str) -> list[str]:
        """Resource-level consequences worth a reviewer's attention: replacements and IAM changes."""
        _, changes = self.aws_change_set(change_set_id)
        return change_set_consequences(changes)

    def aws_change_set(self, change_set_id: str) -> tuple[dict, list[dict]]:
        changes: list[dict] = []
        token = None
        while True:
            kwargs = {"ChangeSetName": change_set_id}
            if token:
                kwargs["NextToken"] = token
            page = self.cfn.describe_change_set(**kwargs)
            changes += page.get("Changes") or []
            token = page.get("NextToken")
            if not token:
                return page, changes

    def follow(self, name: str, stack_id: str, started: datetime) -> dict:
        """Stream the stack's events (resource, status, reason) until it settles; return the stack."""
        seen: set[str] = set()
        deadline = time.monotonic() + STACK_WAIT_SECONDS
        while True:
            for event in reversed(self.cfn.describe_stack_events(StackName=stack_id)["StackEvents"]):
                if event["EventId"] in seen or event["Timestamp"].timestamp() < started.timestamp() - 1:
                    continue
                seen.add(event["EventId"])
                reason = f" ({event['ResourceStatusReason']})" if event.get("ResourceStatusReason") else ""
                self.log(f"{name}: {event['LogicalResourceId']} {event['ResourceStatus']}{reason}")
            stack = self.describe(stack_id)
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            if not status.endswith("_IN_PROGRESS"):
                return stack
            if time.monotonic() > deadline:
                raise DlError(f"{name}: still {status} after {STACK_WAIT_SECONDS // 60} minutes")
            self.pause(poll_interval())

    def failure_reasons(self, stack_id: str, since: float) -> str:
        events = self.cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
        failed = [
            f"{e['LogicalResourceId']} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
            for e in events
            if e["ResourceStatus"].endswith("_FAILED") and e["Timestamp"].timestamp() >= since - 1
        ]
        return "; ".join(reversed(failed)) or "no reason given by CloudFormation"


def change_set_consequences(changes: list[dict]) -> list[str]:
    """Replacements (True/Conditional) and IAM changes from a change set's Changes."""
    lines = []
    for change in changes:
        rc = change.get("ResourceChange") or {}
        rtype, logical = rc.get("ResourceType", ""), rc.get("LogicalResourceId", "")
        if rc.get("Replacement") in ("True", "Conditional"):
            always = rc["Replacement"] == "True"
            lines.append(f"{logical} ({rtype}) will be {'replaced' if always else 'possibly replaced'}")
        if rtype.startswith("AWS::IAM::") or rtype == "AWS::Lambda::Permission":
            lines.append(f"IAM: {logical} ({rtype}) {rc.get('Action', 'Modify').lower()}")
        if rtype == "AWS::CloudFront::Distribution" and rc.get("Action") in ("Add", "Modify"):
            lines.append(
                f"{logical}: CloudFront {'creation' if rc['Action'] == 'Add' else 'update'} takes 5-15 minutes"
            )
    return lines
