"""The Lambda package: contents, leanness, bytecode, instance.json, determinism and the dependency cache."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile

import pytest

from dl.build.dependencies import find_interpreter
from dl.build.locations import LAMBDA_UNZIPPED_LIMIT
from dl.build.package import build_package
from dl.errors import DlError
from tests.build.conftest import make_instance
from tests.conftest import make_db


def read_json(zip_path, name):
    with zipfile.ZipFile(zip_path) as zf:
        return json.loads(zf.read(name))


def test_package_holds_datasette_mangum_handler_and_databases(built, names):
    _, result = built
    module = ".pyc" if result.bytecode else ".py"  # dependencies ship sourceless bytecode when compiled
    for expected in (
        f"datasette/app{module}",
        f"mangum/adapter{module}",
        "dl_runtime/handler.py",
        "dl_instance/instance.json",
        "dl_instance/databases/northwind.db",
        "dl_instance/databases/extra.db",
    ):
        assert expected in names
    # manylinux aarch64 wheels for CPython 3.13: the compiled extensions say so
    assert "markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so" in names
    # PyYAML's optional C extension is dropped (nothing uses its C classes; yaml runs its Python code)
    assert "yaml/__init__.pyc" in names or "yaml/__init__.py" in names
    assert not [n for n in names if n.startswith("yaml/_yaml.")]
    assert result.versions["datasette"] == "0.65.5"
    assert result.versions["mangum"] == "0.22.0"
    # the tool is not shipped: only dl/runtime, as dl_runtime (no `datasette publish lambda` plugin, no CLI)
    assert not [n for n in names if n.startswith("dl/") or n.startswith("dl_runtime/publish")]
    assert not [n for n in names if n.startswith("datasette_lambda")]


def test_datasette_10_line_package_installs_its_own_lock_and_stays_lean(built_10):
    """1.0a declares pip and setuptools (only its `datasette install` command uses pip) and adds pydantic,
    sqlite-utils and opentelemetry-api; the package keeps what it imports and drops the installers."""
    from dl.manifest.lines import locked_version

    _, result = built_10
    with zipfile.ZipFile(result.path) as zf:
        names = set(zf.namelist())
    tops = {n.split("/", 1)[0] for n in names}
    assert result.versions["datasette"] == locked_version("1.0a")
    assert f"datasette-{locked_version('1.0a')}.dist-info/entry_points.txt" in names
    for kept in ("pydantic", "pydantic_core", "sqlite_utils", "opentelemetry", "datasette", "mangum"):
        assert kept in tops, kept
    assert [n for n in names if n.startswith("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu")]
    for dropped in ("pip", "setuptools", "pkg_resources", "_distutils_hack", "bin"):
        assert dropped not in tops
    assert not [t for t in tops if t.startswith(("pip-", "setuptools-"))]
    assert "datasette/vendored" not in {n.rsplit("/", 1)[0] for n in names}  # 1.0 has no vendored pint
    assert result.unzipped_size < LAMBDA_UNZIPPED_LIMIT


def test_package_is_lean_but_keeps_plugin_metadata(built, names):
    tops = {n.split("/", 1)[0] for n in names}
    for dropped in ("pip", "setuptools", "pkg_resources", "_distutils_hack", "bin"):
        assert dropped not in tops
    assert not [t for t in tops if t.startswith(("pip-", "setuptools-"))]
    assert not [n for n in names if n.endswith((".pyi", "/RECORD", "/INSTALLER", ".c"))]
    assert not [n for n in names if "/tests/" in n]
    # plugin discovery and importlib.metadata need these
    assert "datasette-0.65.5.dist-info/entry_points.txt" in names
    assert "datasette-0.65.5.dist-info/METADATA" in names
    assert "mangum-0.22.0.dist-info/METADATA" in names
    assert not [n for n in names if "/sboms/" in n]
    _, result = built
    assert result.unzipped_size < 25_000_000 < LAMBDA_UNZIPPED_LIMIT
    assert result.zipped_size < 3_000_000  # about 0.45x a naive `pip install --target` zip (benchmarks)


def test_metadata_keeps_headers_without_the_long_description(built):
    with zipfile.ZipFile(built[1].path) as zf:
        metadata = zf.read("datasette-0.65.5.dist-info/METADATA").decode()
    assert "Name: datasette\n" in metadata and "Version: 0.65.5\n" in metadata
    assert "Requires-Dist: Jinja2" in metadata or "Requires-Dist: jinja2" in metadata
    assert "\n\n" not in metadata  # the README body after the headers is gone


def test_bytecode_is_precompiled_for_the_target_python(built, names):
    _, result = built
    if find_interpreter("3.13") is None:  # the build must say so instead of shipping wrong bytecode
        assert not result.bytecode and "no python3.13 interpreter" in result.messages[0]
        assert not [n for n in names if n.endswith(".pyc")]
        return
    assert result.bytecode
    # dependencies: sourceless bytecode where the source was (Python imports X.pyc without X.py)
    pyc = "datasette/app.pyc"
    assert pyc in names and "datasette/app.py" not in names
    assert not [n for n in names if n.startswith("datasette/") and n.endswith(".py")]
    # anyio reads its own __init__.py at run time (lazy imports): it keeps sources and cached bytecode
    assert {"anyio/__init__.py", "anyio/__pycache__/__init__.cpython-313.pyc"} <= names
    # the handler keeps its sources (readable tracebacks) with cached bytecode
    assert {"dl_runtime/handler.py", "dl_runtime/__pycache__/handler.cpython-313.pyc"} <= names
    cached = [n for n in names if "/__pycache__/" in n]
    assert cached and all(n.endswith(".cpython-313.pyc") for n in cached)
    sourceless = [n for n in names if n.endswith(".pyc") and "/__pycache__/" not in n]
    assert not [n for n in sourceless if n[:-1] in names]  # never both X.py and X.pyc
    with zipfile.ZipFile(result.path) as zf:
        headers = [zf.read(name)[:16] for name in (pyc, "anyio/__pycache__/__init__.cpython-313.pyc")]
    for header in headers:
        flags = struct.unpack("<I", header[4:8])[0]
        assert flags == 0b01  # hash-based, unchecked: Lambda never recompiles, whatever the zip timestamps


def test_zip_entries_are_sorted_with_fixed_times_and_modes(built):
    with zipfile.ZipFile(built[1].path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_instance_json_describes_the_instance(built):
    instance, result = built
    doc = read_json(result.path, "dl_instance/instance.json")
    assert doc["format"] == 1
    assert doc["instance"] == "northwind"
    assert doc["prefix"] == "/data/"
    assert doc["cors"] is True
    assert doc["settings"] == {"default_page_size": 50}
    assert doc["metadata"]["title"] == "Northwind"
    northwind = instance.databases[0].path
    digest = hashlib.sha256(northwind.read_bytes()).hexdigest()
    assert doc["databases"][0] == {
        "name": "northwind",
        "file": "northwind.db",
        "sha256": digest,
        "size": northwind.stat().st_size,
        "location": "inline",
        "key": f"databases/{digest}.db",
    }
    assert [d["name"] for d in doc["databases"]] == ["northwind", "extra"]
    assert doc["inspect"]["northwind"]["hash"] == digest
    assert doc["inspect"]["northwind"]["tables"]["orders"]["count"] == 830
    assert doc["inspect"]["northwind"]["tables"]["customers"]["count"] == 91
    assert doc["inspect"]["extra"]["tables"]["t"] == {"count": 5, "columns": ["id", "name", "value"]}
    assert doc["versions"] == {"datasette": "0.65.5", "mangum": "0.22.0"}
    with zipfile.ZipFile(result.path) as zf:
        assert zf.read("dl_instance/databases/northwind.db") == northwind.read_bytes()


def test_rebuild_from_an_empty_cache_is_byte_identical(built, package_dir):
    """Determinism end to end: fresh pip install, leaning, bytecode and zip give the very same bytes."""
    instance, first = built
    again = build_package(
        instance, package_dir / "again.zip", cache_dir=package_dir / "fresh", log=lambda _: None
    )
    assert not again.cache_hit
    assert again.sha256 == first.sha256
    assert again.path.read_bytes() == first.path.read_bytes()


def test_second_build_reuses_the_cache_without_pip(built, package_dir, package_cache, monkeypatch):
    instance, first = built
    # pip cannot reach any index from here on: a build that ran pip would fail
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(package_dir / "no-wheels-here"))
    with pytest.raises(DlError, match="installing dependencies for python3.13 arm64"):
        build_package(instance, package_dir / "x.zip", cache_dir=package_dir / "empty", log=lambda _: None)
    logged = []
    second = build_package(instance, package_dir / "second.zip", cache_dir=package_cache, log=logged.append)
    assert second.cache_hit
    assert any("reusing cached" in line for line in logged)
    assert second.sha256 == first.sha256


def test_changing_a_database_changes_the_package(built, package_dir, package_cache):
    instance, first = built
    changed = make_db(package_dir / "changed" / "northwind.db", {"orders": 831, "customers": 91})
    other = make_instance({"northwind": changed, "extra": instance.databases[1].path})
    result = build_package(other, package_dir / "changed.zip", cache_dir=package_cache, log=lambda _: None)
    assert result.cache_hit
    assert result.sha256 != first.sha256
    doc = read_json(result.path, "dl_instance/instance.json")
    assert doc["inspect"]["northwind"]["tables"]["orders"]["count"] == 831


def test_unsupported_runtime_is_a_clear_error(built, package_dir):
    instance, _ = built
    bad = make_instance({"northwind": instance.databases[0].path}, runtime="python3.9")
    with pytest.raises(DlError, match="runtime python3.9 is not supported"):
        build_package(bad, package_dir / "bad.zip", cache_dir=package_dir / "unused", log=lambda _: None)
