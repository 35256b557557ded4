"""The persistent sandbox: `dl sandbox up` starts moto's server as a background process that outlives each
command, `--sandbox` on every AWS-using command uses it, `dl sandbox down` stops it.

The Quick start's offline tour runs here end to end, command by command as the README writes it, each as a
separate `python -m dl` process (as a user runs them): apply, a data change, plan, status, serve writing its
log lines to the emulator's CloudWatch Logs, logs, destroy, down. Nothing here uses the tests' own moto server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.runtime.serving import fetch, start_serve, stop_serve

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
QUICK_START = README[
    README.index("## Quick start") : README.index("\n## ", README.index("## Quick start") + 3)
]
MANIFEST = "datasette-lambda.yml.example"


@pytest.fixture
def clone(tmp_path, shared_cache, monkeypatch):
    """A copy of the repository's example (manifest, databases, metadata, generator) as a fresh clone has it;
    an environment with no AWS at all (no endpoint, no credentials): only the sandbox can answer."""
    (tmp_path / ".git").mkdir()
    shutil.copy(REPO / MANIFEST, tmp_path / MANIFEST)
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*.yml.example"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "DL_")) and k != "CI"}
    # the suite's template gate watches the sandbox's emulator too, and records there what it refuses
    env.update(
        {k: v for k, v in os.environ.items() if k == "DL_EMULATOR_HOOK" or k.startswith("DL_TEMPLATE_GATE_")}
    )
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        DL_CACHE_DIR=str(shared_cache),
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    monkeypatch.chdir(tmp_path)
    yield tmp_path, env
    from dl.local.sandbox import down

    down(tmp_path / ".dl")  # whatever a failing test left running


def run(command: str, cwd: Path, env: dict, expect: int = 0) -> str:
    """One Quick start line (`dl ...` or `python ...`, optionally `VAR=value` first) as its own process."""
    words = shlex.split(command)
    extra = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        extra[name] = value
    if words[0] == "dl":
        words = [sys.executable, "-m", "dl", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, *words[1:]]
    done = subprocess.run(
        words,
        cwd=cwd,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == expect, f"{command} exited {done.returncode}:\n{output}"
    return output


def in_quick_start(command: str) -> str:
    """The README's Quick start shows this exact command (so the tour tested is the tour documented)."""
    assert command in QUICK_START, f"the Quick start no longer shows: {command}"
    return command


def test_quick_start_offline_tour_end_to_end(clone):
    folder, env = clone
    env["CITIES_API_TOKEN"] = "demo"  # the Quick start exports it first
    assert "export CITIES_API_TOKEN=demo" in QUICK_START

    out = run(in_quick_start("dl sandbox up"), folder, env)
    assert "Sandbox started at http://127.0.0.1:" in out
    state = json.loads((folder / ".dl" / "sandbox.json").read_text())
    url, pid = state["url"], state["pid"]
    assert run("dl sandbox up", folder, env).startswith(f"Sandbox already running at {url} (pid {pid};")

    out = run(in_quick_start(f"dl apply --sandbox --yes -f {MANIFEST}"), folder, env)
    assert "Apply complete: 2 succeeded, 0 failed." in out
    assert f"Sandbox: using the local AWS emulator at {url}" in out

    out = run(in_quick_start(f"dl plan --sandbox -f {MANIFEST}"), folder, env)
    assert "No changes. The deployment matches the manifest." in out  # a second plan sees the same emulator
    out = run(f"dl template --sandbox -f {MANIFEST} northwind --compact", folder, env)
    template = json.loads(
        next(line for line in out.splitlines() if line.startswith("{"))
    )  # --compact: one line
    # the bucket is looked up in the sandbox's bootstrap stack
    code = template["Resources"]["Function"]["Properties"]["Code"]
    assert code["S3Bucket"].startswith("example-data--bootstrap-artifactbucket-")

    run(in_quick_start("python examples/make_examples.py --more-orders 15"), folder, env)
    out = run(f"dl plan --sandbox -f {MANIFEST}", folder, env)
    assert "~ northwind: update" in out and "orders: rows 60 -> 75 (+15)" in out
    assert "Plan: 0 to create, 1 to update, 0 to destroy." in out

    out = run(in_quick_start(f"dl status --sandbox -f {MANIFEST}"), folder, env)
    assert "northwind: deployed, drifted from the manifest" in out
    assert "cities: deployed, in sync" in out and "places: " in out and ", 1 table\n" in out

    out = run(f"dl logs --sandbox -f {MANIFEST} northwind", folder, env, expect=1)
    assert "no logs yet for instance northwind: its function has not logged anything" in out

    in_quick_start(f"dl serve --sandbox -f {MANIFEST} northwind")
    served = start_serve(folder / MANIFEST, "--sandbox", "northwind", env=env)
    try:
        page = fetch(served.urls["northwind"] + "northwind/orders")
        assert page.status == 200
        sorts = sorted(set(re.findall(r'href="([^"]*\?_sort(?:_desc)?=[^"&]+)"', page.text)))
        assert any("_sort_desc=id" in link or "_sort=id" in link for link in sorts), sorts
        for link in sorts:  # every sort the table page offers answers (the example's sortable_columns)
            assert fetch(served.urls["northwind"].split("/northwind/")[0] + link).status == 200, link
        # one relay thread prints a line, then writes it to CloudWatch: once the last line is printed, the
        # first one has been written
        served.wait_for(re.escape(f"GET {sorts[-1]} 200 "), 30)
    finally:
        stop_serve(served)

    out = run(in_quick_start(f"dl logs --sandbox -f {MANIFEST} northwind"), folder, env)
    lines = [line for line in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line)]
    assert any(re.search(r"Z GET /northwind/northwind/orders 200 \d+ms$", line) for line in lines), out

    out = run(in_quick_start(f"dl destroy --sandbox --yes -f {MANIFEST} cities"), folder, env)
    assert "cities: destroyed" in out and "Destroy complete: 1 succeeded, 0 failed." in out
    assert "destroy destroyed" not in out and "Apply" not in out
    out = run(f"dl status --sandbox -f {MANIFEST}", folder, env)
    assert "cities: not deployed" in out and "northwind: deployed" in out

    out = run(in_quick_start("dl sandbox down"), folder, env)
    assert out == f"Sandbox at {url} (pid {pid}) stopped.\n"
    assert not (folder / ".dl" / "sandbox.json").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/moto-api/config", timeout=5)
    assert run("dl sandbox down", folder, env) == "No sandbox is running.\n"

    run(in_quick_start("python examples/make_examples.py"), folder, env)
    assert "orders: rows" not in run(f"dl plan --sandbox -f {MANIFEST}", folder, env)  # a fresh, empty one
    run("dl sandbox down", folder, env)


