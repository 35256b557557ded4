"""The tree shows the pipeline: stage folders under dl/, small modules, imports that flow one way.

Read from the source (ast), so a lazy import inside a function counts like one at the top: a cycle hidden in a
function is still a cycle.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DL = ROOT / "dl"
MAX_LINES = 450
TOP_LEVEL = {"__init__.py", "__main__.py", "cli.py", "errors.py", "plan.py"}
STAGES = {
    "manifest",
    "build",
    "aws",
    "plan",
    "apply",
    "render",
    "github",
    "local",
    "ops",
    "commands",
    "runtime",
}
# the modules that may import boto3 or botocore: the adapter and what reads or writes AWS through it
AWS_SDK = ("boto3", "botocore")
EFFECTFUL = ("dl.aws.", "dl.apply.", "dl.ops.", "dl.local.", "dl.commands.", "dl.runtime.", "dl.cli")
PURE_IN_AWS = (
    "dl.aws",
    "dl.aws.names",
    "dl.aws.templates",
    "dl.aws.front_door",
    "dl.aws.intrinsics",
    "dl.aws.cloudfront_function",
    "dl.aws.metadata_json",
    "dl.aws.bootstrap",
    "dl.aws.execution_role",
    "dl.aws.preview_execution_role",
)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(DL.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def imports(name: str) -> tuple[set[str], set[str]]:
    """(the dl modules ``name`` imports, anywhere in it; the top-level names of everything else it imports)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, others = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "dl" or target.startswith("dl."):
                while target not in MODULES:  # dl.x.attr -> dl.x
                    target = target.rpartition(".")[0]
                if target != name:
                    ours.add(target)
            elif target:
                others.add(target.split(".")[0])
    ours.discard("dl")  # `from dl import __version__`: the package's own constant
    return ours, others


GRAPH = {name: imports(name)[0] for name in MODULES}


def test_dl_holds_stage_folders_and_a_few_modules_at_its_top():
    top = {p.name for p in DL.iterdir() if p.suffix == ".py"}
    assert top <= TOP_LEVEL, (
        f"modules at the top of dl/ that belong in a stage folder: {sorted(top - TOP_LEVEL)}"
    )
    folders = {p.name for p in DL.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= STAGES, f"folders that are not a stage: {sorted(folders - STAGES)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_450_lines(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_no_import_cycle():
    cycles, done, stack = [], set(), []

    def visit(node):
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node) :] + [node]))
            return
        if node in done:
            return
        stack.append(node)
        for dep in sorted(GRAPH[node]):
            visit(dep)
        stack.pop()
        done.add(node)

    for name in sorted(GRAPH):
        visit(name)
    assert cycles == []


def test_the_lambda_runtime_imports_nothing_of_the_cli():
    for name, deps in GRAPH.items():
        if name.startswith("dl.runtime"):
            assert all(dep.startswith("dl.runtime") for dep in deps), (name, deps)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_modules_that_talk_to_aws_import_its_sdk(name):
    sdk = imports(name)[1] & set(AWS_SDK)
    if sdk:
        assert name.startswith(EFFECTFUL) and name not in PURE_IN_AWS, f"{name} imports {sorted(sdk)}"


def test_pure_modules_reach_no_aws_sdk_through_their_imports():
    """The templates, the plan, the renderings and the manifest can be imported without boto3: nothing they
    import (at any depth) imports it."""
    pure = [n for n in MODULES if n in PURE_IN_AWS or n.startswith(("dl.manifest", "dl.plan", "dl.render"))]
    for name in pure:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            sdk = imports(current)[1] & set(AWS_SDK)
            assert not sdk, f"{name} reaches {sorted(sdk)} through {current}"
            todo.extend(GRAPH[current])


def test_the_tests_mirror_the_stage_folders():
    tests = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    missing = {p.name for p in DL.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - tests
    assert not missing, f"stage folders without a tests/ folder: {sorted(missing)}"


def test_pytest_collects_every_tests_folder(pytestconfig):
    """A folder pytest does not recurse into (its default list has "build") would silently run no test."""
    skipped = pytestconfig.getini("norecursedirs")
    for folder in (ROOT / "tests").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("test_*.py")):
            assert not any(fnmatch.fnmatch(folder.name, pattern) for pattern in skipped), (
                f"pytest would not collect {folder.relative_to(ROOT)} (norecursedirs)"
            )


def test_schema_json_at_the_root_is_the_packaged_schema():
    assert (ROOT / "schema.json").read_bytes() == (DL / "manifest" / "schema.json").read_bytes()
