"""Stack, function and log group names are valid and distinct for every name the manifest schema allows."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dl.aws.names import (
    bootstrap_stack_name,
    certificate_stack_name,
    function_name,
    instance_stack_name,
    legacy_certificate_stack_name,
    log_group_name,
)
from dl.aws.templates import instance_template
from dl.errors import DlError
from tests.aws.templates.conftest import make_artifacts, make_instance

# The manifest schema's patterns (dl/manifest/schema.json): project 1-24, instance 1-32 characters.
PROJECTS = st.from_regex(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,23}", fullmatch=True)
INSTANCES = st.from_regex(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,31}", fullmatch=True)
CFN_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
LAMBDA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@given(PROJECTS, INSTANCES)
def test_every_valid_manifest_name_gives_valid_stack_and_function_names(project, instance):
    stack = instance_stack_name(project, instance)
    assert CFN_STACK_NAME.fullmatch(stack)
    assert LAMBDA_NAME.fullmatch(stack)  # the function is named like its stack
    assert log_group_name(project, instance) == f"/aws/lambda/{stack}"
    assert CFN_STACK_NAME.fullmatch(bootstrap_stack_name(project))
    assert CFN_STACK_NAME.fullmatch(certificate_stack_name(project, f"{instance}.example.org"))
    assert CFN_STACK_NAME.fullmatch(legacy_certificate_stack_name(project, instance))


DOMAINS = st.from_regex(r"[a-z0-9]{1,63}(\.[a-z0-9]{1,63}){1,3}", fullmatch=True)


@given(PROJECTS, INSTANCES, PROJECTS, DOMAINS)
def test_bootstrap_and_certificate_stacks_never_take_an_instance_stack_name(p1, i1, p2, domain):
    instance_stack = instance_stack_name(p1, i1)
    assert instance_stack != bootstrap_stack_name(p2)
    assert instance_stack != certificate_stack_name(p2, domain)
    assert instance_stack != legacy_certificate_stack_name(p2, i1)


def test_one_certificate_stack_per_domain_named_from_its_hash_whatever_its_length():
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, DNS's limit
    assert len(longest) == 253
    name = certificate_stack_name("p" * 24, longest)
    assert name == "p" * 24 + "--cert-" + hashlib.sha256(longest.encode()).hexdigest()[:16]
    assert CFN_STACK_NAME.fullmatch(name) and len(name) <= 128
    # per domain, not per instance: the same for whichever instance has it, distinct for another domain
    assert certificate_stack_name("data", "data.example.org") == certificate_stack_name(
        "data", "data.example.org"
    )
    assert certificate_stack_name("data", "data.example.org") != certificate_stack_name(
        "data", "x.example.org"
    )
    assert certificate_stack_name("data", "data.example.org") != certificate_stack_name(
        "atad", "data.example.org"
    )


def test_longest_names():
    project, instance = "p" * 24, "i" * 32
    assert instance_stack_name(project, instance) == f"{project}-{instance}"
    template = instance_template(
        project, make_instance(name=instance), make_artifacts(), spec={}
    )  # account-wide names stay within CloudFront's 64 characters: 55 + "-" + 8
    name = template["Resources"]["EdgeFunction"]["Properties"]["Name"]["Fn::Join"][1][0]
    assert len(name) == 55


def test_an_instance_named_like_the_bootstrap_stack_cannot_collide():
    assert instance_stack_name("data", "bootstrap") != bootstrap_stack_name("data")
    assert instance_stack_name("data", "dl-bootstrap") != bootstrap_stack_name("data")


@pytest.mark.parametrize(("project", "instance"), [("a" * 40, "b" * 30), ("my_data", "x"), ("9lives", "x")])
def test_names_outside_the_schema_are_refused_clearly(project, instance):
    with pytest.raises(DlError, match="not a valid stack name"):
        instance_stack_name(project, instance)


PULL_REQUESTS = st.integers(min_value=1, max_value=10**7)


@given(PROJECTS, INSTANCES, PULL_REQUESTS, PROJECTS, INSTANCES)
def test_preview_names_are_valid_and_never_a_production_name(project, instance, number, p2, i2):
    stack = instance_stack_name(project, instance, number)
    function = function_name(project, instance, number)
    assert stack == f"{project}--pr{number}--{instance}" and CFN_STACK_NAME.fullmatch(stack)
    assert LAMBDA_NAME.fullmatch(function)  # within Lambda's 64 characters
    assert function.startswith(f"{project}--pr{number}-")  # what the preview IAM policies match
    assert function == stack or (len(stack) > 64 and len(function) == 64)
    assert log_group_name(project, instance, number) == f"/aws/lambda/{function}"
    for production in (instance_stack_name(p2, i2), bootstrap_stack_name(p2), certificate_stack_name(p2, i2)):
        assert stack != production and function != production


def test_long_preview_function_names_are_shortened_with_a_hash():
    project, instance = "p" * 24, "i" * 32
    a, b = function_name(project, instance, 123456), function_name(project, instance[:-1] + "j", 123456)
    assert len(a) == len(b) == 64 and a != b  # distinct though the first 55 characters are equal
    assert a[:55] == instance_stack_name(project, instance, 123456)[:55]
    template = instance_template(
        project, make_instance(name=instance), make_artifacts(), spec={}, preview=123456
    )
    function = template["Resources"]["Function"]["Properties"]
    assert function["FunctionName"] == a
    assert template["Resources"]["LogGroup"]["Properties"]["LogGroupName"] == f"/aws/lambda/{a}"
    assert function_name(project, instance) == instance_stack_name(project, instance)  # production unchanged
