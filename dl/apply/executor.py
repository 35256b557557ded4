"""Apply: the only code that writes to AWS. It executes a Plan, instance by instance.

Pipeline position: manifest -> desired state -> observed state -> plan -> **apply** -> render.

Order of work (like Chalice's executor, one small function per step):
1. refuse what the plan may not do (destroys without --allow-destroy, protected instances, stale plans,
   missing secret values, an environment over Lambda's 4 KB) before anything is written;
2. the bootstrap stack (bucket, execution role, boundary, shared CloudFront; dl/aws/bootstrap.py), created or
   upgraded when missing or older and the caller may (the CI roles may not: they are told to run
   `dl bootstrap`); every instance and certificate change set then runs as its execution role (``RoleARN``);
3. per instance, in parallel (bounded): artifacts uploaded under content-addressed keys (skipped when present),
   the stack brought to its template through a change set (created, described, executed, events streamed),
   CloudFront invalidated when content changed; destroys delete the stack and its unshared artifacts;
   a domain's certificate stack (us-east-1, one per domain) is brought up before the instance stack that uses it;
4. the orphaned certificate stacks of the plan, once every instance has moved off them: ACM refuses to delete
   a certificate a distribution uses (``ResourceInUseException``, a marker that lags for minutes after the
   distribution let go), so a refused deletion is retried with backoff for a bounded time
   (``DL_CERTIFICATE_RELEASE_SECONDS``, default 20 minutes), then left for the next apply, which is reported,
   not failed;
5. a summary of what succeeded and what failed (with the failing resource's reason). CloudFormation rolls a
   failed update back, so the previous deployment keeps serving.

Faults and interruptions (tests/reliability): reads and idempotent writes rely on botocore's retries; the two
non-idempotent writes (CreateChangeSet, ExecuteChangeSet) are sent once per attempt and, after a throttle, a
5xx, a reset or a timeout, CloudFormation is asked whether the request took effect before it is sent again
(:func:`once`), with the same client token (ClientToken, ClientRequestToken) so AWS recognises a retry of a
request that was still in flight. Change sets left behind by an interrupted apply are deleted by the next one.
Ctrl-C sets a flag the workers check between steps; :class:`ApplyInterrupted` says which instances were done,
in progress and not started.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.exceptions

from dl import __version__
from dl.aws import bootstrap, hosts, names, templates
from dl.aws import secrets as dl_secrets
from dl.aws.client import TERMINAL_OK, Aws, explain_client_error, is_no_change, is_transient
from dl.aws.names import PREVIEW_KEY_OBJECT, artifact_prefix
from dl.aws.observed import ObservedState, observe, observe_scopes
from dl.build.desired import DesiredInstance, spec_digest
from dl.errors import DlError
from dl.manifest.model import Manifest
from dl.manifest.tags import (
    TAG_COMMIT,
    TAG_DEPLOYED_AT,
    TAG_DOMAIN,
    TAG_INSTANCE,
    TAG_PREVIEW,
    TAG_PROJECT,
    TAG_ROLE,
    TAG_SPEC,
    TAG_TOOL,
)
from dl.plan.model import Action, CertificateRemoval, InstancePlan, Plan

TEMPLATE_BODY_LIMIT = 51_200  # bytes; larger templates go through S3 (TemplateURL)
STACK_WAIT_SECONDS = 60 * 60  # CloudFront can take a while; a stack is never waited on longer than this
Log = Callable[[str], None]


def poll_interval() -> float:
    return float(os.environ.get("DL_POLL_SECONDS", "5"))


WRITE_ATTEMPTS = 8  # attempts of a non-idempotent write (each after checking the previous one did not land)
INTERRUPT_GRACE_SECONDS = 20.0  # how long Ctrl-C waits for the workers to reach a safe point


class DeployError(DlError):
    """A stack did not reach its template; carries the failing resources' reasons."""


class Interrupted(DlError):
    """Raised in a worker at its next safe point after Ctrl-C; the message says where it stopped."""


class ApplyInterrupted(DlError):
    """Ctrl-C during apply: the message lists what was done, in progress and not started."""


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


