"""The CloudFront Function (viewer-request, ``cloudfront-js-2.0``) in front of every instance with a CDN.

It runs at the edge on every viewer request, before the cache is looked up, and:

1. copies the viewer's ``Host`` into ``X-Forwarded-Host`` (always overwriting what the viewer sent, so it cannot
   be spoofed): the origin (Function URL or HTTP API) only sees its own host name, and Datasette needs the
   public one for absolute URLs such as ``next_url``. The header is part of the cache key, so pages rendered for
   one host name are never served under another;
2. enforces the instance's ``prefix``: ``/prefix`` redirects to ``/prefix/`` keeping the query string (CloudFront
   hands a Function each name and value as the viewer sent them, still percent-encoded, so they are joined
   back unchanged; repeated names come as ``multiValue``); any path outside the prefix is answered ``404`` at
   the edge and never reaches (or bills) the function.

The code is generated from the prefix only, so the same prefix gives byte-identical code (a stable template).
It is plain ES5 (``var``, ``indexOf``), which both CloudFront runtimes and Node run unchanged.
"""

from __future__ import annotations

import json

RUNTIME = "cloudfront-js-2.0"
FORWARDED_HOST = "x-forwarded-host"

_CODE = """\
var PREFIX = %(prefix)s;

function queryString(querystring) {
  var parts = [];
  for (var name in querystring) {
    var entries = querystring[name].multiValue || [querystring[name]];
    for (var i = 0; i < entries.length; i++) {
      parts.push(entries[i].value === "" ? name : name + "=" + entries[i].value);
    }
  }
  return parts.length ? "?" + parts.join("&") : "";
}

function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (PREFIX !== "/" && uri === PREFIX.slice(0, -1)) {
    return {
      statusCode: 301,
      statusDescription: "Moved Permanently",
      headers: {
        location: {value: PREFIX + queryString(request.querystring || {})},
        "cache-control": {value: "max-age=3600"}
      }
    };
  }
  if (uri.indexOf(PREFIX) !== 0) {
    return {
      statusCode: 404,
      statusDescription: "Not Found",
      headers: {"content-type": {value: "text/plain; charset=utf-8"}, "cache-control": {value: "max-age=60"}},
      body: {encoding: "text", data: "Not found: this site serves " + PREFIX + "\\n"}
    };
  }
  var host = request.headers.host;
  if (host) {
    request.headers[%(header)s] = {value: host.value};
  } else {
    delete request.headers[%(header)s];
  }
  return request;
}
"""


def viewer_request_code(prefix: str) -> str:
    """JavaScript source of the viewer-request function for an instance served under ``prefix``.

    ``prefix`` is the manifest's canonical form: ``/`` or ``/a/b/`` (leading and trailing slash).
    """
    if not (prefix.startswith("/") and prefix.endswith("/")):
        raise ValueError(f"prefix must start and end with '/': {prefix!r}")
    return _CODE % {"prefix": json.dumps(prefix), "header": json.dumps(FORWARDED_HOST)}
