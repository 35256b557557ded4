"""The Action's hash-locked requirements cover dl's whole run-time closure, for every runner it supports.

The closure is walked from pyproject.toml (``[project] dependencies`` plus ``[build-system] requires``: the
Action installs dl itself with ``--no-deps --no-build-isolation``) through the metadata of the distributions
installed in the test environment, with environment markers evaluated for python 3.11-3.13 on Linux
x86_64/aarch64 and macOS arm64. Installing it needs the network, so it is not done here; the lock's shape is
what pip's ``--require-hashes`` mode demands (every line pinned with ``==``, every pin with a hash).
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "dl" / "build" / "lock" / "action.txt"
ENVIRONMENTS = [
    {
        "python_version": py,
        "python_full_version": f"{py}.0",
        "sys_platform": plat,
        "platform_system": system,
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    for py in ("3.11", "3.12", "3.13")
    for plat, system, machine in (
        ("linux", "Linux", "x86_64"),
        ("linux", "Linux", "aarch64"),
        ("darwin", "Darwin", "arm64"),
    )
]
NOT_PINNED_HERE = {"pip", "setuptools"}  # the test venv's own installers are older than the locked ones


def read_lock() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) from a pip requirements file in hash-checking form."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(
            r"([A-Za-z0-9_.-]+)==(\S+?)(?: ;[^-]*)?((?:\s+--hash=sha256:[0-9a-f]{64})+)", line
        )
        assert match, f"not a pinned, hashed requirement: {line[:80]}"
        pins[canonicalize_name(match[1])] = (match[2], re.findall(r"sha256:([0-9a-f]{64})", match[3]))
    return pins


def top_level() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [
        Requirement(r)
        for r in [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    ]


def closure() -> dict[str, list[Requirement]]:
    """name -> the requirements that pull it in, over every supported environment."""
    needed: dict[str, list[Requirement]] = {}
    pending = [(r, frozenset()) for r in top_level()]
    while pending:
        req, extras = pending.pop()
        if req.marker and not any(
            req.marker.evaluate({**default_environment(), **env, "extra": extra})
            for env in ENVIRONMENTS
            for extra in (extras or {""})
        ):
            continue
        name = canonicalize_name(req.name)
        first = name not in needed
        needed.setdefault(name, []).append(req)
        if not first and not req.extras:
            continue
        try:
            requires = distribution(req.name).requires or []
        except PackageNotFoundError:
            continue  # only needed on another platform: the lock must still hold it (checked below)
        pending += [(Requirement(r), frozenset(req.extras)) for r in requires]
    return needed


def test_every_line_is_pinned_with_hashes():
    pins = read_lock()
    assert len(pins) > 30
    assert all(hashes for _, hashes in pins.values())


def test_the_lock_covers_the_closure_of_dls_run_time_dependencies():
    pins, needed = read_lock(), closure()
    missing = sorted(set(needed) - set(pins))
    assert missing == [], f"not in {LOCK.name}: {missing}; run python dl/build/lock/regenerate.py --action"
    for name, requirers in needed.items():
        version = pins[name][0]
        for req in requirers:
            assert req.specifier.contains(version, prereleases=True), (
                f"{name}=={version} does not satisfy {req}"
            )
    extra = sorted(set(pins) - set(needed))
    assert extra == [], f"{LOCK.name} holds packages nothing requires: {extra}"


def test_the_lock_is_what_the_tests_run_with():
    for name, (version, _) in read_lock().items():
        if name in NOT_PINNED_HERE:
            continue
        try:
            installed = distribution(name).version
        except PackageNotFoundError:
            continue
        assert installed == version, f"tests run {name} {installed}, the Action installs {version}"
