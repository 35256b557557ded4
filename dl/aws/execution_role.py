"""The CloudFormation execution role's policy and the permissions boundary: least privilege, on one project.

Both are part of the bootstrap stack (dl/aws/bootstrap.py). Only ``cloudformation.amazonaws.com`` may assume the
execution role ``<project>--cfn-exec-<region>``, and every instance and certificate change set is created with
it, so CloudFormation never acts with the caller's (short-lived CI) credentials. :func:`execution_policy` grants
what CloudFormation's own resource handlers call for the resource types dl's templates use
(``tests/aws/bootstrap/test_execution_role.py`` checks that against the handler lists cfn-lint ships), on this
project's resources only. :func:`boundary_policy` is the managed policy every role dl's stacks create must carry
(the execution role may create roles only with it): the most a function role can ever do is write its project's
logs and read its project's databases. The previews' role and boundary are dl/aws/preview_execution_role.py.

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
"""

from __future__ import annotations

from dl.aws.intrinsics import sub
from dl.aws.names import CERTIFICATE_REGION, boundary_arn_sub, function_role_path


def bucket_arn(suffix: str = "") -> dict:
    """The artifact bucket's ARN; with ``suffix`` (``"/databases/*"``), a pattern of its objects."""
    arn = {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    return {"Fn::Join": ["", [arn, suffix]]} if suffix else arn


def project_tag_guards(project: str) -> list[dict]:
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
            "Resource": sub(f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}-*"),
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
            "Resource": sub(f"arn:{partition}:lambda:{region}:{account}:function:{project}-*"),
        },
        {
            "Sid": "FunctionCode",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": bucket_arn("/packages/*"),
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
            "Resource": sub(roles),
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
            "Resource": sub(roles),
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
            "Resource": sub(f"arn:{partition}:iam::{account}:role/{project}-*"),
        },
        {
            "Sid": "PassFunctionRolesToLambdaOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": sub(roles),
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
        {
            "Sid": "HttpApis",
            "Effect": "Allow",
            "Action": "apigateway:*",
            "Resource": [
                sub(f"arn:{partition}:apigateway:{region}::/apis"),
                sub(f"arn:{partition}:apigateway:{region}::/apis/*"),
                sub(f"arn:{partition}:apigateway:{region}::/tags/*"),
            ],
        },
        {
            "Sid": "Distributions",
            "Effect": "Allow",
            "Action": "cloudfront:*",
            "Resource": [
                sub(f"arn:{partition}:cloudfront::{account}:distribution/*"),
                sub(f"arn:{partition}:cloudfront::{account}:function/{project}-*"),
            ],
        },
        cloudfront_creates(),
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
                sub(f"arn:{partition}:cloudfront::{account}:cache-policy/*"),
                sub(f"arn:{partition}:cloudfront::{account}:origin-access-control/*"),
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
            "Resource": sub(f"arn:{partition}:acm:{CERTIFICATE_REGION}:{account}:certificate/*"),
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
            "Resource": sub(f"arn:{partition}:route53:::hostedzone/*"),
        },
        {
            "Sid": "DnsChanges",
            "Effect": "Allow",
            "Action": "route53:GetChange",
            "Resource": sub(f"arn:{partition}:route53:::change/*"),
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
                sub(f"arn:{partition}:iam::{account}:role/{project}--*"),
                sub(f"arn:{partition}:iam::{account}:policy/{project}--*"),
            ],
        },
        *project_tag_guards(project),
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
                "Resource": sub(
                    f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}-*:*"
                ),
            },
            {
                "Sid": "ProjectDatabases",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": bucket_arn("/databases/*"),
            },
            {
                "Sid": "ProjectLargeResponses",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                "Resource": bucket_arn("/responses/*"),
            },
        ],
    }


def cloudfront_creates() -> dict:
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
