"""How requests reach an instance's function: a Function URL or an HTTP API, CloudFront in front, DNS records.

Pure parts of the instance template (dl/aws/templates.py puts them together). With ``cdn: true`` the
distribution's cache policy and (for function URLs) its origin access control are the project's, shared,
imported from its bootstrap stack (dl/aws/bootstrap.py); the viewer-request function's code is
dl/aws/cloudfront_function.py. Behind CloudFront a function URL takes IAM-signed requests from the distribution
only, and an HTTP API origin gets a secret header (``ORIGIN_SECRET_HEADER``) the function checks.
"""

from __future__ import annotations

from typing import Any

from dl.aws import names
from dl.aws.cloudfront_function import RUNTIME as CLOUDFRONT_RUNTIME
from dl.aws.cloudfront_function import viewer_request_code
from dl.aws.intrinsics import host_of, sub, unique_name
from dl.manifest.model import Instance

ORIGIN_SECRET_HEADER = "x-dl-origin-secret"  # checked by dl/runtime when DL_ORIGIN_SECRET is set
ORIGIN_SECRET_PARAMETER = "OriginSecret"  # NoEcho: the header CloudFront sends to an HTTP API origin
CLOUDFRONT_HOSTED_ZONE_ID = "Z2FDTNDATAQYW2"  # fixed zone of every CloudFront alias target
ORIGIN_ID = "function"
ORIGIN_READ_TIMEOUT_MAX = 60  # CloudFront's limit without a quota increase
HTTP_API_TIMEOUT_MAX = 30  # an HTTP API integration times out after at most 30 s


def function_url_resources(instance: Instance) -> dict:
    """Function URL: IAM-authenticated behind CloudFront (only the distribution may call), else public."""
    if instance.cdn:
        principal, auth = "cloudfront.amazonaws.com", "AWS_IAM"
        source = {"SourceArn": _distribution_arn()}
    else:
        principal, auth, source = "*", "NONE", {}
    return {
        "FunctionUrl": {
            "Type": "AWS::Lambda::Url",
            "Properties": {
                "TargetFunctionArn": {"Ref": "Function"},
                "AuthType": auth,
                "InvokeMode": "BUFFERED",
            },
        },
        # Since October 2025 a function URL needs both permissions (InvokeFunctionUrl and InvokeFunction).
        "FunctionUrlPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunctionUrl",
                "FunctionName": {"Ref": "Function"},
                "Principal": principal,
                "FunctionUrlAuthType": auth,
                **source,
            },
        },
        "FunctionInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "Function"},
                "Principal": principal,
                "InvokedViaFunctionUrl": True,
                **source,
            },
        },
    }


def _distribution_arn() -> dict:
    return sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}")


def http_api_resources(name: str, instance: Instance) -> dict:
    """An HTTP API ($default route and stage, payload 2.0); only this API may invoke the function."""
    return {
        "HttpApi": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": name,
                "Description": f"Datasette: instance {instance.name}",
                "ProtocolType": "HTTP",
            },
        },
        "HttpApiIntegration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": {"Ref": "HttpApi"},
                "IntegrationType": "AWS_PROXY",
                "IntegrationUri": {"Fn::GetAtt": ["Function", "Arn"]},
                "PayloadFormatVersion": "2.0",
                "TimeoutInMillis": min(instance.timeout, HTTP_API_TIMEOUT_MAX) * 1000,
            },
        },
        "HttpApiRoute": {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": {"Ref": "HttpApi"},
                "RouteKey": "$default",
                "Target": sub("integrations/${HttpApiIntegration}"),
            },
        },
        "HttpApiStage": {
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {"ApiId": {"Ref": "HttpApi"}, "StageName": "$default", "AutoDeploy": True},
        },
        "HttpApiPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "Function"},
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": sub(
                    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*"
                ),
            },
        },
    }


