"""Per-account CloudFront quotas that dl's per-instance resources count against, checked by `dl apply`.

Each instance with ``cdn: true`` has its own distribution and viewer-request CloudFront Function (they carry
the instance's prefix and aliases, so they cannot be shared like the cache policy). Both are counted per AWS
account, across every project and tool: the 101st function fails its create minutes into an apply. So before
an apply that adds distributions, dl counts what the account has and warns when the result nears the default
quota (CloudFront developer guide, "Quotas"): 500 distributions, 100 CloudFront Functions. An account with a
raised quota sees an early warning, never a refusal.

Only apply counts: ``ListDistributions`` returns every distribution's origin custom headers (the origin secret
among them), which the plan role must not read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

NEAR_FRACTION = 0.8  # warn once the account would hold this share of a quota


@dataclass(frozen=True)
class Quota:
    name: str
    default: int


DISTRIBUTIONS = Quota("CloudFront distributions", 500)
FUNCTIONS = Quota("CloudFront Functions", 100)


def warnings(counts: dict[Quota, int], adding: int) -> list[str]:
    """A line for each quota the account would near after `adding` more of each (pure)."""
    out = []
    for quota, count in counts.items():
        after = count + adding
        if after >= quota.default * NEAR_FRACTION:
            out.append(
                f"warning: this account has {count} {quota.name} and this apply adds {adding}; the default "
                f"quota is {quota.default} per account. Check the account's quota in Service Quotas "
                "(CloudFront) and ask for an increase before it is reached: creating one more then fails"
            )
    return out


def cloudfront_counts(client) -> dict[Quota, int]:
    """How many distributions and CloudFront Functions the account has (every page)."""
    return {
        DISTRIBUTIONS: _count(lambda marker: client.list_distributions(**marker)["DistributionList"]),
        FUNCTIONS: _count(lambda marker: client.list_functions(**marker)["FunctionList"]),
    }


def _count(page: Callable[[dict], dict]) -> int:
    total, marker = 0, {}
    while True:
        listing = page(marker)
        total += len(listing.get("Items") or [])
        following = listing.get("NextMarker")
        if not following:
            return total
        marker = {"Marker": following}
