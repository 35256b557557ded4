"""The bootstrap: what a project needs in an account and region before any instance, like ``cdk bootstrap``.

``dl bootstrap`` (dl/commands/bootstrap.py; once per project and region, with administrator credentials) creates
or upgrades the stack ``<project>--bootstrap``. Pure: :func:`bootstrap_template` is data, like the other
templates (dl/aws/templates.py). It holds:

- the **artifact bucket** (packages, databases, large templates, the secrets keys, the state dl records);
- the **CloudFormation execution role** ``<project>--cfn-exec-<region>`` (only CloudFormation may assume it;
  every instance and certificate change set is created with it) and the **permissions boundary**
  ``<project>--boundary-<region>`` every role of the project's stacks carries: their policies, and how they
  are scoped to one project, are dl/aws/execution_role.py;
- the **preview execution role** ``<project>--cfn-preview-<region>`` and the **preview boundary**
  ``<project>--preview-boundary-<region>``, for pull request previews (dl/aws/preview_execution_role.py);
- the project's **shared CloudFront resources**: one cache policy and one origin access control, exported
  for the instance stacks (one per instance would exhaust the account's default quota of 20 cache policies).

Versions: ``VERSION`` is in the template's Metadata and Outputs. 1 was the bucket-only bootstrap of earlier
releases (no version recorded). ``dl plan`` refuses an older bootstrap and names the command that upgrades
it; ``dl apply`` upgrades it itself when the caller may (an administrator, the sandbox), and otherwise says
to run ``dl bootstrap``.
"""

from __future__ import annotations

from dl.aws.execution_role import boundary_policy, bucket_arn, execution_policy
from dl.aws.intrinsics import sub
from dl.aws.names import (
    BOOTSTRAP_VERSION,
    METADATA_KEY,
    boundary_policy_name,
    execution_role_name,
    export_name,
    preview_boundary_policy_name,
    preview_execution_role_name,
)
from dl.aws.preview_execution_role import preview_boundary_policy, preview_execution_policy

# --- the template -------------------------------------------------------------------------------------------


def _artifact_bucket(retention_days: int) -> tuple[dict, dict]:
    bucket = {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {
                "Rules": [
                    {
                        "Id": "expire-unreferenced-artifacts",
                        "Status": "Enabled",
                        "NoncurrentVersionExpiration": {"NoncurrentDays": retention_days},
                        "ExpiredObjectDeleteMarker": True,
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    },
                    {  # responses too large for Lambda (dl/runtime/large_responses.py): a day is plenty
                        "Id": "expire-large-responses",
                        "Status": "Enabled",
                        "Prefix": "responses/",
                        "ExpirationInDays": 1,
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    },
                ]
            },
        },
    }
    policy = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": "ArtifactBucket"},
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket_arn(), bucket_arn("/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        },
    }
    return bucket, policy


def shared_cache_policy_config(project: str) -> dict:
    """Cache what Datasette's Cache-Control allows, keyed by query string, cookies and public host.

    MinTTL/DefaultTTL 0: nothing is cached unless the origin says so (Datasette sends ``max-age`` on public
    pages and ``private, no-store`` on any response to a request with cookies or that sets one). Cookies are
    in the key as well, so even a mis-marked personalised response is only served to the same cookies. The
    viewer-request function copies the public host into ``X-Forwarded-Host`` (dl/aws/cloudfront_function.py).
    """
    from dl.aws.cloudfront_function import FORWARDED_HOST
    from dl.aws.names import CACHE_MAX_TTL

    return {
        "Name": sub(f"{project}--${{AWS::Region}}"),
        "Comment": f"datasette-lambda {project}: follow the origin's Cache-Control"[:128],
        "MinTTL": 0,
        "DefaultTTL": 0,
        "MaxTTL": CACHE_MAX_TTL,
        "ParametersInCacheKeyAndForwardedToOrigin": {
            "EnableAcceptEncodingGzip": True,
            "EnableAcceptEncodingBrotli": True,
            "QueryStringsConfig": {"QueryStringBehavior": "all"},
            "CookiesConfig": {"CookieBehavior": "all"},
            "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": [FORWARDED_HOST]},
        },
    }


