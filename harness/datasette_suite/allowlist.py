"""Tests of Datasette's suite that pass on the reference run and fail through dl, each with why.

Keys are ``(mode, test id or prefix of one)``: a key ending with ``::`` or ``.py`` names every test of that
file or class. Every entry says why the difference is not a defect of dl (or which defect it is, until fixed).
"""

from __future__ import annotations

ALLOWED: dict[tuple[str, str], str] = {
    ("prefix", "tests/test_csv.py::test_max_csv_mb"): (
        "timing: its query (a million-row join) runs into Datasette's 1 s sql_time_limit_ms on a loaded machine "
        "and answers 500; it failed the same way on the plain run, without dl"
    ),
}

# Link-audit findings that are not links Datasette or dl build: (field, how it starts) -> why.
AUDIT_EXPLAINED: dict[tuple[str, str], str] = {
    ("request", "/-/patterns"): (
        "Datasette's pattern portfolio (templates/patterns.html) is sample HTML with hard-coded links; "
        "plain Datasette under base_url has the same ones"
    ),
    ("url", "/login-as-root"): (
        "an author's literal absolute link in the fixtures' metadata (description_html), not a built link"
    ),
    ("url", "/prefix/"): "the test sets base_url to /prefix/ itself, after the client was made",
    ("request", "/prefix/"): "the test sets base_url to /prefix/ itself, after the client was made",
}


def allowed_reason(mode: str, test: str) -> str | None:
    """Why ``test`` may fail in ``mode`` although it passes on the reference run; None if it may not."""
    for (allowed_mode, pattern), reason in ALLOWED.items():
        if allowed_mode == mode and (
            test == pattern or (pattern.endswith(("::", ".py")) and test.startswith(pattern))
        ):
            return reason
    return None


def audit_reason(finding: dict) -> str | None:
    """Why a link-audit finding is not a link Datasette or dl builds; None if it is one."""
    for (field, start), reason in AUDIT_EXPLAINED.items():
        value = finding.get(field, "")
        if value.startswith(start) or value.startswith("/dlprefix" + start):
            return reason
    return None
