"""Real git checkouts like the ones GitHub's runners make, for naming what a plan was made from.

``merge_checkout`` builds a repository with a base commit, a pull request commit on a branch and a merge of
the two (GitHub's test merge commit ``refs/pull/N/merge``), then clones the merge at depth 1 as
``actions/checkout`` does by default.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@dataclass(frozen=True)
class MergeCheckout:
    path: Path  # the shallow clone of the merge commit
    base: str
    head: str
    merge: str


def merge_checkout(tmp_path: Path, populate: Callable[[Path], None] | None = None) -> MergeCheckout:
    """A depth-1 clone of a test merge commit; ``populate(folder)`` writes the pull request's files."""
    origin = tmp_path / "origin"
    origin.mkdir(parents=True)
    git(origin, "init", "-q", "-b", "main")
    (origin / "README").write_text("base\n")
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "base")
    git(origin, "checkout", "-q", "-b", "pr")
    if populate is None:
        (origin / "change.txt").write_text("pr\n")
    else:
        populate(origin)
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "pull request")
    head = git(origin, "rev-parse", "HEAD")
    git(origin, "checkout", "-q", "main")
    (origin / "other.txt").write_text("main moved on\n")
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "main moves on")
    base = git(origin, "rev-parse", "HEAD")
    git(origin, "merge", "-q", "--no-ff", "-m", "Merge pr into main", "pr")
    merge = git(origin, "rev-parse", "HEAD")
    clone = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(clone))
    return MergeCheckout(clone, base, head, merge)
