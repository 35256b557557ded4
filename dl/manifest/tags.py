"""Tags: the rules AWS sets for the manifest's own tags, and how many dl leaves for them.

Stack tags reach every resource of the stack that supports tags (Lambda function, IAM role, log group,
CloudFront distribution and function, HTTP API, S3 bucket, ACM certificate), so a manifest tag must satisfy the
strictest of those services. From their API references and CloudFormation resource schemas:

* characters: CloudFront documents only ``a-z A-Z 0-9``, space and ``_ . : / = + - @`` (IAM, ACM, Logs and S3
  also accept other Unicode letters, digits and whitespace);
* length: keys 1-128 characters, values 1-256 (a CloudFormation stack tag's value may not be empty, though
  most services accept that);
* ``aws:`` (any case) is reserved by AWS for keys and values; ``dl:`` is reserved for dl's own keys;
* count: 50 tags per resource (Lambda, IAM, CloudFront, S3, ACM, CloudFormation). Tags starting with ``aws:``
  (CloudFormation's own) do not count; dl's do. The resource carrying most of dl's tags is an instance stack's
  (:data:`OWN_TAGS_MAX`), so the manifest may hold ``TAGS_PER_RESOURCE - OWN_TAGS_MAX``.
"""

from __future__ import annotations

import string

TAG_PROJECT = "dl:project"
TAG_INSTANCE = "dl:instance"
TAG_DOMAIN = "dl:domain"  # on a certificate stack (one per domain): the domain its certificate is for
TAG_ROLE = "dl:role"  # "bootstrap" | "instance" | "certificate"
TAG_SPEC = "dl:spec-sha256"
TAG_COMMIT = "dl:commit"
TAG_DEPLOYED_AT = "dl:deployed-at"
TAG_TOOL = "dl:tool-version"
TAG_PREVIEW = "dl:preview"  # the pull request number of a preview's stack (dl/apply/preview.py)

TAGS_PER_RESOURCE = 50
# Every tag dl puts on an instance stack (dl.apply.executor: base_tags + instance tags), the stack with most of them
# (tests/apply/test_limits.py compares this with a deployed stack's tags).
OWN_INSTANCE_STACK_TAGS = (
    TAG_PROJECT,
    TAG_ROLE,
    TAG_TOOL,
    TAG_INSTANCE,
    TAG_SPEC,
    TAG_COMMIT,
    TAG_DEPLOYED_AT,
)
# A pull request's preview stack carries one more (dl/apply/preview.py), and the manifest's tags go on it too.
OWN_PREVIEW_STACK_TAGS = (*OWN_INSTANCE_STACK_TAGS, TAG_PREVIEW)
OWN_TAGS_MAX = len(OWN_PREVIEW_STACK_TAGS)
MANIFEST_TAGS_MAX = TAGS_PER_RESOURCE - OWN_TAGS_MAX
KEY_MAX = 128
VALUE_MAX = 256
ALLOWED = frozenset(string.ascii_letters + string.digits + " _.:/=+-@")
ALLOWED_IN_WORDS = "letters a-z and A-Z, digits, spaces and _ . : / = + - @"


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a manifest tag key (None: it can)."""
    if not key:
        return "a tag key may not be empty"
    if len(key) > KEY_MAX:
        return f"a tag key has at most {KEY_MAX} characters (this one has {len(key)})"
    if key.lower().startswith("aws:"):
        return "tag keys starting with 'aws:' are reserved by AWS"
    if key.startswith("dl:"):
        return "tag keys starting with 'dl:' are datasette-lambda's own"
    return _characters("a tag key", key)


def value_problem(value: str) -> str | None:
    """Why `value` cannot be a manifest tag value (None: it can)."""
    if not value:
        return "a tag value may not be empty (CloudFormation refuses empty stack tag values)"
    if len(value) > VALUE_MAX:
        return f"a tag value has at most {VALUE_MAX} characters (this one has {len(value)})"
    if value.lower().startswith("aws:"):
        return "tag values starting with 'aws:' are reserved by AWS"
    return _characters("a tag value", value)


def count_problem(count: int) -> str | None:
    if count <= MANIFEST_TAGS_MAX:
        return None
    return (
        f"{count} tags: at most {MANIFEST_TAGS_MAX} are allowed (AWS allows {TAGS_PER_RESOURCE} per resource "
        f"and datasette-lambda adds up to {OWN_TAGS_MAX} of its own)"
    )


def _characters(what: str, text: str) -> str | None:
    bad = sorted({c for c in text if c not in ALLOWED})
    if not bad:
        return None
    shown = " ".join(repr(c) for c in bad)
    return f"{what} may only hold {ALLOWED_IN_WORDS} (CloudFront's rule, the strictest); not {shown}"
