"""Every template as `dl apply` would send it passes cfn-lint (errors and warnings) and holds no null, in
several regions, built from the desired specs of a real manifest (real packages, real database inspection),
not from hand-made specs: the spec is stored in Metadata, and that is where the nulls were.

The tests' emulator checks every template it receives the same way (tests/support/template_gate.py); these
tests cover the variants the emulator cannot deploy (custom domains in a hosted zone) and other regions.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cfnlint.api
import pytest

from dl.aws import secrets
from dl.aws.bootstrap import bootstrap_template
from dl.aws.metadata_json import template_spec
from dl.aws.observed import ObservedInstance
from dl.aws.templates import InstanceArtifacts, certificate_template, instance_template, template_json
from dl.build.desired import build_instance, instance_spec
from dl.build.package import build_package
from dl.manifest.load import load_manifest
from dl.plan.diff import plan_instance
from dl.plan.model import Action
from tests.conftest import make_db
from tests.support.template_gate import null_paths

REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2"]
BUCKET = "lint-data--bootstrap-artifactbucket-1a2b3c4d5e6f"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f6c1b1e-1111-2222-3333-444455556666"
ZONE = "Z0123456789ABCDEFGHIJ"
KEY = bytes(range(32))
ENVIRON = {"LINT_API_KEY": "s3cr3t", "LINT_SIGNING": "signing-secret-value"}

# Every variant: front door (function URL, HTTP API), CDN on and off, prefix, a domain in a Route 53 zone or with
# a given certificate, secrets (DATASETTE_SECRET among them), a plugin, x86_64 and arm64, metadata with a null
# (YAML `~`) and a `${AWS::Region}` (cfn-lint's E1029 outside Fn::Sub), tags, databases inline or in S3 (the `s3` instance is built with an inline limit of 0).
MANIFEST = f"""\
project: lint-data
region: eu-west-1
tags: {{team: data, cost-centre: "42"}}
instances:
  plain: {{databases: [northwind.db]}}
  prefixed: {{databases: [northwind.db, cities.db], prefix: /data/, metadata: {{title: "${{AWS::Region}}", license: ~}}}}
  no-cdn: {{databases: [northwind.db], cdn: false, prefix: /v1/}}
  api: {{databases: [northwind.db], endpoint: http-api}}
  api-no-cdn: {{databases: [northwind.db], endpoint: http-api, cdn: false}}
  zone: {{databases: [northwind.db], domain: data.example.com}}
  cert: {{databases: [northwind.db], domain: example.org, certificate_arn: "{CERT_ARN}"}}
  api-domain: {{databases: [northwind.db], domain: api.example.com, endpoint: http-api, prefix: /api/}}
  secrets:
    databases: [northwind.db]
    secrets: {{API_KEY: LINT_API_KEY, DATASETTE_SECRET: LINT_SIGNING}}
  plugins: {{databases: [northwind.db], plugins: [datasette-block-robots==1.1.1]}}
  x86:
    databases: [northwind.db]
    architecture: x86_64
    runtime: python3.11
    memory: 3008
    timeout: 120
    log_retention_days: 365
  s3: {{databases: [northwind.db, cities.db], cors: true}}
"""
INSTANCES = ["plain", "prefixed", "no-cdn", "api", "api-no-cdn", "zone", "cert", "api-domain", "secrets",
             "plugins", "x86", "s3"]  # fmt: skip
IN_A_ZONE = {"zone", "api-domain"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{instance: (Instance, desired spec)} of the manifest above, as `dl plan`/`dl apply` derive them."""
    folder = tmp_path_factory.mktemp("lint-project")
    (folder / ".git").mkdir()
    make_db(folder / "northwind.db", {"orders": 30, "customers": 9})
    make_db(folder / "cities.db", {"cities": 4})
    (folder / "datasette-lambda.yml").write_text(MANIFEST)
    manifest = load_manifest(folder / "datasette-lambda.yml")
    assert list(manifest.instances) == INSTANCES
    quiet = lambda _: None  # noqa: E731
    specs = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DL_CACHE_DIR", str(tmp_path_factory.mktemp("lint-cache")))
        for name, instance in manifest.instances.items():
            tags = dict(manifest.tags)
            if name == "s3":
                package = build_package(instance, folder / "s3.zip", inline_limit=0, log=quiet)
                specs[name] = instance_spec(manifest.project, instance, package, tags=tags)
            else:
                specs[name] = build_instance(manifest.project, instance, log=quiet, tags=tags).spec
    secrets.seal(specs, manifest, KEY, {}, environ=ENVIRON)
    return {name: (manifest.instances[name], spec) for name, spec in specs.items()}


