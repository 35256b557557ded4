"""The build cache: an unchanged instance is not zipped (nor its databases counted) again; any change rebuilds."""

from __future__ import annotations

import ast
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

import dl.build.inspection
import dl.build.package
from dl.build.desired import build_instance
from tests.build.conftest import make_instance
from tests.conftest import make_db


def quiet(_line):
    pass


@pytest.fixture
def cache(built, package_cache, monkeypatch):
    """The tool's cache is the session's (its dependency tree is already installed: no pip here)."""
    monkeypatch.setenv("DL_CACHE_DIR", str(package_cache))
    return package_cache


@pytest.fixture
def instance(tmp_path):
    return make_instance({"northwind": make_db(tmp_path / "northwind.db", {"orders": 830})})


def forbid_building(monkeypatch):
    """From here on, zipping or counting rows fails the test."""

    def fail(*_args, **_kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(dl.build.package, "write_zip", fail)
    monkeypatch.setattr(dl.build.inspection, "_inspect", fail)


def test_unchanged_instance_reuses_its_zip_and_inspection(cache, instance, monkeypatch):
    first = build_instance("shop", instance, log=quiet)
    assert first.package_path.is_file()
    assert first.package_path.name == f"{first.package.sha256}.zip"
    forbid_building(monkeypatch)
    logged = []
    second = build_instance("shop", instance, log=logged.append)
    assert second.package_path == first.package_path
    assert second.spec == first.spec
    assert second.package.databases == first.package.databases
    assert logged == [f"northwind: package unchanged, reusing {first.package_path.name}"]


def test_a_changed_database_changes_the_package_and_the_spec(cache, instance, tmp_path):
    first = build_instance("shop", instance, log=quiet)
    db = instance.databases[0].path
    conn = sqlite3.connect(db)  # the same file changed in place: same path and inode
    with conn:
        conn.execute("insert into orders (name, value) values ('late', 1.0)")
    conn.close()
    second = build_instance("shop", instance, log=quiet)
    assert second.package.sha256 != first.package.sha256
    assert second.spec["databases"][0]["sha256"] != first.spec["databases"][0]["sha256"]
    assert second.spec["databases"][0]["tables"]["orders"]["rows"] == 831
    assert first.spec["databases"][0]["tables"]["orders"]["rows"] == 830


@pytest.mark.parametrize(
    "change",
    [
        {"metadata": MappingProxyType({"title": "Another title"})},
        {"config": MappingProxyType({"default_page_size": 20})},
        {"prefix": "/other/"},
        {"cors": False},
    ],
    ids=["metadata", "settings", "prefix", "cors"],
)
def test_changed_configuration_changes_the_package(cache, instance, change):
    first = build_instance("shop", instance, log=quiet)
    second = build_instance("shop", replace(instance, **change), log=quiet)
    assert second.package.sha256 != first.package.sha256


def test_a_missing_zip_is_built_again_byte_identical(cache, instance):
    first = build_instance("shop", instance, log=quiet)
    first.package_path.unlink()
    again = build_instance("shop", instance, log=quiet)
    assert again.package.sha256 == first.package.sha256
    assert again.package_path.is_file()


def test_the_build_key_hashes_every_build_module_the_package_imports():
    """A change to any module that shapes the zip must change the key: each dl/build module that package.py
    builds with (at any depth) is in BUILDER_SOURCES. hashing.py only names files (its digests are in the key)."""
    build = Path(dl.build.package.__file__).parent
    seen, todo = set(), ["package"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((build / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dl.build."):
                todo.append(node.module.removeprefix("dl.build."))
    assert {f"{name}.py" for name in seen - {"hashing"}} <= set(dl.build.package.BUILDER_SOURCES)


@pytest.mark.parametrize("module", dl.build.package.BUILDER_SOURCES)
def test_a_changed_build_module_changes_the_build_key(instance, tmp_path, monkeypatch, module):
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path / "cache"))
    here = Path(dl.build.package.__file__).parent
    copy = tmp_path / "build"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__", "lock"))
    monkeypatch.setattr(dl.build.package, "HERE", copy)
    before = dl.build.package.build_key(instance)
    with open(copy / module, "a", encoding="utf-8") as f:
        f.write("\n# changed\n")
    assert dl.build.package.build_key(instance) != before
