"""The tests' emulator refuses what AWS would: a template with a null or a cfn-lint finding is answered with
a ValidationError (so the command that sent it fails) and recorded (so the test that sent it fails).

These tests send such templates on purpose and take the findings from the ``template_gate`` log, which keeps
them from failing the test itself (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import boto3
import botocore.exceptions
import pytest

from dl.errors import DlError
from dl.local.sandbox import emulator_hook
from tests.support.template_gate import null_paths

CLEAN = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}},
}


def with_null() -> dict:
    return {**CLEAN, "Metadata": {"DatasetteLambda": {"spec": {"domain": None}}}}


def with_warning() -> dict:
    """W2001: a parameter nothing uses (cfn-lint warns; CloudFormation itself would accept it)."""
    return {**CLEAN, "Parameters": {"Unused": {"Type": "String"}}}


def refused(call) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationError"
    return error["Message"]


def test_a_null_in_metadata_is_refused_like_cloudformation_does(aws, template_gate):
    cfn = boto3.client("cloudformation")
    message = refused(lambda: cfn.create_stack(StackName="s", TemplateBody=json.dumps(with_null())))
    assert message == (
        "Template format error: [/Metadata/DatasetteLambda/spec/domain] 'null' values are not allowed in templates"
    )
    [finding] = template_gate.new()
    assert (finding["action"], finding["stack"], finding["region"]) == ("CreateStack", "s", "eu-west-1")
    assert cfn.list_stacks()["StackSummaries"] == []  # nothing was created


def test_a_cfn_lint_warning_is_refused_on_a_change_set_and_an_update(aws, template_gate):
    cfn = boto3.client("cloudformation")
    message = refused(
        lambda: cfn.create_change_set(
            StackName="s", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=json.dumps(with_warning())
        )
    )
    assert message.startswith("Template format error: cfn-lint W2001 Parameters/Unused:")
    cfn.create_stack(StackName="s", TemplateBody=json.dumps(CLEAN))  # a clean one passes
    refused(lambda: cfn.update_stack(StackName="s", TemplateBody=json.dumps(with_null())))
    assert [f["action"] for f in template_gate.new()] == ["CreateChangeSet", "UpdateStack"]


def test_a_template_url_is_read_from_the_emulators_s3_and_checked(aws, template_gate):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="gate-templates", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="gate-templates", Key="t.json", Body=json.dumps(with_null()).encode())
    cfn = boto3.client("cloudformation")
    url = "https://gate-templates.s3.eu-west-1.amazonaws.com/t.json"
    message = refused(
        lambda: cfn.create_change_set(
            StackName="s", ChangeSetName="c", ChangeSetType="CREATE", TemplateURL=url
        )
    )
    assert "[/Metadata/DatasetteLambda/spec/domain] 'null'" in message
    assert len(template_gate.new()) == 1


def test_the_region_of_the_request_is_the_one_linted(aws, template_gate):
    """A runtime Lambda lacks in a region is reported there (cfn-lint checks per region)."""
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 31}}},
    }
    cfn = boto3.client("cloudformation", region_name="ap-southeast-2")
    message = refused(lambda: cfn.create_stack(StackName="s", TemplateBody=json.dumps(template)))
    assert "cfn-lint E3030" in message
    assert template_gate.new()[0]["region"] == "ap-southeast-2"


def test_null_paths_are_json_pointers():
    assert null_paths({"a": [1, None, {"b/c": None}], "d": {"e": 0}}) == ["/a/1", "/a/2/b~1c"]
    assert null_paths({"a": [1, "x", {"b": False}]}) == []


def test_the_sandbox_process_is_gated_too(aws, template_gate, tmp_path):
    """`--sandbox` runs its emulator in a process of its own (`python -m dl.local.sandbox`): dl.local.sandbox calls the
    hook there, that emulator refuses the template, and the refusal reaches this test through the findings
    file."""
    code = textwrap.dedent(
        f"""
        import boto3, botocore.exceptions
        from dl.local.sandbox import down, environment
        try:
            with environment("eu-west-1"):
                try:
                    boto3.client("cloudformation").create_stack(StackName="child", TemplateBody={json.dumps(json.dumps(with_null()))})
                except botocore.exceptions.ClientError as exc:
                    print(exc.response["Error"]["Code"])
        finally:
            down()
        """
    )
    env = {**os.environ, "DL_SANDBOX_DIR": str(tmp_path / ".dl")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.strip() == "ValidationError", out.stderr
    [finding] = template_gate.new()
    assert finding["stack"] == "child" and finding["region"] == "eu-west-1"
    assert finding["pid"] != os.getpid()  # recorded by the sandbox's own process


def test_the_emulator_hook_does_nothing_unless_named(monkeypatch):
    monkeypatch.delenv("DL_EMULATOR_HOOK")
    emulator_hook(object())  # nothing to call
    seen = []
    monkeypatch.setattr(sys.modules[__name__], "SEEN", seen, raising=False)
    monkeypatch.setenv("DL_EMULATOR_HOOK", f"{__name__}:remember")
    emulator_hook("the server")
    assert seen == ["the server"]
    monkeypatch.setenv("DL_EMULATOR_HOOK", "no_such_module_here:f")
    with pytest.raises(DlError, match="DL_EMULATOR_HOOK='no_such_module_here:f': cannot load it"):
        emulator_hook(object())


def remember(server) -> None:
    SEEN.append(server)  # noqa: F821 (set by the test above)


def test_in_record_mode_a_template_is_accepted_at_once_and_the_finding_still_recorded(
    aws, template_gate, monkeypatch
):
    """The fault-injection tests' client gives up after 1 s, sooner than a first lint: there the call passes
    and the finding arrives beside it (the test would still fail)."""
    from tests.support import template_gate as gate

    monkeypatch.setenv("DL_TEMPLATE_GATE_MODE", "record")
    body = json.dumps({**with_null(), "Description": f"record mode {uuid.uuid4()}"})  # never checked before
    boto3.client("cloudformation").create_stack(StackName="recorded", TemplateBody=body)
    gate.drain()
    [finding] = template_gate.new()
    assert finding["stack"] == "recorded" and "'null' values are not allowed" in finding["findings"][0]
    # known now: refused at once, even in record mode
    refused(lambda: boto3.client("cloudformation").create_stack(StackName="again", TemplateBody=body))
    assert len(template_gate.new()) == 1
