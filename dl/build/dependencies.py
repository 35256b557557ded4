"""The dependency tree of a package: the target platform, the interpreter that compiles it, and pip.

:func:`ensure_dependencies` installs the lock closure of the instance's Datasette line
(``dl/build/lock/lambda.txt`` for 0.65, ``dl/build/lock/lambda-1.0a.txt`` for 1.0a: see
``dl/manifest/lines.py``) plus its plugins with ``pip install --target``, for the target's platform and Python
(:func:`target_spec`); the tree is then leaned and compiled (``dl/build/lean.py``) and cached under
``dl.build.hashing.cache_dir()/deps/<key>`` (:func:`dependency_key`: target, Python, platforms, lock, plugins,
compiler), so a second build neither downloads nor compiles.

Also here: finding a CPython of the target version on this machine (:func:`find_interpreter`: this one,
pyenv's, PATH's), the lock's pins without hashes (:func:`lock_pins`), and what a tree holds
(:func:`read_versions`, :func:`unpinned_plugins`, :func:`tree_size`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dl.build.hashing import cache_dir as tool_cache_dir
from dl.build.lean import compile_tree, lean_tree, make_sourceless
from dl.errors import DlError
from dl.manifest.lines import DEFAULT_LINE, lock_file
from dl.manifest.model import Instance

LOCK_FILE = lock_file(DEFAULT_LINE)  # the default line's; a build uses its Target's (Target.lock)
CACHE_FORMAT = 5  # bump when the install/lean/compile steps change what a cached tree contains
# glibc of the Lambda images: python3.11 runs on Amazon Linux 2 (2.26), 3.12+ on Amazon Linux 2023 (2.34).
LAMBDA_GLIBC = {"3.11": 26, "3.12": 34, "3.13": 34}
ARCHES = {"arm64": "aarch64", "x86_64": "x86_64"}

Log = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """The platform the dependency tree is installed for."""

    kind: str  # "lambda" | "host"
    python_version: str  # "3.13"
    platforms: tuple[str, ...]  # pip --platform values; empty for host (pip uses this machine's tags)
    label: str  # for messages: "python3.13 arm64 (manylinux)" / "python3.13 on this machine"
    line: str = DEFAULT_LINE  # the Datasette line, whose lock is installed (dl/manifest/lines.py)

    @property
    def lock(self) -> Path:
        return lock_file(self.line)


# --- target and interpreters --------------------------------------------------------------------------------


def target_spec(instance: Instance, target: str) -> Target:
    """The pip platform/Python for a build target."""
    version = instance.python_version
    line = getattr(instance, "datasette", DEFAULT_LINE)
    if target == "host":
        return Target("host", version, (), f"python{version} on this machine", line)
    if target != "lambda":
        raise DlError(f"unknown package target {target!r} (expected 'lambda' or 'host')")
    if version not in LAMBDA_GLIBC:
        raise DlError(f"runtime {instance.runtime} is not supported (python3.11, python3.12 or python3.13)")
    arch = ARCHES.get(instance.architecture)
    if arch is None:
        raise DlError(f"architecture {instance.architecture} is not supported (arm64 or x86_64)")
    glibc = LAMBDA_GLIBC[version]
    platforms = (f"manylinux2014_{arch}", *(f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 16, -1)))
    label = f"{instance.runtime} {instance.architecture} (manylinux)"
    return Target("lambda", version, platforms, label, line)


@functools.cache
def find_interpreter(version: str) -> Path | None:
    """A CPython interpreter of ``version`` ("3.13") on this machine: this one, pyenv's, or PATH's; else None."""
    if (
        sys.implementation.name == "cpython"
        and f"{sys.version_info.major}.{sys.version_info.minor}" == version
    ):
        return Path(sys.executable)
    candidates = _pyenv_interpreters(version)
    candidates += [Path(p) for name in (f"python{version}", "python3") if (p := shutil.which(name))]
    for candidate in candidates:
        if _interpreter_version(candidate) == version:
            return candidate
    return None


def _pyenv_interpreters(version: str) -> list[Path]:
    """pyenv's installs of ``version`` (newest patch first), found without running pyenv."""
    versions_dir = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not versions_dir.is_dir():
        return []
    matching = [p for p in versions_dir.iterdir() if re.fullmatch(rf"{re.escape(version)}\.\d+", p.name)]
    newest_first = sorted(matching, key=lambda p: int(p.name.rsplit(".", 1)[1]), reverse=True)
    return [p / "bin" / f"python{version}" for p in newest_first if (p / "bin" / f"python{version}").exists()]


def _interpreter_version(python: Path) -> str | None:
    code = "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2])"
    try:
        done = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    impl, _, ver = done.stdout.strip().partition(" ")
    return ver if done.returncode == 0 and impl == "cpython" else None


def check_interpreter(python: Path, version: str) -> None:
    """DlError unless ``python`` runs as a CPython of ``version`` (an interpreter the user named)."""
    found = _interpreter_version(python)
    if found != version:
        raise DlError(f"{python} is not a CPython {version} interpreter (found: {found or 'not runnable'})")


# --- dependencies: install, lean, compile, cache ------------------------------------------------------------


