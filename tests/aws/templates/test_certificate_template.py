"""The us-east-1 certificate stack: DNS validation that CloudFormation completes itself in the hosted zone."""

from __future__ import annotations

import pytest

from dl.aws.templates import certificate_template
from dl.errors import DlError
from tests.aws.templates.conftest import make_instance


def test_dns_validation_through_the_hosted_zone():
    template = certificate_template(
        "example-data", make_instance(domain="data.example.com"), "Z0123456789ABCDEFGHIJ"
    )
    p = template["Resources"]["Certificate"]["Properties"]
    assert p["DomainName"] == "data.example.com"
    assert p["ValidationMethod"] == "DNS"  # never e-mail
    assert p["DomainValidationOptions"] == [
        {"DomainName": "data.example.com", "HostedZoneId": "Z0123456789ABCDEFGHIJ"}
    ]
    assert template["Outputs"]["CertificateArn"]["Value"] == {"Ref": "Certificate"}


def test_no_domain_no_certificate():
    with pytest.raises(DlError, match="has no domain"):
        certificate_template("example-data", make_instance(), None)
