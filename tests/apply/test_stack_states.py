"""Stack states moto cannot produce, driven through botocore's Stubber with response shapes from the
CloudFormation API reference (DescribeStacks, CreateChangeSet, DescribeChangeSet, DescribeStackEvents).

moto cannot show: an empty change set reported as FAILED (either wording), ROLLBACK_COMPLETE after a failed
create, UPDATE_ROLLBACK_FAILED, an update that fails and rolls back with a resource's reason, a stack busy
with another operation, or change-set Changes with Replacement/Details.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY, Stubber

from dl.apply.stacks import DeployError, StackDeployer, change_set_consequences
from dl.aws.client import Aws, is_no_change
from dl.errors import DlError

STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/p-a/1c2fa620-c6e4-11e5-a7c7-50d501eed2b3"
CS_ID = "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/dl-1/9edc39b0-c6e4-11e5-a7c7-50d501eed2b3"
NOW = datetime.now(UTC)


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setenv("DL_POLL_SECONDS", "0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws = Aws("eu-west-1")
    lines: list[str] = []
    deployer = StackDeployer(aws, lines.append)
    deployer.cfn_once = deployer.cfn  # the single-attempt client of non-idempotent writes, stubbed alike
    with Stubber(deployer.cfn) as stub:
        yield deployer, stub, lines
        stub.assert_no_pending_responses()


def stack(status: str, reason: str | None = None) -> dict:
    s = {
        "StackId": STACK_ID,
        "StackName": "p-a",
        "CreationTime": NOW - timedelta(days=1),
        "StackStatus": status,
    }
    if reason:
        s["StackStatusReason"] = reason
    return {"Stacks": [s]}


def missing(stub):
    stub.add_client_error(
        "describe_stacks",
        "ValidationError",
        "Stack with id p-a does not exist",
        400,
        expected_params={"StackName": ANY},
    )


def change_set(status: str, reason: str | None = None, changes=None, token=None) -> dict:
    out = {
        "ChangeSetId": CS_ID,
        "ChangeSetName": "dl-1",
        "StackId": STACK_ID,
        "StackName": "p-a",
        "ExecutionStatus": "AVAILABLE" if status == "CREATE_COMPLETE" else "UNAVAILABLE",
        "Status": status,
        "Changes": changes or [],
    }
    if reason:
        out["StatusReason"] = reason
    if token:
        out["NextToken"] = token
    return out


def event(logical: str, status: str, reason: str | None = None, n: int = 0) -> dict:
    e = {
        "StackId": STACK_ID,
        "EventId": f"{logical}-{status}-{n}",
        "StackName": "p-a",
        "LogicalResourceId": logical,
        "Timestamp": datetime.now(UTC) + timedelta(seconds=5 + n),  # after the execution starts
        "ResourceStatus": status,
    }
    if reason:
        e["ResourceStatusReason"] = reason
    return e


TEMPLATE = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}


@pytest.mark.parametrize(
    "reason",
    [
        "The submitted information didn't contain changes. Submit different information to create a change set.",
        "No updates are to be performed.",
    ],
)
def test_an_empty_change_set_is_no_change_whatever_its_wording(stubbed, reason):
    deployer, stub, _ = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-a"})
    stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, None)
    stub.add_response("describe_change_set", change_set("FAILED", reason), {"ChangeSetName": CS_ID})
    stub.add_response("delete_change_set", {}, {"ChangeSetName": CS_ID})
    changed, _ = deployer.deploy("p-a", TEMPLATE, tags={})
    assert changed is False


def test_no_change_detection_is_exact():
    assert is_no_change("No updates are to be performed.")
    assert is_no_change("The submitted information didn't contain changes. Submit different information")
    assert not is_no_change("Template format error: Unresolved resource dependencies [X]")
    assert not is_no_change(None)


def test_a_failed_change_set_with_another_reason_is_an_error(stubbed):
    deployer, stub, _ = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-a"})
    stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, None)
    stub.add_response(
        "describe_change_set",
        change_set("FAILED", "Template error: instance of Fn::GetAtt references undefined resource X"),
    )
    stub.add_response("delete_change_set", {}, {"ChangeSetName": CS_ID})
    with pytest.raises(DeployError, match="references undefined resource X"):
        deployer.deploy("p-a", TEMPLATE, tags={})


def successful_execution(stub, final: str = "CREATE_COMPLETE"):
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"), {"ChangeSetName": CS_ID})
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"), {"ChangeSetName": CS_ID})
    stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ID, "ClientRequestToken": ANY})
    stub.add_response(
        "describe_stack_events", {"StackEvents": [event("Topic", final.replace("COMPLETE", "IN_PROGRESS"))]}
    )
    stub.add_response("describe_stacks", stack(final))


def test_rollback_complete_after_a_failed_create_is_deleted_and_created_again(stubbed):
    deployer, stub, lines = stubbed
    stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": "p-a"})
    stub.add_response("delete_stack", {}, {"StackName": STACK_ID})
    stub.add_response("describe_stacks", stack("DELETE_COMPLETE"), {"StackName": STACK_ID})
    stub.add_response(
        "create_change_set",
        {"Id": CS_ID, "StackId": STACK_ID},
        {
            "StackName": "p-a",
            "ChangeSetName": ANY,
            "ClientToken": ANY,
            "ChangeSetType": "CREATE",
            "Capabilities": ["CAPABILITY_IAM"],
            "Tags": [],
            "TemplateBody": ANY,
        },
    )
    successful_execution(stub)
    changed, final = deployer.deploy("p-a", TEMPLATE, tags={})
    assert changed and final["StackStatus"] == "CREATE_COMPLETE"
    assert any("failed first create (ROLLBACK_COMPLETE)" in line for line in lines)


def test_review_in_progress_left_by_an_interrupted_run_is_cleaned_up(stubbed):
    deployer, stub, lines = stubbed
    stub.add_response("describe_stacks", stack("REVIEW_IN_PROGRESS"), {"StackName": "p-a"})
    stub.add_response("delete_stack", {}, {"StackName": STACK_ID})
    missing(stub)
    stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, None)
    successful_execution(stub)
    changed, _ = deployer.deploy("p-a", TEMPLATE, tags={})
    assert changed
    assert any("interrupted first deploy" in line for line in lines)


def test_update_rollback_failed_stops_with_the_exact_recovery_step(stubbed):
    deployer, stub, _ = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_FAILED"), {"StackName": "p-a"})
    with pytest.raises(DlError) as err:
        deployer.deploy("p-a", TEMPLATE, tags={})
    assert "aws cloudformation continue-update-rollback --stack-name p-a --region eu-west-1" in str(err.value)


def test_a_stack_busy_with_another_operation_is_waited_for(stubbed):
    deployer, stub, lines = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": "p-a"})
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), {"StackName": "p-a"})
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-a"})
    stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, None)
    successful_execution(stub, "UPDATE_COMPLETE")
    changed, _ = deployer.deploy("p-a", TEMPLATE, tags={})
    assert changed
    assert "p-a: waiting for an operation already in progress (UPDATE_IN_PROGRESS)" in lines


def test_a_failed_update_reports_the_failing_resource_and_its_reason(stubbed):
    deployer, stub, lines = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-a"})
    stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, None)
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"))
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"))
    stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ID, "ClientRequestToken": ANY})
    failed = event(
        "Function",
        "UPDATE_FAILED",
        'Resource handler returned message: "Error occurred while GetObject. S3 Error Code: NoSuchKey"',
        1,
    )
    stub.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                event("p-a", "UPDATE_ROLLBACK_COMPLETE", n=3),
                failed,
                event("Function", "UPDATE_IN_PROGRESS"),
            ]
        },
    )
    stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"))
    stub.add_response("describe_stack_events", {"StackEvents": [failed]})
    with pytest.raises(DeployError) as err:
        deployer.deploy("p-a", TEMPLATE, tags={})
    assert "UPDATE_ROLLBACK_COMPLETE" in str(err.value)
    assert "Function UPDATE_FAILED: Resource handler returned message" in str(err.value)
    assert any("Function UPDATE_FAILED" in line for line in lines)  # streamed as progress too


def test_change_set_pages_and_consequences(stubbed):
    deployer, stub, _ = stubbed
    first = [
        {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Modify",
                "LogicalResourceId": "Certificate",
                "ResourceType": "AWS::CertificateManager::Certificate",
                "Replacement": "True",
                "Details": [
                    {
                        "Target": {
                            "Attribute": "Properties",
                            "Name": "DomainName",
                            "RequiresRecreation": "Always",
                        }
                    }
                ],
            },
        }
    ]
    second = [
        {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Modify",
                "LogicalResourceId": "FunctionRole",
                "ResourceType": "AWS::IAM::Role",
                "Replacement": "False",
            },
        },
        {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Modify",
                "LogicalResourceId": "Distribution",
                "ResourceType": "AWS::CloudFront::Distribution",
                "Replacement": "Conditional",
            },
        },
    ]
    stub.add_response(
        "describe_change_set",
        change_set("CREATE_COMPLETE", changes=first, token="t2"),
        {"ChangeSetName": CS_ID},
    )
    stub.add_response(
        "describe_change_set",
        change_set("CREATE_COMPLETE", changes=second),
        {"ChangeSetName": CS_ID, "NextToken": "t2"},
    )
    lines = deployer.describe_consequences(CS_ID)
    assert lines == [
        "Certificate (AWS::CertificateManager::Certificate) will be replaced",
        "IAM: FunctionRole (AWS::IAM::Role) modify",
        "Distribution (AWS::CloudFront::Distribution) will be possibly replaced",
        "Distribution: CloudFront update takes 5-15 minutes",
    ]
    assert change_set_consequences([]) == []


def test_a_retried_create_change_set_refused_because_the_first_landed_late_goes_on(stubbed):
    """The first CreateChangeSet times out (503 here) while still being handled: the check finds no change
    set yet, and the retry (same name and ClientToken) is refused with AlreadyExistsException (a change set
    name is unique among the stack's change sets). That change set is the one dl made: the deploy goes on."""
    deployer, stub, _ = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-a"})
    stub.add_client_error("create_change_set", "ServiceUnavailable", "Service is unavailable.", 503)
    stub.add_client_error("describe_change_set", "ChangeSetNotFound", "ChangeSet [dl-1] does not exist", 404)
    stub.add_client_error("create_change_set", "AlreadyExistsException", "ChangeSet dl-1 already exists", 400)
    stub.add_response(
        "describe_change_set", change_set("CREATE_COMPLETE"), {"StackName": "p-a", "ChangeSetName": ANY}
    )
    successful_execution(stub, "UPDATE_COMPLETE")
    changed, final = deployer.deploy("p-a", TEMPLATE, tags={})
    assert changed and final["StackStatus"] == "UPDATE_COMPLETE"


def test_a_retried_execute_refused_because_the_first_started_late_goes_on(stubbed):
    """The first ExecuteChangeSet fails transiently while AWS still starts it: the check sees AVAILABLE, the
    retry (same ClientRequestToken) is refused with InvalidChangeSetStatus; the change set is executing, so
    dl follows the stack instead of reporting a failure."""
    deployer, stub, _ = stubbed
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-a"})
    stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, None)
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"), {"ChangeSetName": CS_ID})
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"), {"ChangeSetName": CS_ID})
    stub.add_client_error("execute_change_set", "InternalFailure", "The request processing has failed.", 500)
    stub.add_response("describe_change_set", change_set("CREATE_COMPLETE"), {"ChangeSetName": CS_ID})
    stub.add_client_error(
        "execute_change_set",
        "InvalidChangeSetStatus",
        "ChangeSet [dl-1] cannot be executed in its current execution status of [EXECUTE_IN_PROGRESS]",
        400,
        expected_params={"ChangeSetName": CS_ID, "ClientRequestToken": ANY},
    )
    stub.add_response(
        "describe_change_set",
        {**change_set("CREATE_COMPLETE"), "ExecutionStatus": "EXECUTE_IN_PROGRESS"},
        {"ChangeSetName": CS_ID},
    )
    stub.add_response("describe_stack_events", {"StackEvents": [event("Topic", "UPDATE_IN_PROGRESS")]})
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"))
    changed, final = deployer.deploy("p-a", TEMPLATE, tags={})
    assert changed and final["StackStatus"] == "UPDATE_COMPLETE"
