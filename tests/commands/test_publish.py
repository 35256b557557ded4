"""`datasette publish lambda`: the Datasette plugin, installed in this environment, deploying through `dl apply`.

The deploy tests run the real `datasette` console script of this interpreter's environment (the package's
entry point must be installed: `pip install -e .`) against moto's server (AWS_ENDPOINT_URL, the `aws` fixture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import click
import pytest
import yaml
from click.testing import CliRunner

from dl.cli import main
from dl.commands import publish as dl_publish
from tests.security.test_secrets import everything_visible, function_env

REPO = Path(__file__).resolve().parents[2]
NORTHWIND = REPO / "examples" / "northwind.db"
DATASETTE = Path(sys.executable).parent / "datasette"
SECRET = "pl4gin-s3cret-Value-never-shown"


@pytest.fixture(scope="session")
def publish_cache(tmp_path_factory):
    """One tool cache for the session: each line's dependency tree is installed and compiled once."""
    return tmp_path_factory.mktemp("dl-cache")


@pytest.fixture
def folder(tmp_path, aws, publish_cache, monkeypatch):
    """A repository folder holding a copy of the example database; the cwd; the shared cache."""
    (tmp_path / ".git").mkdir()
    shutil.copy(NORTHWIND, tmp_path / "northwind.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_CACHE_DIR", str(publish_cache))
    monkeypatch.setenv("DL_POLL_SECONDS", "0.05")
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "CI", "DATASETTE_PUBLISH_SECRET"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def datasette(*args: str) -> subprocess.CompletedProcess:
    """The installed `datasette` command, in a separate process, with this test's environment."""
    assert DATASETTE.exists(), f"no {DATASETTE}: install the package (pip install -e .) in this environment"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(DATASETTE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert "No such command 'lambda'" not in done.stderr, (
        "the package's `datasette` entry point is not installed in this environment: run `pip install -e .` "
        "(entry points are recorded at install time)"
    )
    return done


def stack(name: str) -> dict:
    return boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]


# --- the plugin, installed --------------------------------------------------------------------------------


def test_help_lists_the_options():
    result = datasette("publish", "lambda", "--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "--name",
        "--project",
        "--region",
        "--datasette",
        "--prefix",
        "--domain",
        "--memory",
        "--cdn / --no-cdn",
        "--endpoint",
        "--cors",
        "--setting NAME VALUE",
        "--yes",
        "--manifest-out",
        "--metadata",
        "--install",
        "--plugin-secret",
        "--title",
        "--secret",
    ):
        assert option in result.stdout, option
    assert "Refused on Lambda" in result.stdout  # --static and the others say so in the help too
    listed = datasette("publish", "--help")
    assert "lambda" in listed.stdout.split("Commands:")[1]


