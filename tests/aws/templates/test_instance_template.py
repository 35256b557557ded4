"""What a user of the instance stack would notice: permissions, function settings, front door, CDN, DNS."""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType

import pytest

from dl.aws.cloudfront_function import viewer_request_code
from dl.aws.front_door import ORIGIN_SECRET_HEADER
from dl.aws.metadata_json import template_artifact_keys, template_spec
from dl.aws.names import public_url, secret_parameter
from dl.aws.templates import HANDLER, ephemeral_storage_mb, instance_template, template_json
from dl.errors import DlError
from tests.aws.templates.conftest import (
    CERT_ARN,
    DB_KEY,
    DB_KEY_2,
    GIB,
    PACKAGE_KEY,
    SPEC,
    VARIANTS,
    make_artifacts,
    make_instance,
)

PROJECT = "example-data"


def build(instance=None, artifacts=None, spec=SPEC, **kw) -> dict:
    return instance_template(
        PROJECT, instance or make_instance(), artifacts or make_artifacts(), spec=spec, **kw
    )


def resources_of(template: dict, kind: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict, logical_id: str) -> dict:
    return template["Resources"][logical_id]["Properties"]


def sub_text(value) -> str:
    """The text of a Fn::Sub (or a plain string)."""
    return value["Fn::Sub"] if isinstance(value, dict) else value


def statements(template: dict) -> list[dict]:
    (policy,) = props(template, "FunctionRole")["Policies"]
    return policy["PolicyDocument"]["Statement"]


# --- IAM: its own logs and its own databases, nothing else ---------------------------------------------


def test_role_reads_exactly_the_instance_database_keys_and_writes_only_its_log_group():
    template = build(artifacts=make_artifacts(database_keys=(DB_KEY_2, DB_KEY, DB_KEY), s3_database_bytes=1))
    by_sid = {s["Sid"]: s for s in statements(template)}
    assert set(by_sid) == {"WriteOwnLogs", "ReadOwnDatabases", "WriteAndReadLargeResponses"}
    bucket = make_artifacts().bucket
    assert [sub_text(r) for r in by_sid["ReadOwnDatabases"]["Resource"]] == [
        f"arn:${{AWS::Partition}}:s3:::{bucket}/{DB_KEY}",
        f"arn:${{AWS::Partition}}:s3:::{bucket}/{DB_KEY_2}",
    ]
    assert by_sid["ReadOwnDatabases"]["Action"] == "s3:GetObject"
    logs = by_sid["WriteOwnLogs"]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]  # no logs:CreateLogGroup
    assert sub_text(logs["Resource"]).endswith(":log-group:/aws/lambda/example-data-northwind:*")


def test_role_without_s3_databases_may_only_write_and_read_large_responses():
    template = build()
    assert [s["Sid"] for s in statements(template)] == ["WriteOwnLogs", "WriteAndReadLargeResponses"]
    variables = props(template, "Function")["Environment"]["Variables"]
    assert variables["DL_ARTIFACT_BUCKET"] == make_artifacts().bucket


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_role_writes_to_the_bucket_only_under_responses(name):
    """s3:PutObject (which also covers CreateMultipartUpload, UploadPart, CompleteMultipartUpload) and
    s3:AbortMultipartUpload only on responses/*; nothing else of the bucket is writable."""
    instance, artifacts = VARIANTS[name]
    writes = {"s3:PutObject", "s3:AbortMultipartUpload"}
    for statement in statements(build(instance, artifacts)):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        s3_actions = {a for a in actions if a.startswith("s3:")}
        assert s3_actions <= writes | {"s3:GetObject"}
        if s3_actions & writes:
            assert [sub_text(r) for r in resources] == [
                f"arn:${{AWS::Partition}}:s3:::{artifacts.bucket}/responses/*"
            ]


@pytest.mark.parametrize(
    ("overrides", "seconds"),
    [
        ({"timeout": 30, "cdn": False}, "30"),  # a bare Function URL: the function's own timeout
        ({"timeout": 120, "cdn": False}, "120"),
        ({"timeout": 120, "cdn": True}, "60"),  # CloudFront's origin read timeout, at most 60 s
        ({"timeout": 120, "cdn": False, "endpoint": "http-api"}, "30"),  # an HTTP API waits 30 s at most
        ({"timeout": 10, "cdn": True, "endpoint": "http-api"}, "10"),
    ],
)
def test_the_runtime_knows_how_long_the_front_door_waits(overrides, seconds):
    template = build(make_instance(**overrides))
    assert props(template, "Function")["Environment"]["Variables"]["DL_ANSWER_SECONDS"] == seconds


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_no_wildcard_actions_or_resources_in_the_role(name):
    instance, artifacts = VARIANTS[name]
    template = build(instance, artifacts)
    for statement in statements(template):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions)
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for resource in resources:
            text = sub_text(resource)
            assert text.startswith("arn:${AWS::Partition}:")
            assert "*" not in text.removesuffix(":*").removesuffix("/responses/*")  # log streams, responses
    assert (
        resources_of(template, "AWS::IAM::Policy") == resources_of(template, "AWS::IAM::ManagedPolicy") == {}
    )