def cdn_resources(project: str, name: str, instance: Instance, certificate_arn: str | None) -> dict:
    """CloudFront: viewer-request function and the distribution. The cache policy and (for function URLs)
    the origin access control are the project's, shared, from its bootstrap stack (dl/aws/bootstrap.py)."""
    return {
        "EdgeFunction": {
            "Type": "AWS::CloudFront::Function",
            "Properties": {
                "Name": unique_name(name),
                "AutoPublish": True,
                "FunctionCode": viewer_request_code(instance.prefix),
                "FunctionConfig": {
                    "Comment": f"{name}: X-Forwarded-Host and prefix {instance.prefix}"[:128],
                    "Runtime": CLOUDFRONT_RUNTIME,
                },
            },
        },
        "Distribution": {
            "Type": "AWS::CloudFront::Distribution",
            "Properties": {
                "DistributionConfig": _distribution_config(project, name, instance, certificate_arn)
            },
        },
    }


def _distribution_config(project: str, name: str, instance: Instance, certificate_arn: str | None) -> dict:
    origin: dict[str, Any] = {
        "Id": ORIGIN_ID,
        "CustomOriginConfig": {
            "OriginProtocolPolicy": "https-only",
            "OriginSSLProtocols": ["TLSv1.2"],
            "OriginReadTimeout": min(instance.timeout, ORIGIN_READ_TIMEOUT_MAX),
        },
    }
    if instance.endpoint == "http-api":
        origin["DomainName"] = host_of({"Fn::GetAtt": ["HttpApi", "ApiEndpoint"]})
        origin["OriginCustomHeaders"] = [
            {"HeaderName": ORIGIN_SECRET_HEADER, "HeaderValue": {"Ref": ORIGIN_SECRET_PARAMETER}}
        ]
        methods = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
    else:
        origin["DomainName"] = host_of({"Fn::GetAtt": ["FunctionUrl", "FunctionUrl"]})
        origin["OriginAccessControlId"] = names.import_value(project, "origin-access-control-id")
        # OAC signs requests for Lambda, which refuses unsigned bodies: browsers' POSTs cannot pass.
        methods = ["GET", "HEAD", "OPTIONS"]
    behaviour = {
        "TargetOriginId": ORIGIN_ID,
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": methods,
        "CachedMethods": ["GET", "HEAD"],
        "Compress": True,
        "CachePolicyId": names.import_value(project, "cache-policy-id"),
        "FunctionAssociations": [
            {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": ["EdgeFunction", "FunctionARN"]}}
        ],
    }
    config: dict[str, Any] = {
        "Enabled": True,
        "Comment": f"datasette-lambda {name}"[:128],
        "HttpVersion": "http2and3",
        "IPV6Enabled": True,
        "PriceClass": "PriceClass_All",
        "Origins": [origin],
        # With a prefix the default behaviour only runs the edge function, which answers 404 (or redirects
        # /prefix to /prefix/); the prefix's own behaviour forwards to the function.
        "DefaultCacheBehavior": behaviour,
    }
    if instance.prefix != "/":
        config["CacheBehaviors"] = [{"PathPattern": f"{instance.prefix}*", **behaviour}]
    if instance.domain:
        config["Aliases"] = [instance.domain]
        config["ViewerCertificate"] = {
            "AcmCertificateArn": certificate_arn,
            "SslSupportMethod": "sni-only",
            "MinimumProtocolVersion": "TLSv1.2_2021",
        }
    else:
        config["ViewerCertificate"] = {"CloudFrontDefaultCertificate": True}
    return config


def dns_resources(instance: Instance, hosted_zone_id: str) -> dict:
    """Alias A and AAAA records to the distribution (aliases work at a zone apex, unlike CNAMEs)."""

    def record(kind: str) -> dict:
        return {
            "Type": "AWS::Route53::RecordSet",
            "Properties": {
                "HostedZoneId": hosted_zone_id,
                "Name": f"{instance.domain}.",
                "Type": kind,
                "AliasTarget": {
                    "DNSName": {"Fn::GetAtt": ["Distribution", "DomainName"]},
                    "HostedZoneId": CLOUDFRONT_HOSTED_ZONE_ID,
                    "EvaluateTargetHealth": False,
                },
            },
        }

    return {"DnsRecordA": record("A"), "DnsRecordAAAA": record("AAAA")}
