"""Verified deploys inside `dl apply`: after a change the instance is checked over HTTP, and with
--rollback-on-failure a failed check re-deploys the previous spec.

moto cannot run the function or give it a public URL, so `dl serve` (the real package in an isolated
interpreter) stands in for the public endpoint: `dl.aws.hosts.public_url` is pointed at it.
"""

from __future__ import annotations

import json
import shutil

import pytest

from dl.aws import hosts
from dl.aws.metadata_json import template_spec
from dl.local.serve import Serve
from tests.apply.conftest import add_rows, cfn, dl, write_manifest

MANIFEST = "project: ver\ninstances:\n  alpha:\n    databases: [alpha.db]\n"


def deployed_rows() -> int:
    body = cfn().get_template(StackName="ver-alpha")["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else body
    return template_spec(body)["databases"][0]["tables"]["customers"]["rows"]


@pytest.fixture
def public_site(project, tmp_path_factory, monkeypatch):
    """Start `dl serve` on a copy of the project (the "public" site) and route apply's verification to it."""
    started = []

    def start(seam: str = "public_url") -> str:
        """`seam`: which of dl.aws.hosts's URL functions answers with the stand-in's URL."""
        folder = tmp_path_factory.mktemp("public")
        shutil.copy(project / "alpha.db", folder / "alpha.db")
        (folder / ".git").mkdir()
        write_manifest(folder, MANIFEST)
        serve = Serve(str(folder / "datasette-lambda.yml"), port=0, log=lambda line: None)
        serve.start()
        started.append(serve)
        url = serve.urls["alpha"]
        monkeypatch.setattr(hosts, seam, lambda aws, stack, spec, bucket=None: url)
        return url

    yield start
    for serve in started:
        serve.stop()


def test_apply_verifies_and_rolls_back_a_failed_check(project, public_site, monkeypatch):
    monkeypatch.setenv("DL_VERIFY_SECONDS", "4")
    write_manifest(project, MANIFEST)
    assert dl("apply", "--yes", "--no-verify").exit_code == 0

    # healthy: the public site serves what was deployed (4 customers)
    add_rows(project / "alpha.db", "customers", 2)
    url = public_site()
    result = dl("apply", "--yes", "--rollback-on-failure")
    assert result.exit_code == 0, result.output
    assert f"alpha: verified {url}" in result.output
    assert f"alpha: update applied -> {url}" in result.output
    assert deployed_rows() == 4

    # the site keeps serving 4 customers while 6 are deployed: the check fails and the previous spec returns
    add_rows(project / "alpha.db", "customers", 2)
    result = dl("apply", "--yes", "--rollback-on-failure")
    assert result.exit_code == 1
    assert (
        "row count of alpha/customers: expected HTTP 200 with 6 rows, got HTTP 200 with 4 rows"
        in result.output
    )
    assert "rolled back to the previous deployment" in result.output
    assert "Apply failed: 0 succeeded, 1 failed." in result.output
    assert deployed_rows() == 4
    assert "~ alpha: update" in dl("plan").output  # the manifest still differs: the next apply tries again


def test_a_domain_outside_route53_is_verified_through_the_distributions_own_host(project, public_site):
    """certificate_arn + DNS elsewhere: https://<domain>/ may not resolve until the user creates its record, so
    the check goes to the distribution's *.cloudfront.net host (the stand-in) and says so; the custom domain
    (which does not resolve: .invalid) is never requested."""
    write_manifest(
        project,
        MANIFEST
        + "    domain: data.example.invalid\n"
        + "    certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab\n",
    )
    url = public_site("distribution_url")
    result = dl("apply", "--yes")
    assert result.exit_code == 0, result.output
    assert (
        f"alpha: verifying through the distribution's own host {url}: data.example.invalid is not in "
        "Route 53, so it is not checked until its DNS record exists" in result.output
    )
    assert f"alpha: verified {url}" in result.output