def test_publish_deploys_updates_in_place_and_writes_a_manifest_dl_plan_agrees_with(folder):
    first = datasette("publish", "lambda", "northwind.db", "--name", "nw", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "+ nw: create" in first.stdout
    assert "Apply complete: 1 succeeded, 0 failed." in first.stdout
    created = stack("nw-nw")
    assert {t["Key"]: t["Value"] for t in created["Tags"]}["dl:project"] == "nw"
    assert boto3.client("lambda").get_function_configuration(FunctionName="nw-nw")["MemorySize"] == 1024

    second = datasette(
        "publish", "lambda", "northwind.db", "--name", "nw", "--yes", "--title", "Northwind",
        "--memory", "2048", "--setting", "default_page_size", "20",
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "~ nw: update" in second.stdout
    assert "Apply complete: 1 succeeded, 0 failed." in second.stdout
    assert stack("nw-nw")["StackId"] == created["StackId"]  # the same stack, updated in place
    assert boto3.client("lambda").get_function_configuration(FunctionName="nw-nw")["MemorySize"] == 2048

    third = datasette(
        "publish", "lambda", "northwind.db", "--name", "nw", "--yes", "--title", "Northwind",
        "--memory", "2048", "--setting", "default_page_size", "20", "--manifest-out", "datasette-lambda.yml",
    )  # fmt: skip
    assert third.returncode == 0, third.stdout + third.stderr
    assert "No changes. The deployment matches the manifest." in third.stdout
    written = yaml.safe_load((folder / "datasette-lambda.yml").read_text())
    assert written["instances"]["nw"] == {
        "databases": ["northwind.db"],
        "metadata": {"title": "Northwind"},
        "memory": 2048,
        "config": {"default_page_size": 20},
    }
    plan = CliRunner().invoke(main, ["plan", "--detailed-exitcode"], catch_exceptions=False)
    assert plan.exit_code == 0, plan.output
    assert "No changes. The deployment matches the manifest." in plan.output


def test_only_its_own_instance_is_planned(folder):
    (folder / "datasette-lambda.yml").write_text(
        "project: shared\ninstances:\n  alpha: {databases: [northwind.db]}\n  beta: {databases: [northwind.db]}\n"
    )
    assert CliRunner().invoke(main, ["apply", "--yes"], catch_exceptions=False).exit_code == 0
    result = datasette("publish", "lambda", "northwind.db", "--project", "shared", "--name", "gamma", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+ gamma: create" in result.stdout
    assert "alpha" not in result.stdout and "beta" not in result.stdout  # never planned for destruction
    for name in ("shared-alpha", "shared-beta", "shared-gamma"):
        assert stack(name)["StackStatus"].endswith("_COMPLETE")


def test_plugin_secret_reaches_the_function_and_is_never_shown(folder):
    result = datasette(
        "publish", "lambda", "northwind.db", "--name", "sec", "--yes", "--manifest-out", "datasette-lambda.yml",
        "--plugin-secret", "datasette-auth-tokens", "secret", SECRET,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert function_env("sec-sec")["DATASETTE_AUTH_TOKENS_SECRET"] == SECRET
    manifest = (folder / "datasette-lambda.yml").read_text()
    written = yaml.safe_load(manifest)["instances"]["sec"]
    assert written["secrets"] == {"DATASETTE_AUTH_TOKENS_SECRET": "DATASETTE_AUTH_TOKENS_SECRET"}
    assert written["metadata"] == {
        "plugins": {"datasette-auth-tokens": {"secret": {"$env": "DATASETTE_AUTH_TOKENS_SECRET"}}}
    }
    assert SECRET not in everything_visible([result.stdout, result.stderr, manifest])


def test_a_datasette_10_instance_deploys(folder):
    result = datasette(
        "publish", "lambda", "northwind.db", "--name", "next", "--yes", "--datasette", "1.0a",
        "--setting", "max_insert_rows", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Apply complete: 1 succeeded, 0 failed." in result.stdout
    body = boto3.client("cloudformation").get_template(StackName="next-next")["TemplateBody"]
    spec = (yaml.safe_load(body) if isinstance(body, str) else body)["Metadata"]["DatasetteLambda"]["spec"]
    assert spec["datasette"] == "1.0a"
    assert spec["versions"]["datasette"].startswith("1.0a")
    assert spec["config"] == {"max_insert_rows": 10}


# --- options, in-process (the hook on a group of its own) ----------------------------------------------------


@pytest.fixture
def publish_group():
    @click.group()
    def publish():
        pass

    dl_publish.publish_subcommand(publish)
    return publish


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--static", "assets:."], "--static is not supported by datasette publish lambda"),
        (["--plugins-dir", "."], "--plugins-dir is not supported"),
        (["--template-dir", "."], "--template-dir is not supported"),
        (["--extra-options", "x"], "--extra-options is not supported"),
        (["--branch", "main"], "--branch is not supported"),
        (["--version-note", "x"], "--version-note is not supported"),
        (["--setting", "base_url", "/x/"], "base_url: use --prefix instead"),
        (["--setting", "default_page_sise", "5"], "did you mean 'default_page_size'?"),
        (["--setting", "max_insert_rows", "5"], "'max_insert_rows' is not a setting of Datasette 0.65"),
        (["--setting", "allow_facet", "maybe"], "allow_facet expects on/off"),
    ],
)
def test_unsupported_options_and_bad_settings_are_refused(publish_group, tmp_path, option, message):
    db = shutil.copy(NORTHWIND, tmp_path / "northwind.db")
    result = CliRunner().invoke(publish_group, ["lambda", str(db), "--name", "nw", *option])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_manifest_out_must_hold_its_databases(publish_group, tmp_path):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    db = shutil.copy(NORTHWIND, tmp_path / "northwind.db")
    out = tmp_path / "repo" / "datasette-lambda.yml"
    result = CliRunner().invoke(
        publish_group, ["lambda", str(db), "--name", "nw", "--manifest-out", str(out)]
    )
    assert result.exit_code == 2
    assert "is outside" in result.output and "next to the databases" in result.output
    assert not out.exists()


def test_metadata_options_merge_into_the_metadata_file(publish_group, tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    db = shutil.copy(NORTHWIND, tmp_path / "northwind.db")
    (tmp_path / "meta.yml").write_text("title: From the file\nlicense: CC0\n")
    ran = []
    monkeypatch.setattr(dl_publish, "_run_dl", ran.append)  # stop before AWS: the mapping is under test
    out = tmp_path / "datasette-lambda.yml"
    args = ["lambda", str(db), "--name", "nw", "--manifest-out", str(out), "-m", str(tmp_path / "meta.yml")]
    args += [
        "--title",
        "From the option",
        "--source_url",
        "https://example.org",
        "--install",
        "datasette-x==1",
    ]
    args += ["--prefix", "/data", "--no-cdn", "--cors", "--endpoint", "http-api", "--region", "eu-central-1"]
    args += ["--datasette", "1.0a", "--setting", "allow_signed_tokens", "off", "--project", "proj"]
    result = CliRunner().invoke(publish_group, args)
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(out.read_text())
    assert (document["project"], document["region"]) == ("proj", "eu-central-1")
    assert document["instances"]["nw"] == {
        "datasette": "1.0a",
        "databases": ["northwind.db"],
        "metadata": {"title": "From the option", "license": "CC0", "source_url": "https://example.org"},
        "prefix": "/data",
        "cdn": False,
        "endpoint": "http-api",
        "cors": True,
        "config": {"allow_signed_tokens": False},
        "plugins": ["datasette-x==1"],
    }
    assert ran == [["apply", "-f", str(out), "--target", "nw"]]  # no --yes: dl apply asks


def test_a_metadata_file_alone_is_referenced_by_path(publish_group, tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    db = shutil.copy(NORTHWIND, tmp_path / "northwind.db")
    (tmp_path / "meta.yml").write_text("title: From the file\n")
    monkeypatch.setattr(dl_publish, "_run_dl", lambda args: None)
    out = tmp_path / "datasette-lambda.yml"
    args = ["lambda", str(db), "-n", "nw", "--manifest-out", str(out), "-m", str(tmp_path / "meta.yml")]
    assert CliRunner().invoke(publish_group, args).exit_code == 0
    assert yaml.safe_load(out.read_text())["instances"]["nw"]["metadata"] == "meta.yml"
