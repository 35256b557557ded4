"""Every template variant passes cfn-lint (its Python API) with zero errors and zero warnings, in several regions."""

from __future__ import annotations

import cfnlint.api
import pytest
from conftest import VARIANTS

from dl.templates import bootstrap_template, certificate_template, instance_template, template_json

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def lint(template: dict, regions: list[str]) -> list[str]:
    """cfn-lint findings (errors and warnings, its defaults) in any of `regions`, as 'RULE path: message'."""
    matches = cfnlint.api.lint(template_json(template), config=cfnlint.api.ManualArgs(regions=regions))
    return [f"{m.rule.id} {'/'.join(map(str, m.path or []))}: {m.message}" for m in matches]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_instance_template_is_clean(name):
    instance, artifacts = VARIANTS[name]
    assert lint(instance_template("example-data", instance, artifacts, spec={"x": 1}), REGIONS) == []


def test_bootstrap_template_is_clean():
    assert lint(bootstrap_template("example-data"), REGIONS) == []


@pytest.mark.parametrize("zone", ["Z0123456789ABCDEFGHIJ", None])
def test_certificate_template_is_clean(zone):
    instance, _ = VARIANTS["domain-hosted-zone"]
    assert lint(certificate_template("example-data", instance, zone), ["us-east-1"]) == []


def test_lint_catches_a_broken_template():
    """The check can fail: a retention CloudWatch does not accept and a deprecated runtime are reported."""
    instance, artifacts = VARIANTS["default"]
    template = instance_template("example-data", instance, artifacts, spec={})
    template["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] = 31
    template["Resources"]["Function"]["Properties"]["Runtime"] = "python3.7"
    findings = lint(template, ["eu-west-1"])
    assert any(f.startswith("E3030") for f in findings)
    assert any(f.startswith("E2531") for f in findings)


@pytest.mark.parametrize("cdn", [False, True])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_preview_templates_are_clean(name, cdn):
    """A pull request's preview of every variant (no domain, no protect, short logs; CDN only when asked),
    with the longest names (a hash-shortened function name)."""
    from dataclasses import replace

    from dl.preview import preview_instance

    instance, artifacts = VARIANTS[name]
    preview = preview_instance(replace(instance, name="i" * 32), cdn=cdn)
    template = instance_template("p" * 24, preview, artifacts, spec={"x": 1}, preview=1234567)
    assert len(template["Resources"]["Function"]["Properties"]["FunctionName"]) == 64
    assert lint(template, REGIONS) == []