def template_for(instance, spec: dict) -> dict:
    """The instance template apply sends for `spec` (certificate and zone as apply resolves them)."""
    certificate = (instance.certificate_arn or CERT_ARN) if instance.domain else None
    zone = ZONE if instance.name in IN_A_ZONE else None
    artifacts = InstanceArtifacts.from_spec(spec, BUCKET, certificate_arn=certificate, hosted_zone_id=zone)
    return instance_template("lint-data", instance, artifacts, spec=spec)


def lint(template: dict, regions: list[str]) -> list[str]:
    """cfn-lint findings (errors and warnings, its defaults) in any of `regions`, as 'RULE path: message'."""
    matches = cfnlint.api.lint(template_json(template), config=cfnlint.api.ManualArgs(regions=regions))
    return [f"{m.rule.id} {'/'.join(map(str, m.path or []))}: {m.message}" for m in matches]


@pytest.mark.slow
@pytest.mark.parametrize("name", INSTANCES)
def test_instance_template_as_sent_is_clean_in_every_region(built, name):
    instance, spec = built[name]
    template = template_for(instance, spec)
    assert null_paths(json.loads(template_json(template))) == []
    assert lint(template, REGIONS) == []


@pytest.mark.slow
def test_the_variants_are_what_they_say(built):
    """The manifest really covers what the lint tests claim (nulls in the spec included)."""
    resources = {name: set(template_for(*built[name])["Resources"]) for name in INSTANCES}
    assert "FunctionUrl" in resources["plain"] and "Distribution" in resources["plain"]
    assert "Distribution" not in resources["no-cdn"] and "HttpApi" in resources["api"]
    assert {"DnsRecordA", "DnsRecordAAAA"} <= resources["zone"] and "DnsRecordA" not in resources["cert"]
    assert built["s3"][1]["databases"][0]["location"] == "s3"
    assert built["plugins"][1]["versions"]["datasette-block-robots"] == "1.1.1"
    assert built["x86"][1]["architecture"] == "x86_64"
    assert built["plain"][1]["domain"] is None and built["prefixed"][1]["metadata"]["license"] is None
    assert built["prefixed"][1]["metadata"]["title"] == "${AWS::Region}"
    assert built["secrets"][1]["secrets"]["API_KEY"].startswith("hmac-sha256:")


@pytest.mark.slow
@pytest.mark.parametrize("name", INSTANCES)
def test_the_stored_spec_reads_back_equal_so_the_next_plan_is_empty(built, name):
    instance, spec = built[name]
    sent = json.loads(template_json(template_for(instance, spec)))
    assert template_spec(sent) == spec
    stack = SimpleNamespace(stack_id="arn:stack", status="UPDATE_COMPLETE")
    observed = ObservedInstance(name, stack, template_spec(sent))
    assert plan_instance(name, spec, observed).action is Action.NOOP


def test_bootstrap_template_is_clean():
    assert lint(bootstrap_template("lint-data"), REGIONS) == []


@pytest.mark.slow
@pytest.mark.parametrize("zone", [ZONE, None])
def test_certificate_template_is_clean(built, zone):
    instance, _ = built["zone"]
    assert lint(certificate_template("lint-data", instance, zone), ["us-east-1"]) == []


@pytest.mark.slow
def test_lint_catches_a_broken_template(built):
    """The check can fail: a retention CloudWatch does not accept and a deprecated runtime are reported, and
    a null is found where CloudFormation would refuse it."""
    template = template_for(*built["plain"])
    template["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] = 31
    template["Resources"]["Function"]["Properties"]["Runtime"] = "python3.7"
    findings = lint(template, ["eu-west-1"])
    assert any(f.startswith("E3030") for f in findings)
    assert any(f.startswith("E2531") for f in findings)
    template["Metadata"]["DatasetteLambda"]["spec"]["domain"] = None
    assert null_paths(json.loads(template_json(template))) == ["/Metadata/DatasetteLambda/spec/domain"]


@pytest.mark.slow
@pytest.mark.parametrize("cdn", [False, True])
@pytest.mark.parametrize("name", INSTANCES)
def test_preview_templates_are_clean(built, name, cdn):
    """A pull request's preview of every variant (no domain, no protect, short logs; CDN only when asked),
    with a long name (a hash-shortened function name), from the real desired spec made a preview's."""
    from dataclasses import replace

    from dl.apply.preview import preview_instance

    instance, spec = built[name]
    preview = preview_instance(replace(instance, name="i" * 32), cdn=cdn)
    spec = {**spec, "preview": 1234567, "domain": None, "certificate_arn": None, "cdn": preview.cdn}
    artifacts = InstanceArtifacts.from_spec(spec, BUCKET)
    template = instance_template("p" * 24, preview, artifacts, spec=spec, preview=1234567)
    assert len(template["Resources"]["Function"]["Properties"]["FunctionName"]) == 64
    assert null_paths(json.loads(template_json(template))) == []
    assert lint(template, REGIONS) == []
