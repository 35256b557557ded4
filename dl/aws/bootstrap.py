"""The bootstrap: what a project needs in an account and region before any instance, like ``cdk bootstrap``.

``dl bootstrap`` (once per project and region, with administrator credentials) creates or upgrades the stack
``<project>--bootstrap``. It holds:

- the **artifact bucket** (packages, databases, large templates, the secrets keys, the state dl records);
- the **CloudFormation execution role** ``<project>--cfn-exec-<region>``: only ``cloudformation.amazonaws.com``
  may assume it, and every instance and certificate change set is created with ``RoleARN`` = this role, so
  CloudFormation never acts with the caller's (short-lived CI) credentials. Its policy grants what
  CloudFormation's own resource handlers call for the resource types dl's templates use
  (``tests/bootstrap/test_execution_role.py`` checks that against the handler lists cfn-lint ships), on this
  project's resources only;
- the **permissions boundary** ``<project>--boundary-<region>``, a managed policy every role dl's stacks
  create must carry (the execution role may create roles only with it): the most a function role can ever
  do is write its project's logs and read its project's databases;
- the **preview execution role** ``<project>--cfn-preview-<region>`` and the **preview boundary**
  ``<project>--preview-boundary-<region>``: what CloudFormation acts as for pull request previews
  (dl/apply/preview.py), on ``<project>--pr*`` resources only, so the CI preview role, which a pull request's own
  workflow uses, can never make CloudFormation touch production;
- the project's **shared CloudFront resources**: one cache policy and one origin access control, exported
  for the instance stacks (one per instance would exhaust the account's default quota of 20 cache policies).

Scoping, and its limits
-----------------------
Names with ``<project>--`` are the project's alone: a project name never holds ``--`` (single hyphens only),
so ``data--*`` cannot match anything of project ``data-eu``. Instance resources are named
``<project>-<instance>`` (renaming would replace every function and distribution), and ``data-*`` does match
``data-eu-x``. So: function roles live under the IAM path ``/dl/<project>/`` (exact), and a deny statement
refuses every action on a resource whose ``dl:project`` tag names another project (``aws:ResourceTag``),
and creating anything tagged for another project (``aws:RequestTag``); every stack dl makes is tagged
``dl:project`` and CloudFormation copies stack tags to the resources. Where a service does not put the tag in
the request context, only the name pattern applies (see the README's "Execution role" section).

Versions: ``VERSION`` is in the template's Metadata and Outputs. 1 was the bucket-only bootstrap of earlier
releases (no version recorded). ``dl plan`` refuses an older bootstrap and names the command that upgrades
it; ``dl apply`` upgrades it itself when the caller may (an administrator, the sandbox), and otherwise says
to run ``dl bootstrap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import botocore.exceptions
import click

from dl.aws.names import (
    BOOTSTRAP_VERSION,
    CERTIFICATE_REGION,
    METADATA_KEY,
    boundary_arn_sub,
    boundary_policy_name,
    execution_role_name,
    export_name,
    function_role_path,
    preview_boundary_arn_sub,
    preview_boundary_policy_name,
    preview_execution_role_name,
    preview_role_path,
)
from dl.commands.options import aws_context, load, manifest_option, sandbox_option

ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InsufficientCapabilities")


@dataclass(frozen=True)
class Deployed:
    """What apply needs to know of a deployed bootstrap: version, bucket, the execution role's ARN."""

    version: int
    bucket: str
    execution_role_arn: str


def outdated_message(project: str, region: str, version: int) -> str:
    return (
        f"the bootstrap stack {project}--bootstrap in {region} is version {version}; this dl needs version "
        f"{BOOTSTRAP_VERSION}. Upgrade it once, with administrator credentials: `dl bootstrap` (in the manifest's folder, "
        f"region {region}); then plan again"
    )


def denied_message(project: str, region: str, what: str, detail: str) -> str:
    return (
        f"{what} the bootstrap stack {project}--bootstrap in {region}, and these credentials may not ({detail}). "
        "The CI roles cannot change it by design: run `dl bootstrap` once with administrator credentials, "
        "then apply again"
    )


def is_access_denied(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code") in ACCESS_DENIED
    text = str(exc)
    return any(code in text for code in ACCESS_DENIED) or "not authorized to perform" in text


# --- the template -------------------------------------------------------------------------------------------


def _sub(text: str) -> dict:
    return {"Fn::Sub": text}


def _bucket_arn(suffix: str = "") -> dict:
    arn = {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    return {"Fn::Join": ["", [arn, suffix]]} if suffix else arn


def _project_tag_guards(project: str) -> list[dict]:
    """Deny acting on (or creating) anything whose dl:project tag names another project."""
    return [
        {
            "Sid": "NothingOfAnotherProject",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {"aws:ResourceTag/dl:project": project},
                "Null": {"aws:ResourceTag/dl:project": "false"},
            },
        },
        {
            "Sid": "NothingTaggedForAnotherProject",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {"aws:RequestTag/dl:project": project},
                "Null": {"aws:RequestTag/dl:project": "false"},
            },
        },
    ]