@dataclass(frozen=True)
class Outcome:
    name: str
    action: Action
    ok: bool
    message: str = ""
    url: str | None = None
    changed: bool = False  # whether anything was written for this instance


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)  # what became of each orphaned certificate stack

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


# --- refusals (before any write) -------------------------------------------------------------------------


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
            **{names.secret_parameter(k): v for k, v in values.items()},
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


# --- stacks --------------------------------------------------------------------------------------------


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
        try:
            raw = self.cfn.describe_stacks(StackName=name)["Stacks"]
        except botocore.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise DlError(f"cannot describe stack {name}: {explain_client_error(exc)}") from None
        live = [s for s in raw if s["StackStatus"] != "DELETE_COMPLETE"]
        return live[0] if live else None

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
        import hashlib

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


# --- the executor ----------------------------------------------------------------------------------------


class Executor:
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

    def preview_bootstrap(self, observed: ObservedState) -> bootstrap.Deployed:
        """Previews use production's bootstrap and never change it: its bucket, and the preview execution role
        CloudFormation acts as for every preview stack."""
        if not observed.bucket or (observed.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
            raise DlError(
                f"project {self.manifest.project} has no current bootstrap in {self.aws.region}: previews use "
                "production's; deploy production once (`dl apply`) first, or run `dl bootstrap`"
            )
        self.role_arn = self.preview_role_arn(observed)
        return bootstrap.Deployed(names.BOOTSTRAP_VERSION, observed.bucket, self.role_arn)

    def preview_role_arn(self, observed: ObservedState) -> str | None:
        if observed.bootstrap is None or (observed.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
            return None
        return names.preview_execution_role_arn(
            observed.bootstrap.stack_id, self.manifest.project, self.aws.region
        )

    def ensure_bootstrap(self, observed: ObservedState, *, force: bool = False) -> bootstrap.Deployed:
        """The project's bootstrap at the current version: created or upgraded when missing or older (or,
        with ``force``, brought to its template whatever it is: `dl bootstrap`). The caller's credentials
        deploy it; the CI roles may not, and are told to run `dl bootstrap`."""
        project, region = self.manifest.project, self.aws.region
        name = names.bootstrap_stack_name(project)
        if self.preview is not None:
            return self.preview_bootstrap(observed)
        current = observed.bucket and (observed.bootstrap_version or 0) >= names.BOOTSTRAP_VERSION
        if current and not force:
            self.role_arn = observed.execution_role_arn()
            return bootstrap.Deployed(names.BOOTSTRAP_VERSION, observed.bucket, self.role_arn)
        if observed.bootstrap is None or not observed.bucket:
            what = "creating"
        elif (observed.bootstrap_version or 0) < names.BOOTSTRAP_VERSION:
            what = f"upgrading (version {observed.bootstrap_version} to {names.BOOTSTRAP_VERSION})"
        else:
            what = "updating"
        self.log(
            f"bootstrap: {what} the bootstrap stack {name} (bucket, execution role, boundary, CloudFront)"
        )
        try:
            self.deployer("bootstrap", as_caller=True).deploy(
                name,
                bootstrap.bootstrap_template(project),
                tags=self.base_tags("bootstrap"),
                capabilities=("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"),
            )
        except (DlError, botocore.exceptions.ClientError) as exc:
            if bootstrap.is_access_denied(exc):
                detail = (
                    explain_client_error(exc) if isinstance(exc, botocore.exceptions.ClientError) else exc
                )
                raise DlError(
                    bootstrap.denied_message(project, region, what.split(" ")[0], str(detail))
                ) from None
            raise
        bucket = self.aws.stack_resource(name, "ArtifactBucket")
        stack = self.aws.stack(name)
        if not bucket or stack is None:
            raise DlError(f"{name}: deployed, but its bucket cannot be found")
        self.role_arn = names.execution_role_arn(stack.stack_id, project, region)
        return bootstrap.Deployed(names.BOOTSTRAP_VERSION, bucket, self.role_arn)

    def upload_artifacts(self, bucket: str, desired: DesiredInstance) -> int:
        """Upload the package and databases that are not in the bucket yet. Returns bytes uploaded."""
        spec = desired.spec
        uploads = [(desired.package_path, spec["package"]["key"], spec["package"]["size"])]
        sources = {d.name: d.source for d in desired.package.databases}
        uploads += [(sources[db["name"]], db["key"], db["size"]) for db in spec["databases"]]
        sent = 0
        for path, key, size in uploads:
            if self.cancel.is_set():
                raise Interrupted("interrupted while uploading artifacts (finished uploads are kept)")
            if self.aws.object_exists(bucket, key):
                continue
            self.step(desired.name, "uploading artifacts")
            self.log(f"{desired.name}: uploading {Path(path).name} ({size:,} bytes) to s3://{bucket}/{key}")
            self.aws.upload_file(Path(path), bucket, key, progress=self._progress(desired.name, size))
            sent += size
        return sent

    def _progress(self, name: str, total: int):
        if total < 32 * 2**20 or not sys.stderr.isatty():
            return None
        state = {"done": 0, "shown": -1}

        def callback(n: int) -> None:
            state["done"] += n
            pct = int(state["done"] * 100 / total)
            if pct // 10 != state["shown"]:
                state["shown"] = pct // 10
                with self._print_lock:
                    print(f"{name}: upload {pct}%", file=sys.stderr)

        return callback

    def certificate(self, desired: DesiredInstance) -> tuple[str | None, str | None]:
        """(certificate ARN, hosted zone id) for an instance with a domain."""
        instance = desired.instance
        if not instance.domain:
            return None, None
        zone = self.aws.hosted_zone_for(instance.domain)
        if instance.certificate_arn:
            return instance.certificate_arn, zone
        if zone is None:
            raise DlError(
                f"{instance.name}: no Route 53 hosted zone holds {instance.domain}; add one, or set "
                "certificate_arn to an ACM certificate (us-east-1) for the domain"
            )
        # one stack per domain, whichever instance has it: a domain that moves keeps its certificate
        name = names.certificate_stack_name(self.manifest.project, instance.domain)
        deployer = self.deployer(instance.name, cfn_region=names.CERTIFICATE_REGION)
        tags = {**self.base_tags("certificate"), TAG_DOMAIN: instance.domain}
        _, stack = deployer.deploy(
            name, templates.certificate_template(self.manifest.project, instance, zone), tags=tags
        )
        outputs = {o["OutputKey"]: o.get("OutputValue") for o in (stack or {}).get("Outputs") or []}
        return outputs.get("CertificateArn"), zone

    def deploy_instance(
        self, plan: InstancePlan, desired: DesiredInstance, bucket: str, secrets: dict
    ) -> Outcome:
        instance = desired.instance
        self.upload_artifacts(bucket, desired)
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
        previous = self.previous_deployment(name, plan)
        changed, stack = deployer.deploy(name, template, tags=tags, parameters=parameters)
        outputs = {o["OutputKey"]: o.get("OutputValue") for o in (stack or {}).get("Outputs") or []}
        distribution = outputs.get("DistributionId")
        host = None
        if distribution and distribution != "None":  # the emulator has no CloudFront: "None"
            host = hosts.record(self.aws, bucket, instance.name, distribution, self.preview)
        if instance.domain and zone is None:
            self.log(f"{instance.name}: {dns_record_advice(instance.domain, distribution, host)}")
        if changed and plan.action is Action.UPDATE and outputs.get("DistributionId"):
            self.invalidate(instance, outputs["DistributionId"], plan)
        url = None
        if changed and self.verify:
            url = self.check(name, spec, previous, deployer, parameters, bucket, external_dns=zone is None)
        return Outcome(instance.name, plan.action, True, "applied" if changed else "no changes", url, changed)

    def previous_deployment(self, name: str, plan: InstancePlan) -> tuple[dict, dict] | None:
        """(template, tags) of what is deployed now, kept to re-deploy when verification fails."""
        if not (self.rollback_on_failure and plan.action is Action.UPDATE):
            return None
        import json

        body = self.aws.cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
        stack = self.aws.stack(name)
        return (json.loads(body) if isinstance(body, str) else body), dict(stack.tags if stack else {})

    def check(
        self,
        name: str,
        spec: dict,
        previous,
        deployer: StackDeployer,
        parameters: dict,
        bucket: str,
        *,
        external_dns: bool = False,
    ) -> str | None:
        """Verify the deployed instance over HTTP; on failure re-deploy `previous` when asked to. Returns the URL.

        A custom domain whose DNS is not in Route 53 (``external_dns``: the user creates its record, maybe
        only after this apply) is checked through the distribution's own ``*.cloudfront.net`` host, which
        serves the same distribution whatever the domain's DNS says."""
        from urllib.parse import urlsplit

        from dl.apply import verify
        from dl.ops import status

        stack = self.aws.stack(name)
        url = status.public_url(self.aws, stack, spec, bucket) if stack else None
        target = url
        if stack and url and spec.get("domain") and external_dns:
            target = status.distribution_url(self.aws, stack, spec, bucket)
            if target:
                self.log(
                    f"{spec['instance']}: verifying through the distribution's own host {target}: "
                    f"{spec['domain']} is not in Route 53, so it is not checked until its DNS record exists"
                )
        if not target:
            self.log(f"{spec['instance']}: not verified: AWS reports no public URL for it (an emulator?)")
            return None
        parts = urlsplit(target)
        inspections = {
            d["name"]: {"tables": {t: {"count": v.get("rows")} for t, v in d.get("tables", {}).items()}}
            for d in spec["databases"]
        }
        expectation = verify.expectation_for(
            f"{parts.scheme}://{parts.netloc}",
            spec["prefix"],
            spec["versions"].get("datasette", ""),
            inspections,
        )
        result = verify.verify_instance(
            expectation, timeout=float(os.environ.get("DL_VERIFY_SECONDS", "120"))
        )
        if result.ok:
            self.log(f"{spec['instance']}: verified {target}")
            return url
        if previous is not None:
            self.log(f"{spec['instance']}: verification failed; re-deploying the previous spec")
            template, tags = previous
            declared = template.get("Parameters") or {}  # secrets may have been added or removed since
            kept = {k: v for k, v in parameters.items() if k in declared}
            deployer.deploy(name, template, tags=tags, parameters=kept)
            raise DeployError(f"{result.message()}\nrolled back to the previous deployment")
        raise DeployError(result.message())

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
        self.delete_unshared_artifacts(plan.name, observed)
        hosts.forget(self.aws, observed.bucket, plan.name, self.preview)
        return Outcome(plan.name, Action.DESTROY, True, "destroyed", changed=True)

    def delete_unshared_artifacts(self, name: str, observed: ObservedState) -> None:
        if not observed.bucket:
            return
        gone = observed.instances.get(name)
        if gone is None or gone.spec is None:
            return
        mine = artifact_keys(gone.spec)
        others = set(self.keep_keys)  # what instances deployed by this very apply use (a rename, a move)
        others |= self.foreign_keys  # production's and the other pull requests' previews'
        for other, inst in observed.instances.items():
            if other != name and inst.spec is not None:
                others |= artifact_keys(inst.spec)
        unshared = sorted(mine - others)
        if unshared:
            self.aws.delete_objects(observed.bucket, unshared)
            self.log(
                f"{name}: deleted {len(unshared)} artifact{'s' if len(unshared) != 1 else ''} no other instance uses"
            )

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
            self.foreign_keys = self.referenced_elsewhere()
        pool = ThreadPoolExecutor(max_workers=max(1, self.parallelism))
        futures = []
        taken = None  # a lock this call took (the caller's own lock is the caller's to release)
        try:
            if any(i.action is not Action.DESTROY for i in work):
                bucket = self.ensure_bootstrap(observed).bucket
            else:  # destroys only: whatever bootstrap there is (an older one has no execution role)
                bucket, self.role_arn = observed.bucket, observed.execution_role_arn()
                if self.preview is not None and not self.as_production:
                    self.role_arn = self.preview_role_arn(observed)  # what the CI preview role may pass
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
            self.warn_near_quotas(work, desired, observed)
            futures = self.submit_in_order(pool, work, desired, bucket, secrets, observed)
            result.outcomes = [f.result() for f in futures]
            result.certificates = self.remove_certificates(plan.certificates, result.outcomes, observed)
            if bucket and result.ok and self.lock is not None and self.lock.held:
                self.collect_garbage(bucket)  # only under the lock: a concurrent apply may reuse artifacts
        except (KeyboardInterrupt, Interrupted):
            self.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            wait(futures, timeout=INTERRUPT_GRACE_SECONDS)  # workers stop at their next safe point
            raise ApplyInterrupted(self.interruption_report(futures)) from None
        finally:
            pool.shutdown(wait=False)
            if taken is not None:
                taken.release()
        return result

    def warn_near_quotas(self, work: list[InstancePlan], desired: dict, observed: ObservedState) -> None:
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
            counts = quotas.cloudfront_counts(self.aws.client("cloudfront", "us-east-1"))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.log(f"warning: CloudFront quotas not checked: {explain_client_error(exc)}")
            return
        for line in quotas.warnings(counts, adding):
            self.log(line)

    def submit_in_order(self, pool, work, desired, bucket, secrets, observed) -> list:
        """Submit every instance; one that claims a domain another instance releases waits for that release to
        finish (:func:`dl.plan.domains.domain_handovers`), the others start at once. Releasers are submitted first, so
        a waiting claimer never holds the pool's threads from the work it waits for. Futures in plan order."""
        waits = handover_waits(work, desired, observed)
        releasers = {r for releases in waits.values() for r in releases.values()}
        pending = sorted(work, key=lambda i: (i.name in waits, i.name not in releasers))  # releasers first
        futures: dict[str, object] = {}
        while pending:  # topological: an instance after every instance it waits for (swaps were refused)
            item = next(i for i in pending if all(r in futures for r in waits.get(i.name, {}).values()))
            pending.remove(item)
            before = [(futures[r], r, d) for d, r in waits.get(item.name, {}).items()]
            futures[item.name] = pool.submit(self.run_after, before, item, desired, bucket, secrets, observed)
        return [futures[i.name] for i in work]

    def remove_certificates(
        self, removals: tuple[CertificateRemoval, ...], outcomes: list[Outcome], observed: ObservedState
    ) -> list[str]:
        """Delete the orphaned certificate stacks (in parallel: each may wait out ACM's lagging in-use marker),
        after the instances moved off them. A stack whose user failed to move (its instance stack kept the
        certificate) is kept for the next apply."""
        if not removals:
            return []
        failed = {o.name for o in outcomes if not o.ok}
        with ThreadPoolExecutor(max_workers=max(1, self.parallelism)) as pool:
            return list(pool.map(lambda r: self.remove_certificate(r, failed, observed), removals))

    def remove_certificate(
        self, removal: CertificateRemoval, failed: set[str], observed: ObservedState
    ) -> str:
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
            if self.cancel.is_set():
                raise Interrupted("interrupted before removing orphaned certificate stacks")
            deployer = self.deployer(removal.stack_name, cfn_region=names.CERTIFICATE_REGION)
            line = release_certificate_stack(deployer, removal, self.log)
        self.log(line)
        return line

    def run_after(self, before, plan: InstancePlan, desired, bucket, secrets, observed) -> Outcome:
        for future, releaser, domain in before:
            outcome = future.result()
            if not outcome.ok:
                return Outcome(
                    plan.name, plan.action, False, f"not started: {releaser} did not release {domain}"
                )
            self.log(f"{plan.name}: {releaser} released {domain}; claiming it now")
        return self.run_one(plan, desired, bucket, secrets, observed)

    def take_lock(self, bucket: str):
        from dl.apply.lock import ProjectLock
        from dl.aws.names import lock_key

        lock = ProjectLock(
            self.aws,
            bucket,
            operation=self.operation,
            commit=self.commit,
            log=self.log,
            key=lock_key(self.preview),
        )
        lock.acquire(self.lock_timeout)
        return lock

    def interruption_report(self, futures) -> str:
        """What Ctrl-C left: instances done, in progress (and where), not started; how to converge."""
        done, running, waiting = [], [], []
        outcomes = {f.result().name: f.result() for f in futures if f.done() and not f.cancelled()}
        for name, state in self.progress.items():
            outcome = outcomes.get(name)
            if state == "done" or (outcome is not None and outcome.ok):
                done.append(name)
            elif state == "not started":
                waiting.append(name)
            else:
                running.append(f"{name} ({state})")
        lines = ["Interrupted: the apply stopped early."]
        lines.append(f"  done: {', '.join(done) or 'none'}")
        lines.append(f"  in progress: {', '.join(running) or 'none'}")
        lines.append(f"  not started: {', '.join(waiting) or 'none'}")
        if any("CloudFormation" in r for r in running):
            lines.append(
                "A CloudFormation operation that had started continues on AWS; `dl apply` waits for it."
            )
        lines.append(
            "Nothing is lost: run `dl apply` again to finish (it converges from any of these states)."
        )
        return "\n".join(lines)

    def referenced_elsewhere(self) -> set[str]:
        """Artifact keys the stacks of every other scope reference (production's, other pull requests')."""
        scopes = observe_scopes(self.aws, self.manifest.project, parallelism=self.parallelism)
        keys: set[str] = set()
        for number, observed in scopes.items():
            if number != self.preview:
                for inst in observed.instances.values():
                    keys |= artifact_keys(inst.spec or {})
        return keys

    def collect_garbage(self, bucket: str) -> None:
        """Delete artifacts no stack of the project references any more, once they are older than the grace
        period (so a concurrent apply's fresh uploads are never taken). The bucket is versioned: the bytes stay
        recoverable until its lifecycle rule expires them. Previews count (their stacks' keys are
        referenced too); each scope collects under its own prefix only (a preview's: previews/)."""
        grace = timedelta(hours=float(os.environ.get("DL_ARTIFACT_GRACE_HOURS", "24")))
        scopes = observe_scopes(self.aws, self.manifest.project, parallelism=self.parallelism)
        referenced: set[str] = set()
        for number, observed in scopes.items():
            for inst in observed.instances.values():
                unsettled = inst.spec is None or inst.stack.status.endswith("_IN_PROGRESS")
                if unsettled and (number is None) == (self.preview is None):
                    return  # keys unknown, or a rollback may still need the old ones: delete nothing
                referenced |= artifact_keys(inst.spec or {})  # (another scope's keys: another prefix)
        cutoff = datetime.now(UTC) - grace
        root = artifact_prefix(self.preview)
        stale = [
            obj["Key"]
            for prefix in ("packages/", "databases/", "templates/")
            for obj in self.aws.list_objects(bucket, root + prefix)
            if obj["Key"] not in referenced and obj["LastModified"] <= cutoff
        ]
        if stale:
            self.aws.delete_objects(bucket, stale)
            self.log(f"artifacts: deleted {len(stale)} no stack references any more (kept as old versions)")


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
    from dl.plan.domains import domain_handovers

    names = [i.name for i in work]
    specs = {n: d.spec for n, d in desired.items()}
    waits: dict[str, dict[str, str]] = {}
    for h in domain_handovers(specs, observed, names):
        waits.setdefault(h.claimer, {})[h.domain] = h.releaser
    placed = {n for n in names if n not in waits}
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


def dns_record_advice(domain: str, distribution_id: str | None, host: str | None) -> str:
    """The DNS record a user must create for a domain no Route 53 zone holds (with the real target when known)."""
    target = host or (
        f"the domain name of CloudFront distribution {distribution_id or '(see the stack outputs)'}"
    )
    return f"no Route 53 zone holds {domain}: create the DNS record {domain} CNAME {target} (or an ALIAS at an apex)"


def artifact_keys(spec: dict) -> set[str]:
    keys = {d["key"] for d in spec.get("databases", [])}
    if spec.get("package", {}).get("key"):
        keys.add(spec["package"]["key"])
    return keys


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
    handover_waits([i for i in plan.instances if i.action is not Action.NOOP], desired, observed)  # swaps
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