def test_artifact_names_that_would_widen_the_policy_are_refused():
    with pytest.raises(DlError, match="contains"):
        build(artifacts=make_artifacts(database_keys=("databases/*",)))


# --- the function -------------------------------------------------------------------------------------------


def test_function_settings_follow_the_instance():
    instance = make_instance(architecture="x86_64", runtime="python3.12", memory=2048, timeout=60)
    function = props(build(instance), "Function")
    assert function["FunctionName"] == "example-data-northwind"
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["x86_64"]
    assert function["MemorySize"] == 2048
    assert function["Timeout"] == 60
    assert function["Handler"] == HANDLER
    assert function["Code"] == {"S3Bucket": make_artifacts().bucket, "S3Key": PACKAGE_KEY}  # never ZipFile
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "LogGroup"}


def test_a_new_package_is_a_plain_property_update():
    before = build()
    after = build(artifacts=make_artifacts(package_key="packages/" + "f" * 64 + ".zip"))
    diff = {k for k in before["Resources"] if before["Resources"][k] != after["Resources"][k]}
    assert diff == {"Function"}
    assert props(after, "Function")["Code"]["S3Key"] == "packages/" + "f" * 64 + ".zip"


@pytest.mark.parametrize(
    ("s3_bytes", "expected"),
    [(0, 512), (100 * 1024**2, 512), (1 * GIB, 1191), (9 * GIB, 10202)],
)
def test_ephemeral_storage_holds_the_s3_databases(s3_bytes, expected):
    assert ephemeral_storage_mb(s3_bytes) == expected
    template = build(artifacts=make_artifacts(database_keys=(DB_KEY,), s3_database_bytes=s3_bytes))
    assert props(template, "Function")["EphemeralStorage"] == {"Size": expected}


def test_databases_too_large_for_lambda_tmp_are_refused_with_the_numbers():
    with pytest.raises(DlError, match=r"10\.0 GiB.*at most 10240 MB"):
        build(artifacts=make_artifacts(database_keys=(DB_KEY,), s3_database_bytes=10 * GIB))


def test_log_group_is_the_function_default_with_the_retention():
    template = build(make_instance(log_retention_days=90))
    assert props(template, "LogGroup") == {
        "LogGroupName": "/aws/lambda/example-data-northwind",
        "RetentionInDays": 90,
    }


def test_a_retention_cloudwatch_refuses_is_an_error_before_deploying():
    with pytest.raises(DlError, match="log_retention_days 31: CloudWatch accepts 1, 3, 5"):
        build(make_instance(log_retention_days=31))


def test_secrets_are_noecho_parameters_and_never_in_the_template():
    instance = make_instance(secrets=MappingProxyType({"DATASETTE_SECRET": "MY_SECRET"}))
    template = build(instance)
    parameter = secret_parameter("DATASETTE_SECRET")
    assert template["Parameters"] == {
        parameter: {
            "Type": "String",
            "NoEcho": True,
            "Description": "value of the function's environment variable DATASETTE_SECRET",
        }
    }
    assert props(template, "Function")["Environment"]["Variables"]["DATASETTE_SECRET"] == {"Ref": parameter}
    assert "MY_SECRET" not in template_json(template)  # the source variable's name is the lead's business


def test_secret_parameter_names_are_one_to_one():
    names = ["A_B", "AB", "A__B", "_AB", "AB_", "A_B_C", "AXB"]
    assert len({secret_parameter(n) for n in names}) == len(names)
    assert all(secret_parameter(n).isalnum() for n in names)


# --- front door -------------------------------------------------------------------------------------------


def test_function_url_behind_cloudfront_accepts_only_the_distribution():
    template = build()
    assert props(template, "FunctionUrl")["AuthType"] == "AWS_IAM"
    permissions = resources_of(template, "AWS::Lambda::Permission")
    assert {p["Properties"]["Action"] for p in permissions.values()} == {
        "lambda:InvokeFunctionUrl",
        "lambda:InvokeFunction",
    }
    for permission in permissions.values():
        p = permission["Properties"]
        assert p["Principal"] == "cloudfront.amazonaws.com"
        assert (
            sub_text(p["SourceArn"])
            == "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"
        )
    assert props(template, "FunctionUrlPermission")["FunctionUrlAuthType"] == "AWS_IAM"
    assert props(template, "FunctionInvokePermission")["InvokedViaFunctionUrl"] is True
    # the project's one origin access control, from its bootstrap stack (tests/aws/templates/test_bootstrap_template.py)
    assert not resources_of(template, "AWS::CloudFront::OriginAccessControl")
    (origin,) = props(template, "Distribution")["DistributionConfig"]["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::ImportValue": "example-data--origin-access-control-id"}


