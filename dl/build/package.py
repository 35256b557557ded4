"""The deployment package: one deterministic zip holding Datasette, the handler and an instance's databases.

Stages of :func:`build_package` (each a small function below):

1. **dependencies**: ``pip install --target`` of the lock closure of the instance's Datasette line
   (``dl/build/lock/lambda.txt`` for 0.65, ``dl/build/lock/lambda-1.0a.txt`` for 1.0a: see ``dl/manifest/lines.py``) plus its plugins, for the target platform and Python; leaned; bytecode precompiled for the target Python and put in
   place of the sources (sourceless ``X.pyc`` files, see :func:`make_sourceless`). The tree
   is cached under ``dl.build.hashing.cache_dir()/deps/<key>`` (key: target, Python, platforms, lock, plugins,
   compiler), so a second build neither downloads nor compiles.
2. **databases**: hashed and inspected; small ones are inlined, the rest left for S3 (Lambda's 250 MB unzipped
   limit, with headroom), each decision explained.
3. **instance**: ``dl_instance/instance.json`` (settings, metadata, databases, inspect data, versions) and the
   handler (``dl/runtime/*.py`` copied as ``dl_runtime/``).
4. **zip**: sorted entries, fixed timestamps and permissions, fixed compression level: the same inputs give a
   byte-identical zip, so its sha256 identifies it.

Layout of the zip (the Lambda code root; handler ``dl_runtime.handler.handler``)::

    <dependencies>  dl_runtime/*.py  dl_instance/instance.json  dl_instance/databases/<name>.db
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
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from dl.build.hashing import cache_dir as tool_cache_dir
from dl.build.hashing import sha256_file
from dl.build.inspection import inspect_database
from dl.commands.options import load, manifest_option, outside_paths_option, select_instances
from dl.errors import DlError
from dl.manifest.lines import DEFAULT_LINE, lock_file
from dl.manifest.model import Instance

HERE = Path(__file__).resolve().parent
LOCK_FILE = lock_file(DEFAULT_LINE)  # the default line's; a build uses its Target's (Target.lock)
RUNTIME_SOURCE = HERE.parent / "runtime"
INSTANCE_FORMAT = 1
CACHE_FORMAT = 5  # bump when the install/lean/compile steps change what a cached tree contains

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: "Unzipped size must be smaller than 262144000 bytes" (250 MiB)
HEADROOM = 16 * 1024 * 1024  # kept free below the limit for the handler, instance.json and later growth
TMP_DEFAULT = 512 * 1024 * 1024  # Lambda's default /tmp (ephemeral storage), where S3 databases land
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip; recorded as the source path in compiled bytecode
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 6  # level 9 makes the code 1% smaller for 2.6x the CPU of every build
# glibc of the Lambda images: python3.11 runs on Amazon Linux 2 (2.26), 3.12+ on Amazon Linux 2023 (2.34).
LAMBDA_GLIBC = {"3.11": 26, "3.12": 34, "3.13": 34}
ARCHES = {"arm64": "aarch64", "x86_64": "x86_64"}

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

Log = Callable[[str], None]


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


@dataclass(frozen=True)
class PackageResult:
    """What :func:`build_package` made."""

    path: Path
    sha256: str
    zipped_size: int
    unzipped_size: int
    dependencies_size: int  # unzipped bytes of the dependency tree
    databases: tuple[DatabaseDecision, ...]
    versions: dict  # {"datasette": "0.65.5", "mangum": "0.22.0", "<plugin dist>": "<version>"}
    decision: str  # the inline/S3 reasoning, one line per database
    target: str  # "lambda" | "host"
    python_version: str  # "3.13"
    python: Path | None  # interpreter that compiled the bytecode (host: the one to run the package with)
    bytecode: bool  # True when precompiled .pyc files for python_version are in the package
    cache_hit: bool  # True when the dependency tree came from the cache (pip did not run)
    messages: tuple[str, ...] = field(default=())  # warnings worth showing (e.g. no matching interpreter)

    @property
    def inline(self) -> tuple[DatabaseDecision, ...]:
        return tuple(d for d in self.databases if d.location == "inline")

    @property
    def s3(self) -> tuple[DatabaseDecision, ...]:
        return tuple(d for d in self.databases if d.location == "s3")


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


# --- public entry point -------------------------------------------------------------------------------------


def build_package(
    instance: Instance,
    out: Path,
    *,
    target: str = "lambda",
    cache_dir: Path | None = None,
    inline_limit: int | None = None,
    python: Path | None = None,
    log: Log = print,
    key_prefix: str = "",
) -> PackageResult:
    """Build the deployment zip of ``instance`` at ``out``.

    target: "lambda" (manylinux wheels for the instance's runtime and architecture) or "host" (wheels for this
    machine, for ``dl serve``). cache_dir: where dependency trees are cached (default: the tool's cache dir).
    inline_limit: most bytes of databases to inline (default: all that fit Lambda's limit with headroom).
    python: interpreter of the target Python version used to compile bytecode (and, for "host", to run the
    package); found automatically (pyenv, PATH, this interpreter) when None.
    key_prefix: put before every artifact key the package names (``"previews/"`` for a preview: dl/apply/preview.py).
    Raises DlError with a message for the user when something cannot be built.
    """
    spec = target_spec(instance, target)
    compiler = Path(python) if python else find_interpreter(spec.python_version)
    if python is not None:
        _check_interpreter(compiler, spec.python_version)
    messages = []
    if compiler is None:
        messages.append(
            f"no python{spec.python_version} interpreter found (looked in pyenv, PATH): the package ships sources "
            "only and Lambda compiles them on every cold start (install it, e.g. `pyenv install "
            f"{spec.python_version}`, for faster cold starts)"
        )
        log(f"warning: {messages[-1]}")
    deps, cache_hit = ensure_dependencies(spec, instance.plugins, compiler, cache_dir=cache_dir, log=log)
    deps_size = tree_size(deps)
    versions = read_versions(deps)
    for warning in unpinned_plugins(instance.plugins, versions):
        messages.append(warning)
        log(f"warning: {warning}")
    decisions = decide_locations(instance.databases, deps_size, inline_limit, key_prefix=key_prefix)
    inspect = {d.name: {**inspect_database(d.source), "file": d.file} for d in decisions}
    document = instance_document(instance, decisions, inspect, versions)
    with tempfile.TemporaryDirectory(prefix="dl-package-") as tmp:
        staging = Path(tmp)
        _stage_instance(staging, document, compiler)
        entries = sorted(
            [*_tree_entries(deps), *_tree_entries(staging)]
            + [(f"dl_instance/databases/{d.file}", d.source) for d in decisions if d.location == "inline"]
        )
        _check_unique(entries)
        unzipped = write_zip(Path(out), entries)
    out = Path(out)
    return PackageResult(
        path=out,
        sha256=sha256_file(out, use_cache=False),
        zipped_size=out.stat().st_size,
        unzipped_size=unzipped,
        dependencies_size=deps_size,
        databases=decisions,
        versions=versions,
        decision="\n".join(d.reason for d in decisions),
        target=spec.kind,
        python_version=spec.python_version,
        python=compiler,
        bytecode=compiler is not None,
        cache_hit=cache_hit,
        messages=tuple(messages),
    )


# --- build cache: an unchanged instance is not zipped again ----------------------------------------------------

BUILD_FORMAT = 1  # bump when what a build record holds changes


def build_key(
    instance: Instance, *, target: str = "lambda", inline_limit: int | None = None, key_prefix: str = ""
) -> str:
    """Cache key of the zip :func:`build_package` would make: sha256 of everything its bytes depend on.

    That is: the dependency tree (:func:`dependency_key`: target, Python, platforms, lock, plugins, bytecode),
    the builder and the handler (the sources of this module, ``dl/build/inspection.py`` and ``dl/runtime``), and the
    inputs of ``instance.json`` and of the inline/S3 decisions: the instance's name, prefix, CORS, settings
    and metadata, each database's name, file, size and sha256 (stat-cached, see ``dl.build.hashing``), the inline
    limit, and the artifact key prefix (a preview's). Whatever else the zip holds is a function of these.
    """
    spec = target_spec(instance, target)
    compiler = find_interpreter(spec.python_version)
    material = {
        "format": BUILD_FORMAT,
        "dependencies": dependency_key(spec, tuple(instance.plugins), compiler),
        "builder": _sources_digest(
            [HERE / "package.py", HERE / "inspection.py", *RUNTIME_SOURCE.glob("*.py")]
        ),
        "instance": {
            "name": instance.name,
            "prefix": instance.prefix,
            "cors": instance.cors,
            "settings": _plain(instance.config),
            "metadata": _plain(instance.metadata),
        },
        "databases": [
            {
                "name": db.name,
                "path": str(Path(db.path).resolve()),
                "size": db.path.stat().st_size,
                "sha256": sha256_file(db.path),
            }
            for db in instance.databases
        ],
        "inline_limit": inline_limit,
        **({"key_prefix": key_prefix} if key_prefix else {}),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _sources_digest(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def result_record(result: PackageResult) -> dict:
    """A PackageResult as JSON (for the build cache)."""
    return {
        "format": BUILD_FORMAT,
        "sha256": result.sha256,
        "zipped_size": result.zipped_size,
        "unzipped_size": result.unzipped_size,
        "dependencies_size": result.dependencies_size,
        "databases": [
            {
                **{k: getattr(d, k) for k in ("name", "file", "sha256", "size", "location", "key", "reason")},
                "source": str(d.source),
            }
            for d in result.databases
        ],
        "versions": result.versions,
        "decision": result.decision,
        "target": result.target,
        "python_version": result.python_version,
        "python": str(result.python) if result.python else None,
        "bytecode": result.bytecode,
        "messages": list(result.messages),
    }


def result_from_record(record: dict, path: Path) -> PackageResult | None:
    """The PackageResult of a cached build whose zip is ``path``; None if the record or the zip does not fit."""
    try:
        if record.get("format") != BUILD_FORMAT or path.stat().st_size != record["zipped_size"]:
            return None
        return PackageResult(
            path=path,
            sha256=record["sha256"],
            zipped_size=record["zipped_size"],
            unzipped_size=record["unzipped_size"],
            dependencies_size=record["dependencies_size"],
            databases=tuple(
                DatabaseDecision(**{**d, "source": Path(d["source"])}) for d in record["databases"]
            ),
            versions=dict(record["versions"]),
            decision=record["decision"],
            target=record["target"],
            python_version=record["python_version"],
            python=Path(record["python"]) if record["python"] else None,
            bytecode=record["bytecode"],
            cache_hit=True,
            messages=tuple(record["messages"]),
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None


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


def _check_interpreter(python: Path, version: str) -> None:
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


# --- databases ----------------------------------------------------------------------------------------------


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


# --- instance files -----------------------------------------------------------------------------------------


def instance_document(instance: Instance, decisions, inspect: dict, versions: dict) -> dict:
    """The content of dl_instance/instance.json (see the README's package section)."""
    return {
        "format": INSTANCE_FORMAT,
        "instance": instance.name,
        "prefix": instance.prefix,
        "cors": instance.cors,
        "settings": _plain(instance.config),
        "metadata": _plain(instance.metadata),
        "databases": [
            {
                "name": d.name,
                "file": d.file,
                "sha256": d.sha256,
                "size": d.size,
                "location": d.location,
                "key": d.key,
            }
            for d in decisions
        ],
        "inspect": inspect,
        "versions": versions,
    }


def _plain(value):
    """MappingProxyType/tuple trees -> JSON-able dicts/lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _stage_instance(staging: Path, document: dict, compiler: Path | None) -> None:
    """Write dl_runtime/ (the handler) and dl_instance/instance.json into ``staging``."""
    runtime = staging / "dl_runtime"
    runtime.mkdir()
    for source in sorted(RUNTIME_SOURCE.glob("*.py")):
        shutil.copyfile(source, runtime / source.name)
    if compiler is not None:
        compile_tree(runtime, compiler, prefix=f"{TASK_ROOT}/dl_runtime", jobs=1)
    (staging / "dl_instance").mkdir()
    text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (staging / "dl_instance" / "instance.json").write_text(text, encoding="utf-8")


# --- deterministic zip --------------------------------------------------------------------------------------


def _tree_entries(root: Path) -> Iterator[tuple[str, Path]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix(), path


def _check_unique(entries: list[tuple[str, Path]]) -> None:
    counts = Counter(name for name, _ in entries)
    duplicates = sorted(name for name, n in counts.items() if n > 1)
    if duplicates:
        raise DlError(f"package entries collide: {', '.join(duplicates[:5])}")


def write_zip(out: Path, entries: list[tuple[str, Path]]) -> int:
    """Write a reproducible zip of (name, file) entries, in the given order; returns the unzipped size.

    Fixed: timestamps (1980-01-01), permissions (0644 regular files), creator system (unix), compression
    (deflate level 6). Written to a temporary name and renamed, so ``out`` is never half-written.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    total = 0
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
            for name, source in entries:
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.create_system = 3
                info.external_attr = (0o100644 & 0xFFFF) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                _set_level(info)
                size = source.stat().st_size
                info.file_size = size  # lets zipfile decide on zip64 up front
                with open(source, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                total += size
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return total


def _set_level(info: zipfile.ZipInfo) -> None:
    """ZipFile.open(info, "w") takes the level from the ZipInfo (attribute renamed in Python 3.13)."""
    if hasattr(zipfile.ZipInfo, "compress_level"):
        info.compress_level = ZIP_LEVEL
    else:
        info._compresslevel = ZIP_LEVEL


# --- the `dl package` command -------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """'50MB' / '2.5 GB' / '1000000' -> bytes (decimal units; MiB/GiB binary)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgG]i?[bB]?|[bB])?\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 50MB)")
    number, unit = float(match.group(1)), (match.group(2) or "b").lower().rstrip("b")
    factors = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
    return int(number * factors[unit])


@click.command("package")
@click.argument("instance_name", metavar="INSTANCE")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Zip to write (default INSTANCE.zip).",
)
@manifest_option
@outside_paths_option
@click.option(
    "--target",
    type=click.Choice(["lambda", "host"]),
    default="lambda",
    show_default=True,
    help="lambda: manylinux wheels for the instance's runtime and architecture; host: wheels for this machine.",
)
@click.option(
    "--inline-limit",
    metavar="SIZE",
    callback=lambda _ctx, _param, value: None if value is None else parse_size(value),
    help="Inline at most SIZE bytes of databases (e.g. 50MB); default: all that fit Lambda's limit.",
)
def package_command(instance_name, output, manifest_path, allow_outside_paths, target, inline_limit):
    """Build the deployment zip of INSTANCE and explain where each database goes."""
    manifest = load(manifest_path, allow_outside_paths)
    (name,) = select_instances(manifest, (instance_name,))
    out = output or Path(f"{name}.zip")
    result = build_package(
        manifest.instances[name], out, target=target, inline_limit=inline_limit, log=click.echo
    )
    click.echo(render_result(result))


def render_result(result: PackageResult) -> str:
    """The human summary of a build."""
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    lines = [
        f"package: {result.path}",
        f"  sha256:   {result.sha256}",
        f"  zipped:   {human(result.zipped_size)} ({result.zipped_size} bytes)",
        f"  unzipped: {human(result.unzipped_size)} (dependencies {human(result.dependencies_size)}; "
        f"{limit_share(result.unzipped_size)})",
        f"  python:   {result.python_version} ({result.target}); bytecode: "
        + ("precompiled" if result.bytecode else "none (sources only)"),
        f"  versions: {versions}",
        "databases:",
        *(f"  {d.name}: {d.reason}" for d in result.databases),
    ]
    if not result.databases:
        lines.append("  (none)")
    return "\n".join(lines)
