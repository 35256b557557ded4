"""Leaning and compiling an installed dependency tree: what Lambda never reads goes, the rest is precompiled.

* :func:`lean_tree`: deletes installers, tests, type stubs, C sources, dist-info records and long
  descriptions, and PyYAML's unused C extension; entry points and METADATA stay (plugin discovery reads them).
* :func:`compile_tree`: bytecode for the target Python (unchecked-hash, paths under ``/var/task``, fixed hash
  seed), so nothing is compiled at cold start and the bytes do not depend on where the tree was built.
* :func:`make_sourceless`: each ``X.py`` replaced by its ``X.pyc``, except for modules that read Python source
  at run time and their callers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from dl.errors import DlError

TASK_ROOT = "/var/task"  # where Lambda unpacks the zip; recorded as the source path in compiled bytecode

# Leaning: what Lambda never needs. Entry points and METADATA stay (plugin discovery reads them).
DROP_TOP = {
    "bin",
    "pip",
    "setuptools",
    "pkg_resources",
    "_distutils_hack",
    "distutils-precedence.pth",
    "wheel",
}
DROP_DISTS = {"pip", "setuptools", "wheel"}
DROP_DIRS = {"__pycache__", "tests", "test"}
DROP_SUFFIXES = (".pyi", ".pyx", ".pxd", ".c", ".h", ".cpp")
DROP_FILES = {"py.typed"}
DROP_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
DROP_DIST_INFO_DIRS = {"sboms"}  # PEP 770 software bills of materials: never read at run time
# Modules that read Python source at run time (anyio builds its lazy-import map from its own __init__.py):
# top-level packages mentioning these keep their .py sources next to the bytecode.
READS_SOURCE = re.compile(rb"\b(getsource|getsourcelines|findsource|linecache)\b")
# PyYAML's optional C extension: without it `yaml` runs its pure-Python code, the code `safe_load` runs
# anyway. Dropped unless some other module uses the C classes.
LIBYAML_USERS = re.compile(
    rb"\b(C(Safe|Full|Unsafe|Base)?(Loader|Dumper)|CParser|CEmitter|cyaml|__with_libyaml__)\b"
)


def lean_tree(tree: Path) -> list[str]:
    """Delete what Lambda never uses from an installed tree; returns the removed paths (relative, sorted)."""
    keep_setuptools = _imports_pkg_resources(tree)
    removed = []
    for path in sorted(tree.iterdir()):
        dist = _dist_name(path.name)
        drop = path.name in DROP_TOP or (dist is not None and dist in DROP_DISTS)
        if keep_setuptools and (path.name in {"setuptools", "pkg_resources"} or dist == "setuptools"):
            drop = False
        if drop:
            _remove(path)
            removed.append(path.name)
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        in_dist_info = here.name.endswith(".dist-info")
        for name in [d for d in dirnames if d in DROP_DIRS or (in_dist_info and d in DROP_DIST_INFO_DIRS)]:
            dirnames.remove(name)
            _remove(here / name)
            removed.append(str((here / name).relative_to(tree)))
        if in_dist_info and "METADATA" in filenames:
            _strip_description(here / "METADATA")
        for name in filenames:
            if (
                name.endswith(DROP_SUFFIXES)
                or name in DROP_FILES
                or (in_dist_info and name in DROP_DIST_INFO)
            ):
                (here / name).unlink()
                removed.append(str((here / name).relative_to(tree)))
    removed += _drop_libyaml(tree)
    return sorted(removed)


def _strip_description(metadata: Path) -> None:
    """Keep METADATA's headers (name, version, requirements: what importlib.metadata and pluggy read) and drop
    the long description after the first blank line (the project's README, tens of kB per distribution)."""
    text = metadata.read_bytes()
    head, sep, _body = text.partition(b"\n\n")
    if sep:
        metadata.write_bytes(head + b"\n")


def _drop_libyaml(tree: Path) -> list[str]:
    """Remove PyYAML's C extension unless a module outside PyYAML uses the C classes (see LIBYAML_USERS)."""
    extensions = sorted((tree / "yaml").glob("_yaml.*")) if (tree / "yaml").is_dir() else []
    if not extensions:
        return []
    for path in tree.rglob("*.py"):
        if path.relative_to(tree).parts[0] not in {"yaml", "_yaml"} and LIBYAML_USERS.search(
            path.read_bytes()
        ):
            return []
    for path in extensions:
        path.unlink()
    return [str(p.relative_to(tree)) for p in extensions]


def _dist_name(name: str) -> str | None:
    """'pip' for 'pip-26.3.dist-info'; None for anything that is not a dist-info folder."""
    if not name.endswith(".dist-info"):
        return None
    return name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")


def _imports_pkg_resources(tree: Path) -> bool:
    """True when a package other than setuptools/pip imports pkg_resources (old plugins do): keep setuptools."""
    pattern = re.compile(rb"^\s*(import|from)\s+pkg_resources\b", re.M)
    skip = DROP_TOP | {"setuptools", "pkg_resources"}
    for path in tree.rglob("*.py"):
        if path.relative_to(tree).parts[0] not in skip and pattern.search(path.read_bytes()):
            return True
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def compile_tree(
    tree: Path, python: Path, *, prefix: str = TASK_ROOT, jobs: int = 1, debug_ranges: bool = True
) -> None:
    """Precompile every module with the target interpreter: __pycache__/*.cpython-XY.pyc, unchecked-hash.

    Unchecked-hash pycs are used without looking at the source's timestamp (zip timestamps are fixed, and
    Lambda's code folder is read-only), so nothing is recompiled at cold start. Paths are recorded as under
    /var/task (Lambda's code root) so the bytes do not depend on where the tree was built; a fixed
    PYTHONHASHSEED makes frozenset constants marshal in a stable order.

    ``debug_ranges=False`` (``-X no_debug_ranges``) leaves out the column ranges of every instruction (a fifth of
    the compressed bytecode). They serve only the ``^^^^`` markers under a traceback's source line, which
    sourceless modules never show; line numbers stay.
    """
    cmd = [
        str(python),
        "-I",
        *(() if debug_ranges else ("-X", "no_debug_ranges")),
        "-m",
        "compileall",
        "-q",
        "-q",
        "-j",
        str(jobs),
        "--invalidation-mode",
        "unchecked-hash",
    ]
    cmd += ["-s", str(tree), "-p", prefix, str(tree)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode and not list(tree.rglob("*.pyc")):
        raise DlError(f"compiling bytecode with {python} failed:\n{done.stdout}{done.stderr}")


def make_sourceless(tree: Path, python_version: str) -> list[str]:
    """Replace each ``X.py`` by its compiled ``X.pyc`` (from ``__pycache__/X.cpython-3YY.pyc``) placed where the
    source was: Python imports such sourceless bytecode directly. The zip then holds each module once.

    Kept with their sources (and cached bytecode): modules that read Python source at run time (READS_SOURCE;
    anyio builds its lazy-import map from its own ``__init__.py``) and the modules of the same top-level package
    that name them (their callers, whose source they read); modules compileall skipped. Tracebacks in the logs
    show file and line but not the line's text. Returns the modules made sourceless (relative .pyc paths).
    """
    tag = "cpython-" + python_version.replace(".", "")
    keep = _source_readers(tree)
    done = []
    for cache in sorted(tree.rglob("__pycache__")):
        for pyc in sorted(cache.glob(f"*.{tag}.pyc")):
            module = pyc.name.removesuffix(f".{tag}.pyc")
            source = cache.parent / f"{module}.py"
            if "." in module or not source.is_file() or source in keep:
                continue
            os.replace(pyc, cache.parent / f"{module}.pyc")
            source.unlink()
            done.append(str((cache.parent / f"{module}.pyc").relative_to(tree)))
        with contextlib.suppress(OSError):
            cache.rmdir()  # empty now, unless kept modules, other tags or orphans remain
    return done


def _source_readers(tree: Path) -> set[Path]:
    """Modules that read source (READS_SOURCE), plus the modules of their top-level package naming them."""
    sources = {path: path.read_bytes() for path in tree.rglob("*.py")}
    readers = [path for path, text in sources.items() if READS_SOURCE.search(text)]
    keep = set(readers)
    for reader in readers:
        top = reader.relative_to(tree).parts[0]
        name = re.compile(rb"\b" + re.escape(reader.stem.encode()) + rb"\b")
        keep.update(
            path
            for path, text in sources.items()
            if path.relative_to(tree).parts[0] == top and name.search(text)
        )
    return keep