def test_function_url_without_cdn_is_public():
    template = build(make_instance(cdn=False))
    assert props(template, "FunctionUrl")["AuthType"] == "NONE"
    for permission in resources_of(template, "AWS::Lambda::Permission").values():
        assert permission["Properties"]["Principal"] == "*"
        assert "SourceArn" not in permission["Properties"]
    assert not resources_of(template, "AWS::CloudFront::Distribution")


@pytest.mark.parametrize("cdn", [True, False])
def test_http_api_may_invoke_only_through_that_api(cdn):
    template = build(make_instance(endpoint="http-api", cdn=cdn, timeout=120))
    assert "FunctionUrl" not in template["Resources"]
    (permission,) = resources_of(template, "AWS::Lambda::Permission").values()
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert sub_text(permission["Properties"]["SourceArn"]).endswith(":${HttpApi}/*")
    integration = props(template, "HttpApiIntegration")
    assert (integration["PayloadFormatVersion"], integration["TimeoutInMillis"]) == ("2.0", 30000)
    assert props(template, "HttpApiStage")["AutoDeploy"] is True


def test_http_api_behind_cloudfront_needs_the_secret_origin_header():
    template = build(make_instance(endpoint="http-api"))
    secret = props(template, "Function")["Environment"]["Variables"]["DL_ORIGIN_SECRET"]
    (origin,) = props(template, "Distribution")["DistributionConfig"]["Origins"]
    assert origin["OriginCustomHeaders"] == [{"HeaderName": ORIGIN_SECRET_HEADER, "HeaderValue": secret}]
    # a NoEcho parameter dl apply derives per instance (dl/aws/secrets.py): never written in the template, and
    # not the stack ID, which appears in plan files and logs
    assert secret == {"Ref": "OriginSecret"}
    parameter = template["Parameters"]["OriginSecret"]
    assert parameter["NoEcho"] is True and parameter["MinLength"] == 32 and "Default" not in parameter
    no_cdn = build(make_instance(endpoint="http-api", cdn=False))
    assert "DL_ORIGIN_SECRET" not in props(no_cdn, "Function").get("Environment", {}).get("Variables", {})
    assert "OriginSecret" not in no_cdn.get("Parameters", {})


# --- CloudFront -------------------------------------------------------------------------------------------


def distribution(template: dict) -> dict:
    return props(template, "Distribution")["DistributionConfig"]


def test_cloudfront_is_https_http3_ipv6_compressed():
    config = distribution(build())
    assert config["HttpVersion"] == "http2and3"
    assert config["IPV6Enabled"] is True
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["Compress"] is True
    (origin,) = config["Origins"]
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["DomainName"] == {
        "Fn::Select": [2, {"Fn::Split": ["/", {"Fn::GetAtt": ["FunctionUrl", "FunctionUrl"]}]}]
    }


def test_every_distribution_uses_the_projects_one_cache_policy():
    """One cache policy per project (AWS allows 20 per account by default), exported by the bootstrap."""
    for instance in (make_instance(), make_instance(endpoint="http-api"), make_instance(prefix="/v1/")):
        template = build(instance)
        assert not resources_of(template, "AWS::CloudFront::CachePolicy")
        config = distribution(template)
        for behaviour in [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]:
            assert behaviour["CachePolicyId"] == {"Fn::ImportValue": "example-data--cache-policy-id"}


def test_viewer_request_function_is_attached_and_carries_the_prefix():
    template = build(make_instance(prefix="/v1/data/"))
    function = props(template, "EdgeFunction")
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["FunctionCode"] == viewer_request_code("/v1/data/")
    assert "x-forwarded-host" in function["FunctionCode"]
    config = distribution(template)
    association = {
        "EventType": "viewer-request",
        "FunctionARN": {"Fn::GetAtt": ["EdgeFunction", "FunctionARN"]},
    }
    assert config["DefaultCacheBehavior"]["FunctionAssociations"] == [association]
    (prefixed,) = config["CacheBehaviors"]
    assert prefixed["PathPattern"] == "/v1/data/*"
    assert prefixed["FunctionAssociations"] == [association]


def test_no_prefix_means_one_behaviour():
    assert "CacheBehaviors" not in distribution(build())


def test_names_that_must_be_unique_per_account_include_the_stack_uuid():
    template = build()
    names = [props(template, "EdgeFunction")["Name"]]
    for name in names:
        prefix, uuid_part = name["Fn::Join"][1]
        assert prefix == "example-data-northwind"
        assert '{"Ref":"AWS::StackId"}' in template_json(uuid_part)


