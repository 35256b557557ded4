"""Normalisation: defaults, merging, prefixes, database names, metadata; and schema.json's agreement with Datasette."""

from __future__ import annotations

import json

import pytest
from datasette.app import SETTINGS
from datasette.version import __version__ as datasette_version

from dl.manifest.lines import LINES, lock_file, locked_version, settings
from dl.manifest.load import load_manifest
from dl.manifest.model import canonical_prefix
from dl.manifest.schema import schema
from tests.conftest import make_db


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    make_db(tmp_path / "data" / "northwind.db")
    make_db(tmp_path / "data" / "cities.db")
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path / ".cache"))
    return tmp_path


def write(repo, text: str):
    (repo / "datasette-lambda.yml").write_text(text)
    return load_manifest(repo / "datasette-lambda.yml")


def test_three_line_manifest_gets_sensible_defaults(repo):
    m = write(repo, "project: my-data\ninstances:\n  northwind: {databases: [data/northwind.db]}\n")
    i = m.instances["northwind"]
    assert (m.project, m.version, m.region) == ("my-data", 1, None)
    assert i.databases[0].name == "northwind"
    assert i.databases[0].path == (repo / "data" / "northwind.db").resolve()
    assert (i.runtime, i.architecture, i.memory, i.timeout) == ("python3.13", "arm64", 1024, 30)
    assert (i.prefix, i.cors, i.cdn, i.endpoint, i.protect) == ("/", False, True, "function-url", False)
    assert (i.log_retention_days, dict(i.config), i.plugins, i.domain) == (30, {}, (), None)


def test_defaults_apply_and_instances_override_config_key_by_key(repo):
    m = write(
        repo,
        "project: p\ndefaults:\n  memory: 512\n  cors: true\n  config: {default_page_size: 10, sql_time_limit_ms: 500}\n"
        "instances:\n  a:\n    databases: [data/northwind.db]\n    config: {default_page_size: 20}\n"
        "  b:\n    databases: [{path: data/cities.db, name: places}]\n    memory: 2048\n",
    )
    a, b = m.instances["a"], m.instances["b"]
    assert (a.memory, b.memory, a.cors, b.cors) == (512, 2048, True, True)
    assert dict(a.config) == {"default_page_size": 20, "sql_time_limit_ms": 500}
    assert dict(b.config) == {"default_page_size": 10, "sql_time_limit_ms": 500}
    assert [d.name for d in b.databases] == ["places"]
    assert list(m.instances) == ["a", "b"]


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("data", "/data/"),
        ("/data", "/data/"),
        ("/data/", "/data/"),
        ("//a//b/", "/a/b/"),
        ("/", "/"),
        ("", "/"),
    ],
)
def test_prefixes_are_normalised(written, canonical):
    assert canonical_prefix(written) == canonical


def test_metadata_from_file_and_inline(repo):
    (repo / "meta.yml").write_text("title: Northwind\ndatabases:\n  northwind: {description: orders}\n")
    (repo / "meta.json").write_text(json.dumps({"title": "Cities"}))
    m = write(
        repo,
        "project: p\ninstances:\n  a: {databases: [data/northwind.db], metadata: meta.yml}\n"
        "  b: {databases: [data/cities.db], metadata: meta.json}\n"
        "  c: {databases: [data/cities.db], metadata: {title: Inline}}\n",
    )
    assert m.instances["a"].metadata["title"] == "Northwind"
    assert m.instances["a"].metadata["databases"]["northwind"]["description"] == "orders"
    assert m.instances["a"].metadata_source == "meta.yml"
    assert m.instances["b"].metadata["title"] == "Cities"
    assert (m.instances["c"].metadata["title"], m.instances["c"].metadata_source) == ("Inline", None)


def test_schema_config_lists_every_lines_settings():
    """schema.json lists exactly the settings of every Datasette line (minus base_url, which `prefix`
    replaces), typed alike; which line has which is checked by validation (tests/manifest/test_validate_cli.py)."""
    config = schema()["$defs"]["instance"]["properties"]["config"]["properties"]
    expected = {s.name: s.type for line in LINES for s in settings(line) if s.name != "base_url"}
    types = {"integer": int, "boolean": bool, "string": str}
    assert {name: types[p["type"]] for name, p in config.items()} == expected
    assert schema()["$defs"]["instance"]["properties"]["datasette"]["enum"] == list(LINES)


@pytest.mark.skipif(not datasette_version.startswith("0.65."), reason="needs Datasette 0.65 installed")
def test_shipped_settings_of_the_default_line_are_the_installed_datasettes():
    """The 0.65 line's settings data (written by dl/build/lock/regenerate.py) is Datasette 0.65.5's own list."""
    assert locked_version("0.65") == datasette_version
    assert [(s.name, s.default, s.help) for s in settings("0.65")] == [tuple(s) for s in SETTINGS]


def test_line_locks_pin_the_version_their_settings_describe():
    for line in LINES:
        assert f"datasette=={locked_version(line)} " in lock_file(line).read_text()
    assert locked_version("1.0a").startswith("1.0a")


def test_datasette_line_defaults_to_065_and_can_be_set_in_defaults(repo):
    m = write(
        repo,
        "project: p\ndefaults: {datasette: '1.0a'}\ninstances:\n  a: {databases: [data/northwind.db]}\n"
        "  b: {databases: [data/cities.db], datasette: '0.65', config: {default_page_size: 5}}\n"
        "  c: {databases: [data/cities.db], config: {max_insert_rows: 5}}\n",
    )
    assert [i.datasette for i in m.instances.values()] == ["1.0a", "0.65", "1.0a"]
    assert (
        write(repo, "project: p\ninstances:\n  a: {databases: [data/northwind.db]}\n")
        .instances["a"]
        .datasette
        == "0.65"
    )


def test_top_level_schema_json_is_the_shipped_one():
    from pathlib import Path

    top = Path(__file__).resolve().parents[2] / "schema.json"
    assert json.loads(top.read_text()) == schema()