def test_sandbox_starts_when_none_runs_and_calls_the_emulator_hook(clone, tmp_path):
    """`--sandbox` without `dl sandbox up` starts it; the background process runs DL_EMULATOR_HOOK (the
    tests' template gate) on its server."""
    folder, env = clone
    hook = tmp_path / "hook_module.py"
    hook.write_text(
        "import os\n"
        "def seen(server):\n"
        "    host, port = server.get_host_and_port()\n"
        "    open(os.environ['HOOK_MARK'], 'w').write(f'{host}:{port}')\n"
    )
    env.update(
        DL_EMULATOR_HOOK="hook_module:seen",
        HOOK_MARK=str(tmp_path / "mark"),
        PYTHONPATH=f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}",
    )
    out = run(f"dl template --sandbox -f {MANIFEST} --bootstrap", folder, env)
    assert json.loads(out[out.index("{") :])["Resources"]
    out = run(f"dl logs --sandbox -f {MANIFEST} northwind", folder, env, expect=1)
    assert "Sandbox: started the local AWS emulator at http://127.0.0.1:" in out
    assert "no logs yet for instance northwind" in out
    url = json.loads((folder / ".dl" / "sandbox.json").read_text())["url"]
    assert url == "http://" + (tmp_path / "mark").read_text()
    run("dl sandbox down", folder, env)


def test_destroying_an_instance_that_is_not_deployed_is_a_usage_error(clone):
    """`dl destroy --sandbox` (in-process, a fresh sandbox) of an instance never deployed: exit 2, as for an
    unknown instance in `dl logs` and `dl plan --target`."""
    from click.testing import CliRunner

    from dl.cli import main

    folder, env = clone
    result = CliRunner().invoke(main, ["destroy", "--sandbox", "--yes", "-f", MANIFEST, "cities"], env=env)
    assert result.exit_code == 2, result.output
    assert "not deployed in project example-data (eu-west-1): cities" in result.output


def test_no_credentials_or_no_region_is_said_before_building_and_points_to_the_sandbox(clone, tmp_path):
    from click.testing import CliRunner

    from dl.cli import main

    folder, env = clone
    env["DL_CACHE_DIR"] = str(tmp_path / "fresh-cache")
    result = CliRunner().invoke(main, ["plan", "-f", MANIFEST], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: no AWS credentials found: ")
    assert "(or try it offline: --sandbox uses a local AWS emulator)" in result.output
    built = lambda: {p.name for p in (tmp_path / "fresh-cache").iterdir()} - {"sqlite-check"}  # noqa: E731
    assert built() == set()  # checked before any package was built (validation's own cache aside)
    (folder / "no-region.yml").write_text("project: p\ninstances:\n  a: {databases: [examples/cities.db]}\n")
    result = CliRunner().invoke(main, ["plan", "-f", "no-region.yml"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: no AWS region: set `region` in the manifest")
    assert "--sandbox uses a local AWS emulator" in result.output
    assert built() == set()


def test_sandbox_without_the_emulator_installed_says_how_to_install_it_and_nothing_else(clone, monkeypatch):
    """The hint fits where dl runs from (a clone: the editable install's extra), and no banner comes first."""
    from click.testing import CliRunner

    from dl.cli import main
    from dl.local.sandbox import install_hint

    folder, env = clone
    monkeypatch.setitem(sys.modules, "moto.server", None)  # `import moto.server` fails as if not installed
    result = CliRunner().invoke(main, ["plan", "--sandbox", "-f", MANIFEST], env=env)
    assert result.exit_code == 1
    assert result.output == f"Error: --sandbox needs the AWS emulator (moto's server): {install_hint()}\n"
    assert install_hint() == f"pip install -e '.[sandbox]' (in {REPO})"  # these tests run from a clone
    assert not (folder / ".dl" / "sandbox.json").exists()


def test_a_sandbox_that_died_is_forgotten_and_dl_is_git_ignored(clone):
    folder, env = clone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / ".dl").mkdir()
    (folder / ".dl" / "sandbox.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid}))
    assert run("dl sandbox down", folder, env) == "No sandbox is running.\n"
    assert not (folder / ".dl" / "sandbox.json").exists()
    assert ".dl/" in (REPO / ".gitignore").read_text().splitlines()