def execution_policy(project: str) -> dict:
    """What CloudFormation may do with the execution role: the handlers' calls on this project's resources.

    Service wildcards (``lambda:*``, ``logs:*``, ``cloudfront:*``, ``apigateway:*``) are scoped to the
    project's resource names: the handlers' lists change between releases and hold calls for features a
    template may switch on later (a CDK bootstrap's execution role is wider still: AdministratorAccess).
    """
    account = "${AWS::AccountId}"
    partition = "${AWS::Partition}"
    region = "${AWS::Region}"
    roles = f"arn:{partition}:iam::{account}:role{function_role_path(project)}*"
    boundary = boundary_arn_sub(project)
    statements = [
        {
            "Sid": "FunctionLogGroups",
            "Effect": "Allow",
            "Action": "logs:*",
            "Resource": _sub(f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}-*"),
        },
        {
            "Sid": "FindLogGroups",
            "Effect": "Allow",
            "Action": "logs:DescribeLogGroups",
            "Resource": "*",
        },
        {
            "Sid": "Functions",
            "Effect": "Allow",
            "Action": "lambda:*",
            "Resource": _sub(f"arn:{partition}:lambda:{region}:{account}:function:{project}-*"),
        },
        {
            "Sid": "FunctionCode",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _bucket_arn("/packages/*"),
        },
        {
            "Sid": "FunctionRolesOnlyWithTheBoundary",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:AttachRolePolicy",
                "iam:PutRolePermissionsBoundary",
            ],
            "Resource": _sub(roles),
            "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary}},
        },
        {
            "Sid": "FunctionRoles",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
            "Resource": _sub(roles),
        },
        {
            # Function roles of releases before the boundary had no path; CloudFormation replaces them (the
            # path changed) and deletes the old ones: read and delete only.
            "Sid": "RemoveUnboundedFunctionRoles",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
            "Resource": _sub(f"arn:{partition}:iam::{account}:role/{project}-*"),
        },
        {
            "Sid": "PassFunctionRolesToLambdaOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": _sub(roles),
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
        {
            "Sid": "HttpApis",
            "Effect": "Allow",
            "Action": "apigateway:*",
            "Resource": [
                _sub(f"arn:{partition}:apigateway:{region}::/apis"),
                _sub(f"arn:{partition}:apigateway:{region}::/apis/*"),
                _sub(f"arn:{partition}:apigateway:{region}::/tags/*"),
            ],
        },
        {
            "Sid": "Distributions",
            "Effect": "Allow",
            "Action": "cloudfront:*",
            "Resource": [
                _sub(f"arn:{partition}:cloudfront::{account}:distribution/*"),
                _sub(f"arn:{partition}:cloudfront::{account}:function/{project}-*"),
            ],
        },
        _cloudfront_creates(),
        {
            # Releases before the shared ones made a cache policy and an origin access control per instance;
            # CloudFormation deletes them once the distribution uses the project's (neither is taggable, and
            # CloudFront refuses to delete one still in use).
            "Sid": "RemovePerInstanceCachePoliciesAndOriginAccessControls",
            "Effect": "Allow",
            "Action": [
                "cloudfront:GetCachePolicy",
                "cloudfront:DeleteCachePolicy",
                "cloudfront:GetOriginAccessControl",
                "cloudfront:DeleteOriginAccessControl",
            ],
            "Resource": [
                _sub(f"arn:{partition}:cloudfront::{account}:cache-policy/*"),
                _sub(f"arn:{partition}:cloudfront::{account}:origin-access-control/*"),
            ],
        },
        {
            "Sid": "Certificates",
            "Effect": "Allow",
            "Action": [
                "acm:DescribeCertificate",
                "acm:DeleteCertificate",
                "acm:AddTagsToCertificate",
                "acm:RemoveTagsFromCertificate",
                "acm:ListTagsForCertificate",
                "acm:UpdateCertificateOptions",
            ],
            "Resource": _sub(f"arn:{partition}:acm:{CERTIFICATE_REGION}:{account}:certificate/*"),
        },
        {
            "Sid": "RequestCertificates",
            "Effect": "Allow",
            "Action": "acm:RequestCertificate",
            "Resource": "*",
        },
        {
            "Sid": "FindHostedZones",
            "Effect": "Allow",
            "Action": "route53:ListHostedZones",
            "Resource": "*",
        },
        {
            "Sid": "DnsRecords",
            "Effect": "Allow",
            "Action": [
                "route53:GetHostedZone",
                "route53:ListResourceRecordSets",
                "route53:ChangeResourceRecordSets",
            ],
            "Resource": _sub(f"arn:{partition}:route53:::hostedzone/*"),
        },
        {
            "Sid": "DnsChanges",
            "Effect": "Allow",
            "Action": "route53:GetChange",
            "Resource": _sub(f"arn:{partition}:route53:::change/*"),
        },
        {
            "Sid": "NeverUnboundARole",
            "Effect": "Deny",
            "Action": "iam:DeleteRolePermissionsBoundary",
            "Resource": "*",
        },
        {
            "Sid": "NeverTheBootstrapItself",
            "Effect": "Deny",
            "Action": "iam:*",
            "Resource": [
                _sub(f"arn:{partition}:iam::{account}:role/{project}--*"),
                _sub(f"arn:{partition}:iam::{account}:policy/{project}--*"),
            ],
        },
        *_project_tag_guards(project),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def boundary_policy(project: str) -> dict:
    """The most any role of the project's stacks may do: write its logs, read the project's databases, write
    and read responses too large for Lambda (under ``responses/``)."""
    account = "${AWS::AccountId}"
    partition = "${AWS::Partition}"
    region = "${AWS::Region}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ProjectFunctionLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": _sub(
                    f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}-*:*"
                ),
            },
            {
                "Sid": "ProjectDatabases",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": _bucket_arn("/databases/*"),
            },
            {
                "Sid": "ProjectLargeResponses",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                "Resource": _bucket_arn("/responses/*"),
            },
        ],
    }


# --- previews: their own execution role and boundary (dl/apply/preview.py) -----------------------------------


def _only_preview_resources() -> list[dict]:
    """HTTP APIs and CloudFront resources have generated ids, so no name scopes them: deny acting on one that
    is not a preview's (not tagged dl:preview, and not being created with that tag), and deny tagging one that
    is not already a preview's (which would make it one)."""
    return [
        {
            "Sid": "OnlyPreviewApisAndDistributions",
            "Effect": "Deny",
            "Action": ["apigateway:*", "cloudfront:*"],
            # distributions and APIs only: CloudFront Functions carry no tags (no aws:ResourceTag) and are
            # scoped by name (<project>--pr*) in the allow
            "Resource": ["arn:*:cloudfront::*:distribution/*", "arn:*:apigateway:*::/*"],
            "Condition": {
                "Null": {"aws:ResourceTag/dl:preview": "true", "aws:RequestTag/dl:preview": "true"}
            },
        },
        {
            "Sid": "NeverTagAnotherResourceAsAPreview",
            "Effect": "Deny",
            "Action": ["cloudfront:TagResource", "cloudfront:UntagResource", "apigateway:*"],
            "Resource": ["arn:*:cloudfront::*:*", "arn:*:apigateway:*::/tags/*"],
            # a resource of a dl project that is not a preview's (production's) may not be tagged as one; a
            # distribution being created has no tags yet (CreateDistributionWithTags is authorised as
            # TagResource too), so the resource's own dl:project tag is what marks production
            "Condition": {
                "Null": {"aws:ResourceTag/dl:preview": "true", "aws:ResourceTag/dl:project": "false"}
            },
        },
    ]


def _cloudfront_creates() -> dict:
    """CreateDistribution and CreateFunction name no resource type in the Service Authorization Reference
    (CloudFront's API permissions table: "Resources: *"), so only "*" grants them; what is created is then acted
    on under the scoped statements. (The CreateDistributionWithTags API is authorised as CreateDistribution plus
    TagResource: there is no IAM action of that name.)"""
    return {
        "Sid": "CreateDistributionsAndFunctions",
        "Effect": "Allow",
        "Action": [
            "cloudfront:CreateDistribution",
            "cloudfront:CreateFunction",
        ],
        "Resource": "*",
    }


def preview_execution_policy(project: str) -> dict:
    """What CloudFormation may do for a preview: the handlers' calls on ``<project>--pr*`` resources only.

    A pull request controls its own workflow, so everything a preview stack's template could ask for must stay
    inside the previews: functions and log groups ``<project>--pr*``, roles under ``/dl/<project>/previews/``
    with the previews' boundary, code from ``previews/packages/``; HTTP APIs and (with --preview-cdn)
    CloudFront only on resources tagged ``dl:preview``. No certificates, no DNS (a preview has no domain)."""
    account = "${AWS::AccountId}"
    partition = "${AWS::Partition}"
    region = "${AWS::Region}"
    roles = f"arn:{partition}:iam::{account}:role{preview_role_path(project)}*"
    statements = [
        {
            "Sid": "PreviewLogGroups",
            "Effect": "Allow",
            "Action": "logs:*",
            "Resource": _sub(f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}--pr*"),
        },
        {"Sid": "FindLogGroups", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        {
            "Sid": "PreviewFunctions",
            "Effect": "Allow",
            "Action": "lambda:*",
            "Resource": _sub(f"arn:{partition}:lambda:{region}:{account}:function:{project}--pr*"),
        },
        {
            "Sid": "PreviewFunctionCode",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _bucket_arn("/previews/packages/*"),
        },
        {
            "Sid": "PreviewFunctionRolesOnlyWithThePreviewBoundary",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:AttachRolePolicy",
                "iam:PutRolePermissionsBoundary",
            ],
            "Resource": _sub(roles),
            "Condition": {"StringEquals": {"iam:PermissionsBoundary": preview_boundary_arn_sub(project)}},
        },
        {
            "Sid": "PreviewFunctionRoles",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
            "Resource": _sub(roles),
        },
        {
            "Sid": "PassPreviewFunctionRolesToLambdaOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": _sub(roles),
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
        {
            "Sid": "PreviewHttpApis",
            "Effect": "Allow",
            "Action": "apigateway:*",
            "Resource": [
                _sub(f"arn:{partition}:apigateway:{region}::/apis"),
                _sub(f"arn:{partition}:apigateway:{region}::/apis/*"),
                _sub(f"arn:{partition}:apigateway:{region}::/tags/*"),
            ],
        },
        {
            "Sid": "PreviewDistributions",
            "Effect": "Allow",
            "Action": "cloudfront:*",
            "Resource": [
                _sub(f"arn:{partition}:cloudfront::{account}:distribution/*"),
                _sub(f"arn:{partition}:cloudfront::{account}:function/{project}--pr*"),
            ],
        },
        _cloudfront_creates(),
        *_only_preview_resources(),
        {
            "Sid": "NeverUnboundARole",
            "Effect": "Deny",
            "Action": "iam:DeleteRolePermissionsBoundary",
            "Resource": "*",
        },
        {
            "Sid": "NeverTheBootstrapItself",
            "Effect": "Deny",
            "Action": "iam:*",
            "Resource": [
                _sub(f"arn:{partition}:iam::{account}:role/{project}--*"),
                _sub(f"arn:{partition}:iam::{account}:policy/{project}--*"),
            ],
        },
        *_project_tag_guards(project),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def preview_boundary_policy(project: str) -> dict:
    """The most a preview's function role may do: write previews' logs, read previews' databases."""
    account = "${AWS::AccountId}"
    partition = "${AWS::Partition}"
    region = "${AWS::Region}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PreviewFunctionLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": _sub(
                    f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}--pr*:*"
                ),
            },
            {
                "Sid": "PreviewDatabases",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": _bucket_arn("/previews/databases/*"),
            },
        ],
    }


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
                        "Resource": [_bucket_arn(), _bucket_arn("/*")],
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
        "Name": _sub(f"{project}--${{AWS::Region}}"),
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
    role_name = _sub(execution_role_name(project, "${AWS::Region}"))
    resources = {
        "ArtifactBucket": bucket,
        "ArtifactBucketPolicy": bucket_policy,
        "PermissionsBoundary": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "ManagedPolicyName": _sub(boundary_policy_name(project, "${AWS::Region}")),
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
                "ManagedPolicyName": _sub(preview_boundary_policy_name(project, "${AWS::Region}")),
                "Description": f"datasette-lambda {project}: the most any role of a preview may do",
                "PolicyDocument": preview_boundary_policy(project),
            },
        },
        "PreviewExecutionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": _sub(preview_execution_role_name(project, "${AWS::Region}")),
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
                    "Name": _sub(f"{project}--${{AWS::Region}}"),
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


# --- `dl bootstrap` ---------------------------------------------------------------------------------------


@click.command("bootstrap")
@manifest_option
@sandbox_option
def bootstrap_command(manifest_path, sandbox):
    """Create or upgrade the project's bootstrap stack (bucket, execution role, boundary, CloudFront).

    Run it once per project and region with administrator credentials (the CI roles cannot change it);
    again after upgrading dl when `dl plan` asks for it.
    """
    from dl.apply.executor import Executor
    from dl.aws import secrets
    from dl.aws.client import Aws
    from dl.aws.observed import observe

    manifest = load(manifest_path, check_files=False)
    click.get_current_context().with_resource(aws_context(sandbox, manifest.region))
    aws = Aws(manifest.region)
    executor = Executor(aws, manifest, log=lambda line: click.echo(line, err=True))
    deployed = executor.ensure_bootstrap(observe(aws, manifest.project), force=True)
    secrets.ensure_keys(aws, deployed.bucket)  # both secrets keys, so the first plan can fingerprint
    click.echo(
        f"Bootstrap {manifest.project}--bootstrap in {aws.region}: version {BOOTSTRAP_VERSION}, bucket {deployed.bucket}, "
        f"execution role {deployed.execution_role_arn}"
    )
