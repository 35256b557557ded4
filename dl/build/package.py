"""The deployment package: one deterministic zip holding Datasette, the handler and an instance's databases.

Stages of :func:`build_package`, each in its own module of ``dl/build/``:

1. **dependencies** (``dependencies.py``, ``lean.py``): ``pip install --target`` of the lock closure of the
   instance's Datasette line (``dl/build/lock/lambda.txt`` for 0.65, ``dl/build/lock/lambda-1.0a.txt`` for
   1.0a: see ``dl/manifest/lines.py``) plus its plugins, for the target platform and Python; leaned; bytecode
   precompiled for the target Python and put in place of the sources (sourceless ``X.pyc`` files, see
   ``dl.build.lean.make_sourceless``). The tree is cached under ``dl.build.hashing.cache_dir()/deps/<key>``
   (key: target, Python, platforms, lock, plugins, compiler), so a second build neither downloads nor
   compiles.
2. **databases** (``locations.py``, ``inspection.py``): hashed and inspected; small ones are inlined, the rest
   left for S3 (Lambda's 250 MB unzipped limit, with headroom), each decision explained.
3. **instance** (here): ``dl_instance/instance.json`` (settings, metadata, databases, inspect data, versions)
   and the handler (``dl/runtime/*.py`` copied as ``dl_runtime/``).
4. **zip** (``archive.py``): sorted entries, fixed timestamps and permissions, fixed compression level: the
   same inputs give a byte-identical zip, so its sha256 identifies it.

Also here: the build cache's key (:func:`build_key`: everything the zip's bytes depend on, including the
sources of every module above and of the runtime) and the record of a build (:func:`result_record`).

Layout of the zip (the Lambda code root; handler ``dl_runtime.handler.handler``)::

    <dependencies>  dl_runtime/*.py  dl_instance/instance.json  dl_instance/databases/<name>.db
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dl.build.archive import check_unique, tree_entries, write_zip
from dl.build.dependencies import (
    check_interpreter,
    dependency_key,
    ensure_dependencies,
    find_interpreter,
    read_versions,
    target_spec,
    tree_size,
    unpinned_plugins,
)
from dl.build.hashing import sha256_file
from dl.build.inspection import inspect_database
from dl.build.lean import TASK_ROOT, compile_tree
from dl.build.locations import DatabaseDecision, decide_locations
from dl.manifest.model import Instance

HERE = Path(__file__).resolve().parent
RUNTIME_SOURCE = HERE.parent / "runtime"
INSTANCE_FORMAT = 1
# the modules whose code shapes the zip's bytes: the build key (:func:`build_key`) hashes them all
BUILDER_SOURCES = ("package.py", "dependencies.py", "lean.py", "locations.py", "archive.py", "inspection.py")

Log = Callable[[str], None]


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
        check_interpreter(compiler, spec.python_version)
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
            [*tree_entries(deps), *tree_entries(staging)]
            + [(f"dl_instance/databases/{d.file}", d.source) for d in decisions if d.location == "inline"]
        )
        check_unique(entries)
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
    the builder and the handler (the sources of :data:`BUILDER_SOURCES`: this module and the ``dl/build/``
    modules it builds with, and of ``dl/runtime``), and the inputs of ``instance.json`` and of the inline/S3
    decisions: the instance's name, prefix, CORS, settings and metadata, each database's name, file, size and
    sha256 (stat-cached, see ``dl.build.hashing``), the inline limit, and the artifact key prefix (a
    preview's). Whatever else the zip holds is a function of these.
    """
    spec = target_spec(instance, target)
    compiler = find_interpreter(spec.python_version)
    material = {
        "format": BUILD_FORMAT,
        "dependencies": dependency_key(spec, tuple(instance.plugins), compiler),
        "builder": _sources_digest(
            [*(HERE / name for name in BUILDER_SOURCES), *RUNTIME_SOURCE.glob("*.py")]
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


# --- instance files -----------------------------------------------------------------------------------------


def instance_document(instance: Instance, decisions, inspect: dict, versions: dict) -> dict:
    """The content of dl_instance/instance.json (docs/runtime.md, "The Lambda package and runtime")."""
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
