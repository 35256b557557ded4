"""Where each database travels: in the package, or left in the artifact bucket (fetched at cold start).

:func:`decide_locations` inlines the smallest databases while the package stays under Lambda's 250 MB unzipped
limit (with headroom, and under an optional inline limit) and explains each decision in one line for the user;
the rest get a content-addressed S3 key. :func:`human` and :func:`limit_share` phrase sizes for those lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dl.build.hashing import sha256_file

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: "Unzipped size must be smaller than 262144000 bytes" (250 MiB)
HEADROOM = 16 * 1024 * 1024  # kept free below the limit for the handler, instance.json and later growth
TMP_DEFAULT = 512 * 1024 * 1024  # Lambda's default /tmp (ephemeral storage), where S3 databases land


@dataclass(frozen=True)
class DatabaseDecision:
    """Where one database travels: inside the package, or in the artifact bucket (fetched on cold start)."""

    name: str
    file: str  # file name inside dl_instance/databases/ (or /tmp when fetched)
    sha256: str
    size: int
    location: str  # "inline" | "s3"
    key: str  # content-addressed S3 key, always set: "databases/<sha256>.db"
    reason: str  # one line for the user
    source: Path  # the file on disk


def decide_locations(
    databases, dependencies_size: int, inline_limit: int | None = None, *, key_prefix: str = ""
) -> tuple:
    """Inline the smallest databases while the package stays under Lambda's limit; the rest go to S3.

    Pure apart from hashing (``sha256_file``, cached). Returns DatabaseDecision tuples in manifest order.
    """
    budget = LAMBDA_UNZIPPED_LIMIT - HEADROOM - dependencies_size
    sized = [(db, db.path.stat().st_size) for db in databases]
    used, inline = 0, set()
    for db, size in sorted(sized, key=lambda item: (item[1], item[0].name)):
        if used + size <= budget and (inline_limit is None or used + size <= inline_limit):
            inline.add(db.name)
            used += size
    s3_total = sum(size for db, size in sized if db.name not in inline)
    decisions = []
    for db, size in sized:
        digest = sha256_file(db.path)
        location = "inline" if db.name in inline else "s3"
        reason = _reason(db, size, location, used, budget, dependencies_size, inline_limit, s3_total)
        decisions.append(
            DatabaseDecision(
                name=db.name,
                file=f"{db.name}.db",
                sha256=digest,
                size=size,
                location=location,
                key=f"{key_prefix}databases/{digest}.db",
                reason=reason,
                source=db.path,
            )
        )
    return tuple(decisions)


def _reason(db, size, location, used, budget, deps, inline_limit, s3_total) -> str:
    head = f"{db.path.name} ({human(size)})"
    if location == "inline":
        return (
            f"{head}: inlined; with all inlined databases the package is {human(deps + used)} unzipped, "
            f"{limit_share(deps + used)}"
        )
    if inline_limit is not None and size <= budget:
        why = f"inlining it would pass the inline limit of {human(inline_limit)}"
    else:
        why = (
            f"inlining it would pass Lambda's 250 MB unzipped limit (dependencies {human(deps)}, "
            f"inlined databases {human(used)}, {human(HEADROOM)} kept free for the handler and instance files)"
        )
    tail = "; it is fetched from S3 into /tmp on cold start"
    if s3_total > TMP_DEFAULT:
        tail += f" (S3 databases total {human(s3_total)}: more than Lambda's default 512 MB /tmp)"
    return f"{head}: left for S3; {why}{tail}"


def limit_share(unzipped: int) -> str:
    """'3% of Lambda's 250 MB unzipped limit': how much of it a package uses."""
    share = unzipped / LAMBDA_UNZIPPED_LIMIT
    shown = f"{share:.0%}" if share >= 0.01 or share == 0 else "under 1%"
    return f"{shown} of Lambda's 250 MB unzipped limit"


def human(size: int) -> str:
    """'2.1 MB' (decimal units, like AWS's documentation)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
