"""The preview execution role's policy and the preview boundary: what CloudFormation may do for a pull request.

Part of the bootstrap stack (dl/aws/bootstrap.py), like the production role (dl/aws/execution_role.py): the
**preview execution role** ``<project>--cfn-preview-<region>`` and the **preview boundary**
``<project>--preview-boundary-<region>`` are what CloudFormation acts as for pull request previews
(dl/apply/preview.py), on ``<project>--pr*`` resources only, so the CI preview role, which a pull request's own
workflow uses, can never make CloudFormation touch production.
"""

from __future__ import annotations

from dl.aws.execution_role import bucket_arn, cloudfront_creates, project_tag_guards
from dl.aws.intrinsics import sub
from dl.aws.names import preview_boundary_arn_sub, preview_role_path


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
            "Resource": sub(f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}--pr*"),
        },
        {"Sid": "FindLogGroups", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        {
            "Sid": "PreviewFunctions",
            "Effect": "Allow",
            "Action": "lambda:*",
            "Resource": sub(f"arn:{partition}:lambda:{region}:{account}:function:{project}--pr*"),
        },
        {
            "Sid": "PreviewFunctionCode",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": bucket_arn("/previews/packages/*"),
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
            "Resource": sub(roles),
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
            "Resource": sub(roles),
        },
        {
            "Sid": "PassPreviewFunctionRolesToLambdaOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": sub(roles),
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
        {
            "Sid": "PreviewHttpApis",
            "Effect": "Allow",
            "Action": "apigateway:*",
            "Resource": [
                sub(f"arn:{partition}:apigateway:{region}::/apis"),
                sub(f"arn:{partition}:apigateway:{region}::/apis/*"),
                sub(f"arn:{partition}:apigateway:{region}::/tags/*"),
            ],
        },
        {
            "Sid": "PreviewDistributions",
            "Effect": "Allow",
            "Action": "cloudfront:*",
            "Resource": [
                sub(f"arn:{partition}:cloudfront::{account}:distribution/*"),
                sub(f"arn:{partition}:cloudfront::{account}:function/{project}--pr*"),
            ],
        },
        cloudfront_creates(),
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
                sub(f"arn:{partition}:iam::{account}:role/{project}--*"),
                sub(f"arn:{partition}:iam::{account}:policy/{project}--*"),
            ],
        },
        *project_tag_guards(project),
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
                "Resource": sub(
                    f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{project}--pr*:*"
                ),
            },
            {
                "Sid": "PreviewDatabases",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": bucket_arn("/previews/databases/*"),
            },
        ],
    }
