"""The artifact bucket: private, encrypted, TLS only, versioned, unreferenced artifacts expire."""

from __future__ import annotations

import json

from dl.aws.bootstrap import bootstrap_template
from dl.aws.names import ARTIFACT_RETENTION_DAYS


def bucket() -> dict:
    return bootstrap_template("example-data")["Resources"]["ArtifactBucket"]


def test_bucket_is_private_with_ownership_enforced():
    p = bucket()["Properties"]
    assert p["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_bucket_is_encrypted():
    (rule,) = bucket()["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_bucket_policy_denies_every_request_without_tls():
    policy = bootstrap_template("example-data")["Resources"]["ArtifactBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "ArtifactBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket_arn = {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    assert statement["Resource"] == [bucket_arn, {"Fn::Join": ["", [bucket_arn, "/*"]]}]


def test_unreferenced_artifacts_expire_after_the_grace_period_and_uploads_are_not_left_behind():
    p = bucket()["Properties"]
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}  # a delete keeps the bytes as noncurrent
    rule, _ = p["LifecycleConfiguration"]["Rules"]
    assert "Prefix" not in rule  # the whole bucket
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": ARTIFACT_RETENTION_DAYS}
    assert rule["ExpiredObjectDeleteMarker"] is True
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "ExpirationInDays" not in rule and "Expiration" not in rule  # referenced artifacts never expire


def test_bucket_survives_its_stack_and_is_the_output():
    template = bootstrap_template("example-data")
    assert bucket()["DeletionPolicy"] == bucket()["UpdateReplacePolicy"] == "Retain"
    assert template["Outputs"]["BucketName"] == {
        "Description": "artifact bucket",
        "Value": {"Ref": "ArtifactBucket"},
    }
    assert "BucketName" not in bucket()["Properties"]  # generated: no global-name squatting or clashes


def test_large_responses_expire_after_a_day_current_and_noncurrent():
    _, rule = bucket()["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule == {
        "Id": "expire-large-responses",
        "Status": "Enabled",
        "Prefix": "responses/",
        "ExpirationInDays": 1,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    }


def test_the_shared_cache_policy_follows_cache_control_and_keys_on_query_cookies_and_host():
    resources = bootstrap_template("example-data")["Resources"]
    key = resources["CachePolicy"]["Properties"]["CachePolicyConfig"]
    assert (key["MinTTL"], key["DefaultTTL"]) == (0, 0)  # nothing cached that the origin did not allow
    params = key["ParametersInCacheKeyAndForwardedToOrigin"]
    assert params["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert params["CookiesConfig"] == {"CookieBehavior": "all"}  # a cookie-dependent page is never shared
    assert params["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["x-forwarded-host"]}
    oac = resources["OriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "lambda",
        "always",
        "sigv4",
    )
    # names are unique per account (CloudFront is global): the project's exact prefix and the region
    assert key["Name"] == oac["Name"] == {"Fn::Sub": "example-data--${AWS::Region}"}


def test_the_bootstrap_exports_what_instances_share_and_records_its_version():
    from dl.aws.names import BOOTSTRAP_VERSION as VERSION

    template = bootstrap_template("example-data")
    outputs = template["Outputs"]
    assert outputs["CachePolicyId"]["Export"] == {"Name": "example-data--cache-policy-id"}
    assert outputs["OriginAccessControlId"]["Export"] == {"Name": "example-data--origin-access-control-id"}
    assert outputs["BootstrapVersion"]["Value"] == str(VERSION)
    assert template["Metadata"]["DatasetteLambda"]["version"] == VERSION


def test_only_cloudformation_may_assume_the_execution_role():
    role = bootstrap_template("example-data")["Resources"]["ExecutionRole"]["Properties"]
    assert role["RoleName"] == {"Fn::Sub": "example-data--cfn-exec-${AWS::Region}"}
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "cloudformation.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_the_permissions_boundary_lets_functions_write_large_responses_only_under_responses():
    from dl.aws.execution_role import boundary_policy

    statements = {s["Sid"]: s for s in boundary_policy("example-data")["Statement"]}
    large = statements["ProjectLargeResponses"]
    assert sorted(large["Action"]) == ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    assert "/responses/*" in json.dumps(large["Resource"])
    writes = [
        s
        for s in statements.values()
        if {"s3:PutObject"} & set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert writes == [large]
