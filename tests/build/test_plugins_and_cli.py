"""A plugin travels with its entry points (host build, run isolated); `dl package` explains its decisions."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile

from click.testing import CliRunner

from dl.build.package import build_package
from dl.cli import main
from tests.build.conftest import make_instance, northwind_db

PLUGIN = "datasette-block-robots==1.1.1"
LIST_PLUGINS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from datasette.plugins import get_plugins
print(json.dumps({p["name"]: p.get("version") for p in get_plugins()}))
"""


def test_host_package_with_a_plugin_runs_isolated_and_discovers_it(package_dir, package_cache):
    db = northwind_db(package_dir / "plugin" / "northwind.db")
    instance = make_instance({"northwind": db}, plugins=(PLUGIN,))
    out = package_dir / "host-plugin.zip"
    result = build_package(instance, out, target="host", cache_dir=package_cache, log=lambda _: None)
    assert result.versions["datasette-block-robots"] == "1.1.1"
    root = package_dir / "host-plugin"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(root)
        assert (
            json.loads(zf.read("dl_instance/instance.json"))["versions"]["datasette-block-robots"] == "1.1.1"
        )
    # only the unpacked package on the path: no site-packages, no tool environment
    python = str(result.python)
    done = subprocess.run([python, "-I", "-S", "-c", LIST_PLUGINS, str(root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["datasette-block-robots"] == "1.1.1"


MANIFEST = """\
project: my-data
instances:
  northwind:
    databases: [northwind.db, extra.db]
    prefix: /data
    cors: true
"""


def test_dl_package_prints_sizes_sha_and_decisions(built, tmp_path, monkeypatch, package_cache):
    instance, _ = built
    (tmp_path / ".git").mkdir()
    for db in instance.databases:
        (tmp_path / db.path.name).write_bytes(db.path.read_bytes())
    (tmp_path / "datasette-lambda.yml").write_text(MANIFEST)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_CACHE_DIR", str(package_cache))  # the session's dependency tree: no pip run
    result = CliRunner().invoke(main, ["package", "northwind", "-o", "out.zip"])
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256((tmp_path / "out.zip").read_bytes()).hexdigest()
    assert f"sha256:   {digest}" in result.output
    assert "reusing cached" in result.output
    assert "zipped:" in result.output and "unzipped:" in result.output
    assert "northwind: northwind.db (" in result.output
    assert "inlined; with all inlined databases the package is" in result.output
    assert re.search(
        r"unzipped: [\d.]+ MB \(dependencies [\d.]+ MB; \d+% of Lambda's 250 MB unzipped limit\)",
        result.output,
    )
    assert "datasette 0.65.5, mangum 0.22.0" in result.output


def test_dl_package_unknown_instance_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    northwind_db(tmp_path / "northwind.db")
    northwind_db(tmp_path / "extra.db")
    (tmp_path / "datasette-lambda.yml").write_text(MANIFEST)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["package", "nortwind"])
    assert result.exit_code == 2
    assert "no instance 'nortwind'" in result.output


def test_an_unpinned_plugin_builds_with_a_warning_naming_the_version_installed(package_dir, package_cache):
    db = northwind_db(package_dir / "unpinned" / "northwind.db")
    instance = make_instance({"northwind": db}, plugins=("datasette-block-robots>=1.0",))
    lines: list[str] = []
    result = build_package(
        instance, package_dir / "unpinned.zip", target="host", cache_dir=package_cache, log=lines.append
    )
    version = result.versions["datasette-block-robots"]
    warning = (
        "plugin 'datasette-block-robots>=1.0' is not pinned, so each build may install another version; "
        f"this build installed datasette-block-robots {version}: pin it as datasette-block-robots=={version}"
    )
    assert f"warning: {warning}" in lines
    assert warning in result.messages


def test_only_exact_pins_count_as_pinned():
    from dl.build.dependencies import unpinned_plugins

    versions = {"datasette-cluster-map": "0.18.2", "Datasette_Vega": "0.6.2"}
    assert unpinned_plugins(["datasette-cluster-map==0.18.2", "datasette.vega [x] === 0.6.2"], versions) == []
    warned = unpinned_plugins(
        ["datasette-cluster-map", "datasette_vega~=0.6", "datasette-cluster-map==0.*"], versions
    )
    assert [w.split(" is not pinned")[0] for w in warned] == [
        "plugin 'datasette-cluster-map'",
        "plugin 'datasette_vega~=0.6'",
        "plugin 'datasette-cluster-map==0.*'",
    ]
    assert warned[1].endswith("this build installed Datasette_Vega 0.6.2: pin it as Datasette_Vega==0.6.2")
    assert unpinned_plugins(["not-a-plugin"], versions) == [
        "plugin 'not-a-plugin' is not pinned, so each build may install another version; no Datasette "
        "plugin of that name was installed"
    ]