def test_function_url_origin_allows_no_unsigned_bodies_http_api_allows_all_methods():
    assert distribution(build())["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD", "OPTIONS"]
    methods = distribution(build(make_instance(endpoint="http-api")))["DefaultCacheBehavior"][
        "AllowedMethods"
    ]
    assert sorted(methods) == ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]


# --- domain -------------------------------------------------------------------------------------------------


def test_domain_in_a_hosted_zone_gets_alias_a_and_aaaa_records_and_tls12():
    instance, artifacts = VARIANTS["domain-hosted-zone"]
    template = build(instance, artifacts)
    config = distribution(template)
    assert config["Aliases"] == ["data.example.com"]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": CERT_ARN,
        "SslSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }
    records = resources_of(template, "AWS::Route53::RecordSet")
    assert sorted(r["Properties"]["Type"] for r in records.values()) == ["A", "AAAA"]
    for record in records.values():
        p = record["Properties"]
        assert p["Name"] == "data.example.com."
        assert p["HostedZoneId"] == artifacts.hosted_zone_id
        assert p["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["Distribution", "DomainName"]}
        assert p["AliasTarget"]["HostedZoneId"] == "Z2FDTNDATAQYW2"  # CloudFront's zone: works at an apex


def test_domain_with_certificate_arn_and_no_zone_makes_no_records():
    instance, artifacts = VARIANTS["domain-certificate-arn"]
    template = build(instance, artifacts)
    assert distribution(template)["ViewerCertificate"]["AcmCertificateArn"] == CERT_ARN
    assert not resources_of(template, "AWS::Route53::RecordSet")
    assert template["Outputs"]["Url"]["Value"] == "https://example.org/"


def test_domain_without_certificate_is_an_error():
    with pytest.raises(DlError, match="no certificate ARN"):
        build(make_instance(domain="data.example.com"), make_artifacts())


# --- outputs, metadata, determinism ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default", {"FunctionName", "LogGroupName", "DistributionId"}),
        ("function-url-no-cdn", {"FunctionName", "LogGroupName"}),
        ("http-api", {"FunctionName", "LogGroupName", "DistributionId", "HttpApiId"}),
        ("http-api-no-cdn", {"FunctionName", "LogGroupName", "HttpApiId"}),
        ("domain-http-api-prefix", {"FunctionName", "LogGroupName", "DistributionId", "HttpApiId", "Url"}),
    ],
)
def test_outputs(name, expected):
    instance, artifacts = VARIANTS[name]
    outputs = build(instance, artifacts)["Outputs"]
    assert set(outputs) == expected
    # only values moto can evaluate: Ref, or a plain string
    for output in outputs.values():
        assert isinstance(output["Value"], str) or set(output["Value"]) == {"Ref"}
    if "Url" in outputs:
        assert outputs["Url"]["Value"] == f"https://{instance.domain}{instance.prefix}"


def test_public_url_joins_host_and_prefix():
    instance = make_instance(prefix="/data/")
    assert public_url(instance, "d111.cloudfront.net") == "https://d111.cloudfront.net/data/"
    assert (
        public_url(instance, "https://abc.lambda-url.eu-west-1.on.aws/")
        == "https://abc.lambda-url.eu-west-1.on.aws/data/"
    )


def test_spec_and_artifacts_are_stored_and_read_back():
    artifacts = make_artifacts(database_keys=(DB_KEY,))
    template = json.loads(template_json(build(artifacts=artifacts)))
    assert template_spec(template) == SPEC
    assert template_artifact_keys(template) == {PACKAGE_KEY, DB_KEY}
    assert template_spec({"Resources": {}}) is None


def test_a_spec_change_always_changes_a_resource():
    """CloudFormation refuses an update that only changes Metadata: the spec's digest is in the function."""
    before, after = build(spec={"protect": False}), build(spec={"protect": True})
    assert props(before, "Function")["Description"] != props(after, "Function")["Description"]


def test_template_is_deterministic_and_canonical():
    instance, artifacts = VARIANTS["domain-http-api-prefix"]
    first = template_json(build(instance, artifacts, spec={"b": 1, "a": [2, 1]}))
    second = template_json(build(dataclasses.replace(instance), artifacts, spec={"a": [2, 1], "b": 1}))
    assert first == second
    assert json.loads(first) == build(instance, artifacts, spec={"a": [2, 1], "b": 1})
    assert first == json.dumps(json.loads(first), sort_keys=True, separators=(",", ":"))  # canonical form


def test_spec_must_be_json():
    with pytest.raises(TypeError):
        build(spec={"when": object()})