def ensure_dependencies(
    spec: Target,
    plugins: Iterable[str],
    compiler: Path | None,
    *,
    cache_dir: Path | None = None,
    log: Log = print,
) -> tuple[Path, bool]:
    """The installed, leaned, compiled dependency tree for ``spec`` and ``plugins``: (path, came from cache)."""
    plugins = tuple(plugins)
    root = Path(cache_dir) if cache_dir else tool_cache_dir()
    key = dependency_key(spec, plugins, compiler)
    entry = root / "deps" / key
    if (entry / "tree").is_dir():
        log(f"dependencies: reusing cached {spec.label} tree ({entry})")
        return entry / "tree", True
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=entry.parent))
    try:
        tree = work / "tree"
        log(f"dependencies: installing {_describe(plugins)} for {spec.label}")
        pip_install(spec, plugins, tree)
        lean_tree(tree)
        if compiler is not None:
            log(f"dependencies: compiling bytecode with {compiler}")
            compile_tree(tree, compiler, debug_ranges=False)
            make_sourceless(tree, spec.python_version)
        with contextlib.suppress(OSError):  # another build finished the same entry first: theirs is identical
            work.rename(entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry / "tree", False


def dependency_key(spec: Target, plugins: tuple[str, ...], compiler: Path | None) -> str:
    """Cache key of a dependency tree: everything that changes its content."""
    material = {
        "format": CACHE_FORMAT,
        "target": spec.kind,
        "python": spec.python_version,
        "platforms": spec.platforms or [sysconfig.get_platform(), platform.machine()],
        "lock": spec.lock.read_text(),
        "plugins": sorted(plugins),
        "compiled": bool(compiler),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def _describe(plugins: tuple[str, ...]) -> str:
    return "the locked closure" + (f" + plugins {', '.join(plugins)}" if plugins else "")


def pip_command(spec: Target, plugins: tuple[str, ...], tree: Path, pins: Path) -> list[str]:
    """The pip invocation for a tree. Without plugins the lock's hashes are enforced (--require-hashes)."""
    cmd = [sys.executable, "-m", "pip", "install", "--target", str(tree), "--no-compile", "--quiet"]
    cmd += ["--disable-pip-version-check", "--no-input", "--only-binary=:all:"]
    cmd += ["--implementation", "cp", "--python-version", spec.python_version]
    for plat in spec.platforms:
        cmd += ["--platform", plat]
    if plugins or spec.kind == "host":
        # Plugins carry no hashes, and this machine's wheels may not be the manylinux ones the lock hashes:
        # the same exact versions are still enforced (as == pins), without hash checking.
        return [*cmd, "-r", str(pins), *plugins]
    return [*cmd, "--require-hashes", "-r", str(spec.lock)]


def lock_pins(lock_text: str) -> str:
    """The lock's requirement lines without hashes (``name==version[ ; marker]``)."""
    joined = lock_text.replace("\\\n", " ")
    pins = []
    for line in joined.splitlines():
        line = re.sub(r"--hash=\S+", "", line.split("#", 1)[0]).strip()
        if line:
            pins.append(line)
    return "\n".join(pins) + "\n"


def pip_install(spec: Target, plugins: tuple[str, ...], tree: Path) -> None:
    """Run pip into ``tree``; its output is shown only when it fails."""
    pins = tree.parent / "pins.txt"
    pins.write_text(lock_pins(spec.lock.read_text()))
    done = subprocess.run(pip_command(spec, plugins, tree, pins), capture_output=True, text=True)
    if done.returncode:
        detail = "\n".join(
            line
            for line in (done.stderr + done.stdout).splitlines()
            if "is ignored: it is neither" not in line
        )
        hint = (
            " (plugins must publish wheels compatible with the target; versions of Datasette's own dependencies "
            f"are pinned by dl/build/lock/{spec.lock.name})"
            if plugins
            else ""
        )
        raise DlError(f"installing dependencies for {spec.label} failed{hint}:\n{detail.strip()}")


def tree_size(tree: Path) -> int:
    """Total bytes of the files under ``tree``."""
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


def read_versions(tree: Path) -> dict:
    """Versions of datasette, mangum and every installed Datasette plugin distribution, from dist-info."""
    versions = {}
    for info in sorted(tree.glob("*.dist-info")):
        name, version = _name_version(info / "METADATA")
        entry_points = info / "entry_points.txt"
        is_plugin = entry_points.exists() and re.search(r"^\[datasette\]", entry_points.read_text(), re.M)
        if name.lower() in {"datasette", "mangum"} or is_plugin:
            versions[name] = version
    return versions


def unpinned_plugins(plugins: Iterable[str], versions: dict) -> list[str]:
    """A warning for each plugin requirement without an exact ``==`` pin, naming the version resolved."""
    resolved = {_normalise(name): (name, version) for name, version in versions.items()}
    warnings = []
    for requirement in plugins:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$", requirement)
        name, specifiers = match.group(1), match.group(3)
        if re.search(r"===?\s*[^*,\s]+\s*(,|$)", specifiers) and "*" not in specifiers:
            continue  # pinned: exactly one version can be installed
        found = resolved.get(_normalise(name))
        got = (
            f"this build installed {found[0]} {found[1]}"
            if found
            else "no Datasette plugin of that name was installed"
        )
        pin = f": pin it as {found[0]}=={found[1]}" if found else ""
        warnings.append(
            f"plugin {requirement!r} is not pinned, so each build may install another version; {got}{pin}"
        )
    return warnings


def _normalise(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name_version(metadata: Path) -> tuple[str, str]:
    fields = {}
    for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields.get("Name", metadata.parent.name), fields.get("Version", "")
