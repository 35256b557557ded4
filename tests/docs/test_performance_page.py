"""docs/performance.md keeps, beside its figures, the command that reproduces each of them."""

from __future__ import annotations

import re

from tests.docs.pages import ROOT, page

PERFORMANCE = page("performance.md")


def test_every_benchmark_is_in_the_reproduce_commands():
    reproduce = PERFORMANCE[PERFORMANCE.index("Reproduce") :]
    named = set(re.findall(r"^ +\S*python (benchmarks/\w+\.py)", reproduce, re.M))
    runnable = {
        f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text()
    }
    assert runnable <= named, (
        f"benchmarks without their command in docs/performance.md: {sorted(runnable - named)}"
    )
    assert all((ROOT / name).exists() for name in named), named
