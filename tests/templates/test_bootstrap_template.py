"""The artifact bucket: private, encrypted, TLS only, versioned, unreferenced artifacts expire."""

from __future__ import annotations

from dl.templates import ARTIFACT_RETENTION_DAYS, bootstrap_template


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
    assert template["Outputs"] == {
        "BucketName": {"Description": "artifact bucket", "Value": {"Ref": "ArtifactBucket"}}
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
