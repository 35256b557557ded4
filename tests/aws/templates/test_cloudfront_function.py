"""The viewer-request CloudFront Function, run for real in Node (CloudFront's runtime is JavaScript too).

Needs `node` on PATH (Debian: `apt-get install nodejs`). The code is plain ES5, so any Node runs it as
CloudFront's cloudfront-js-2.0 runtime would.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dl.aws.cloudfront_function import viewer_request_code

HARNESS = """
var events = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(events.map(function (e) { return handler(e); })));
"""


def run(prefix: str, *requests: dict) -> list[dict]:
    """handler(event) for each request, evaluated by node."""
    node = shutil.which("node")
    assert node, "node is needed to run the CloudFront Function (apt-get install nodejs)"
    events = [{"version": "1.0", "context": {"eventType": "viewer-request"}, "request": r} for r in requests]
    out = subprocess.run(
        [node, "-e", viewer_request_code(prefix) + HARNESS],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def request(uri: str, **headers: str) -> dict:
    return {
        "method": "GET",
        "uri": uri,
        "querystring": {"_size": {"value": "10"}},
        "headers": {k.replace("_", "-"): {"value": v} for k, v in headers.items()},
        "cookies": {},
    }


def test_viewer_host_becomes_x_forwarded_host():
    (out,) = run("/", request("/northwind/orders", host="data.example.com"))
    assert out["headers"]["x-forwarded-host"] == {"value": "data.example.com"}
    assert out["uri"] == "/northwind/orders"
    assert out["querystring"] == {"_size": {"value": "10"}}  # the request passes on unchanged otherwise


def test_a_forwarded_host_sent_by_the_viewer_is_overwritten():
    (out,) = run("/", request("/", host="d111.cloudfront.net", x_forwarded_host="evil.example"))
    assert out["headers"]["x-forwarded-host"] == {"value": "d111.cloudfront.net"}


def test_without_host_no_forwarded_host_passes():
    (out,) = run("/", request("/", x_forwarded_host="evil.example"))
    assert "x-forwarded-host" not in out["headers"]


def test_prefix_paths_pass_and_others_get_404_at_the_edge():
    inside, root, outside, sibling = run(
        "/v1/data/",
        request("/v1/data/northwind", host="h"),
        request("/v1/data/", host="h"),
        request("/other", host="h"),
        request("/v1/database", host="h"),
    )
    assert inside["headers"]["x-forwarded-host"] == {"value": "h"}
    assert root["uri"] == "/v1/data/"
    for answer in (outside, sibling):
        assert answer["statusCode"] == 404
        assert "/v1/data/" in answer["body"]["data"]


def test_prefix_without_trailing_slash_redirects():
    (out,) = run("/v1/data/", request("/v1/data", host="h"))
    assert out["statusCode"] == 301
    assert out["headers"]["location"] == {"value": "/v1/data/?_size=10"}


def test_code_is_stable_and_checks_its_input():
    assert viewer_request_code("/a/") == viewer_request_code("/a/")
    assert len(viewer_request_code("/a/").encode()) < 10 * 1024  # CloudFront Functions' size limit
    with pytest.raises(ValueError):
        viewer_request_code("a")


def test_prefix_redirect_keeps_the_query_string():
    plain, encoded, repeated, bare = run(
        "/v1/data/",
        {**request("/v1/data", host="h"), "querystring": {"a": {"value": "1"}}},
        # CloudFront passes names and values as the viewer sent them (still percent-encoded)
        {**request("/v1/data", host="h"), "querystring": {"q": {"value": "caf%C3%A9%20au%20lait"}}},
        {
            **request("/v1/data", host="h"),
            "querystring": {
                "_facet": {"value": "city", "multiValue": [{"value": "city"}, {"value": "state"}]},
                "_size": {"value": "5"},
            },
        },
        {**request("/v1/data", host="h"), "querystring": {}},
    )
    assert plain["statusCode"] == 301
    assert plain["headers"]["location"] == {"value": "/v1/data/?a=1"}
    assert encoded["headers"]["location"] == {"value": "/v1/data/?q=caf%C3%A9%20au%20lait"}
    assert repeated["headers"]["location"] == {"value": "/v1/data/?_facet=city&_facet=state&_size=5"}
    assert bare["headers"]["location"] == {"value": "/v1/data/"}