def bootstrap_template(project: str) -> dict:
    """The bootstrap stack's template (see the module docstring). Pure: same project, same template.

    The artifact bucket is private, encrypted, TLS only and versioned; unreferenced artifacts expire.
    Artifacts are content-addressed and never overwritten. "Unreferenced" is decided by apply, which knows
    every deployed template's keys: after a successful apply it deletes the objects no stack of the project
    references. Versioning turns that delete into a delete marker, so the bytes stay recoverable; the
    lifecycle rule removes them ``ARTIFACT_RETENTION_DAYS`` after they became noncurrent (counted from the
    delete, not from the upload, which an expiry by tag could not do), cleans up the left-over delete
    markers, and aborts multipart uploads abandoned for a day.
    """
    from dl.aws.names import ARTIFACT_RETENTION_DAYS

    bucket, bucket_policy = _artifact_bucket(ARTIFACT_RETENTION_DAYS)
    role_name = sub(execution_role_name(project, "${AWS::Region}"))
    resources = {
        "ArtifactBucket": bucket,
        "ArtifactBucketPolicy": bucket_policy,
        "PermissionsBoundary": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "ManagedPolicyName": sub(boundary_policy_name(project, "${AWS::Region}")),
                "Description": f"datasette-lambda {project}: the most any role of its stacks may do",
                "PolicyDocument": boundary_policy(project),
            },
        },
        "ExecutionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": role_name,
                "Description": f"datasette-lambda {project}: CloudFormation deploys the project's stacks as this",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudformation.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [{"PolicyName": "project-stacks", "PolicyDocument": execution_policy(project)}],
            },
        },
        "PreviewPermissionsBoundary": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "ManagedPolicyName": sub(preview_boundary_policy_name(project, "${AWS::Region}")),
                "Description": f"datasette-lambda {project}: the most any role of a preview may do",
                "PolicyDocument": preview_boundary_policy(project),
            },
        },
        "PreviewExecutionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": sub(preview_execution_role_name(project, "${AWS::Region}")),
                "Description": f"datasette-lambda {project}: CloudFormation deploys pull request previews as this",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudformation.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {"PolicyName": "preview-stacks", "PolicyDocument": preview_execution_policy(project)}
                ],
            },
        },
        "CachePolicy": {
            "Type": "AWS::CloudFront::CachePolicy",
            "Properties": {"CachePolicyConfig": shared_cache_policy_config(project)},
        },
        "OriginAccessControl": {
            "Type": "AWS::CloudFront::OriginAccessControl",
            "Properties": {
                "OriginAccessControlConfig": {
                    "Name": sub(f"{project}--${{AWS::Region}}"),
                    "Description": f"CloudFront signs its requests to the function URLs of {project}",
                    "OriginAccessControlOriginType": "lambda",
                    "SigningBehavior": "always",
                    "SigningProtocol": "sigv4",
                }
            },
        },
    }
    outputs = {
        "BucketName": {"Description": "artifact bucket", "Value": {"Ref": "ArtifactBucket"}},
        "BootstrapVersion": {
            "Description": "version of the bootstrap stack",
            "Value": str(BOOTSTRAP_VERSION),
        },
        "ExecutionRoleArn": {
            "Description": "the role CloudFormation deploys the project's stacks as",
            "Value": {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
        },
        "PreviewExecutionRoleArn": {
            "Description": "the role CloudFormation deploys pull request previews as (dl/apply/preview.py)",
            "Value": {"Fn::GetAtt": ["PreviewExecutionRole", "Arn"]},
        },
        "PermissionsBoundaryArn": {
            "Description": "boundary every role of the project's stacks carries",
            "Value": {"Ref": "PermissionsBoundary"},
        },
        "CachePolicyId": {
            "Description": "the project's CloudFront cache policy",
            "Value": {"Ref": "CachePolicy"},
            "Export": {"Name": export_name(project, "cache-policy-id")},
        },
        "OriginAccessControlId": {
            "Description": "the project's CloudFront origin access control (function URLs)",
            "Value": {"Ref": "OriginAccessControl"},
            "Export": {"Name": export_name(project, "origin-access-control-id")},
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"datasette-lambda bootstrap of project {project} (version {BOOTSTRAP_VERSION})",
        "Metadata": {
            METADATA_KEY: {"format": 1, "kind": "bootstrap", "project": project, "version": BOOTSTRAP_VERSION}
        },
        "Resources": resources,
        "Outputs": outputs,
    }
