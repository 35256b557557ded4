"""Fixtures for the package builder: one real Lambda package (PyPI wheels) built once per session."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path
from types import MappingProxyType

import pytest

from dl.build.package import build_package
from dl.manifest.model import Database, Instance
from tests.conftest import make_db


def make_instance(databases: dict[str, Path], **overrides) -> Instance:
    """A normalised Instance serving ``databases`` ({name: file}), with manifest defaults unless overridden."""
    fields = {
        "name": "northwind",
        "databases": tuple(Database(name, path, f"data/{path.name}") for name, path in databases.items()),
        "metadata": MappingProxyType({"title": "Northwind", "databases": {"northwind": {"source": "MS"}}}),
        "metadata_source": None,
        "cors": True,
        "config": MappingProxyType({"default_page_size": 50}),
        "domain": None,
        "certificate_arn": None,
        "prefix": "/data/",
        "memory": 1024,
        "timeout": 30,
        "architecture": "arm64",
        "runtime": "python3.13",
        "plugins": (),
        "protect": False,
        "endpoint": "function-url",
        "cdn": True,
        "log_retention_days": 30,
        "secrets": MappingProxyType({}),
    }
    fields.update(overrides)
    return Instance(**fields)


def northwind_db(path: Path) -> Path:
    """A small database with two tables and a view."""
    make_db(path, {"orders": 830, "customers": 91})
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("create view big_orders as select id, name from orders where value > 100")
    conn.close()
    return path


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("package")


@pytest.fixture(scope="session")
def package_cache(package_dir) -> Path:
    """The dependency cache shared by the session's builds."""
    return package_dir / "cache"


@pytest.fixture(scope="session")
def built(package_dir, package_cache):
    """(instance, PackageResult) of a Lambda package (python3.13, arm64) for two small databases."""
    data = package_dir / "data"
    instance = make_instance(
        {"northwind": northwind_db(data / "northwind.db"), "extra": make_db(data / "extra.db", {"t": 5})}
    )
    result = build_package(
        instance, package_dir / "northwind.zip", cache_dir=package_cache, log=lambda _: None
    )
    return instance, result


@pytest.fixture(scope="session")
def names(built) -> set[str]:
    """Entry names of the session's package."""
    with zipfile.ZipFile(built[1].path) as zf:
        return set(zf.namelist())


@pytest.fixture(scope="session")
def built_10(package_dir, package_cache):
    """(instance, PackageResult) of the same instance on the Datasette 1.0 alpha line (manifest datasette: 1.0a)."""
    data = package_dir / "data-10"
    instance = make_instance({"northwind": northwind_db(data / "northwind.db")}, datasette="1.0a")
    result = build_package(
        instance, package_dir / "northwind-10.zip", cache_dir=package_cache, log=lambda _: None
    )
    return instance, result
