"""Tests of Datasette's suite that pass on the reference run and fail through dl, each with why.

Keys are ``(mode, test id or prefix of one)``: a key ending with ``::`` or ``.py`` names every test of that
file or class. Every entry says why the difference is not a defect of dl (or which defect it is, until fixed).
"""

from __future__ import annotations

ALLOWED: dict[tuple[str, str], str] = {}


def allowed_reason(mode: str, test: str) -> str | None:
    """Why ``test`` may fail in ``mode`` although it passes on the reference run; None if it may not."""
    for (allowed_mode, pattern), reason in ALLOWED.items():
        if allowed_mode == mode and (
            test == pattern or (pattern.endswith(("::", ".py")) and test.startswith(pattern))
        ):
            return reason
    return None
