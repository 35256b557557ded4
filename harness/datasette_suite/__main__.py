"""Run Datasette's own test suite through dl's Lambda handler, at ``/`` and under a prefix, against controls.

    python -m harness.datasette_suite --checkout PATH [--sdist FILE] [--out DIR] [--modes ...] [-- PYTEST ARGS]

``PATH`` is a checkout of Datasette's repository at the tag of the installed Datasette (its ``tests/``
support files: ``fixtures.py``, ``conftest.py``, ``utils.py``, ``plugins/``, ``test_templates/``; the sdist
lacks them). The test files themselves come from Datasette's source distribution on PyPI (downloaded with
``pip download datasette==<installed> --no-binary :all: --no-deps`` unless ``--sdist`` names it). Nothing of
Datasette's is copied into this repository: both are assembled under ``--out`` (default
``harness-results/``).

Four runs of the same tests (``bridge``, the pytest plugin, explains each): ``plain`` and ``root`` (dl's
handler at ``/``), ``control`` (plain Datasette under ``base_url``) and ``prefix`` (dl's handler under the
prefix). The report (``report.md`` and the terminal) gives pass/fail per file and mode, every test that
passes in the reference run (``plain`` for ``root``, ``control`` for ``prefix``) and fails through dl, each
either in the allow-list (``allowlist.py``, with why) or unexplained, and the link audit of the prefixed
runs. Exit status 1 when a difference is unexplained or the audit of ``prefix`` finds a link outside the
prefix or a doubled one.

Needs Datasette's test dependencies in this Python (pytest-asyncio, beautifulsoup4, trustme, pytest-timeout,
cogapp, black): ``pip install -e '.[datasette-suite]'``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.datasette_suite.allowlist import ALLOWED, allowed_reason, audit_reason
from harness.datasette_suite.bridge import URL_KEYS

REPO = Path(__file__).resolve().parents[2]
MODES = ("plain", "root", "control", "prefix")
REFERENCE = {"root": "plain", "prefix": "control"}
SUPPORT = [
    "__init__.py",
    "conftest.py",
    "fixtures.py",
    "utils.py",
    "plugins",
    "test_templates",
    "spatialite.db",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.datasette_suite", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkout", required=True, type=Path, help="Datasette's repository at the tag")
    parser.add_argument("--sdist", type=Path, help="datasette-<version>.tar.gz (default: pip download it)")
    parser.add_argument("--out", type=Path, default=REPO / "harness-results")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    parser.add_argument("--jobs", type=int, default=2, help="runs at the same time (default 2)")
    parser.add_argument("--report-only", action="store_true", help="only render the report from --out")
    parser.add_argument(
        "pytest_args", nargs="*", help="after --: passed to pytest (e.g. -k, tests/test_x.py)"
    )
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    out = args.out.resolve()
    started = time.monotonic()
    if not args.report_only:
        work = assemble(args.checkout.resolve(), args.sdist, out)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda mode: run(mode, work, out, args.pytest_args), modes))
    modes = [mode for mode in modes if (out / f"{mode}.xml").exists()]
    results = {mode: read_junit(out / f"{mode}.xml") for mode in modes}
    audits = {mode: read_audit(out / f"{mode}-audit.jsonl") for mode in modes}
    report, failed = render(results, audits, time.monotonic() - started, datasette_version(), args)
    (out / "report.md").write_text(report)
    print(report)
    print(f"report: {out / 'report.md'}")
    return 1 if failed else 0


def datasette_version() -> str:
    from importlib.metadata import version

    return version("datasette")


def assemble(checkout: Path, sdist: Path | None, out: Path) -> Path:
    """``out/work``: the sdist's tests with the checkout's support files, and the checkout's docs."""
    version = datasette_version()
    if not (checkout / "tests" / "fixtures.py").exists():
        raise SystemExit(f"{checkout}: not a checkout of Datasette's repository (no tests/fixtures.py)")
    checkout_version = (checkout / "datasette" / "version.py").read_text().split('"')[1]
    if checkout_version != version:
        print(
            f"note: the checkout is Datasette {checkout_version}, the installed one {version}",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    if sdist is None:
        target = out / "sdist"
        sdist = target / f"datasette-{version}.tar.gz"
        if not sdist.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    f"datasette=={version}",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "--quiet",
                    "-d",
                    str(target),
                ],
                check=True,
            )
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "tests").mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) == 3 and parts[1] == "tests" and parts[2].startswith("test_") and member.isfile():
                (work / "tests" / parts[2]).write_bytes(tar.extractfile(member).read())
    for name in SUPPORT:
        source = checkout / "tests" / name
        if source.is_dir():
            shutil.copytree(source, work / "tests" / name)
        elif source.exists():
            shutil.copyfile(source, work / "tests" / name)
    for name in ("docs", "pytest.ini"):
        source = checkout / name
        if source.is_dir():
            shutil.copytree(source, work / name)
        elif source.exists():
            shutil.copyfile(source, work / name)
    return work


def run(mode: str, work: Path, out: Path, pytest_args: list[str]) -> None:
    audit = out / f"{mode}-audit.jsonl"
    audit.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DL_SUITE_MODE": mode,
        "DL_SUITE_AUDIT": str(audit),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        *(pytest_args or ["tests"]),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "harness.datasette_suite.bridge",
        f"--junitxml={out / f'{mode}.xml'}",
        "--timeout=300",
    ]
    started = time.monotonic()
    with open(out / f"{mode}.log", "w") as log:
        subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    print(f"{mode}: done in {time.monotonic() - started:.0f} s ({out / f'{mode}.log'})", file=sys.stderr)


def read_junit(path: Path) -> dict[str, str]:
    """{test id: passed | failed | error | skipped} from a JUnit XML file."""
    outcomes: dict[str, str] = {}
    if not path.exists():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "")
        test_id = (
            module.replace(".", "/") + ".py::" + case.get("name", "") if module else case.get("name", "")
        )
        if "/Test" in test_id:  # a class: tests/test_x/TestY.py -> tests/test_x.py::TestY
            head, _, cls = test_id.rpartition(".py::")[0].rpartition("/")
            test_id = f"{head}.py::{cls}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[test_id] = (
            "failed"
            if "failure" in kinds
            else "error"
            if "error" in kinds
            else "skipped"
            if "skipped" in kinds
            else "passed"
        )
    return outcomes


def read_audit(path: Path) -> list[dict]:
    if not path.exists():
        return []
    findings = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [f for f in findings if not f["where"].startswith("json ") or URL_KEYS.search(f["where"][5:])]


def render(results, audits, seconds: float, version: str, args) -> tuple[str, bool]:
    lines = [f"# Datasette {version}'s own test suite through dl", ""]
    lines.append(
        f"Command: `python -m harness.datasette_suite --checkout {args.checkout}` ({seconds / 60:.1f} minutes)"
    )
    lines += ["", "| mode | tests | passed | failed | errors | skipped |", "|---|---|---|---|---|---|"]
    for mode, outcomes in results.items():
        count = collections.Counter(outcomes.values())
        lines.append(
            f"| {mode} | {len(outcomes)} | {count['passed']} | {count['failed']} | {count['error']} | {count['skipped']} |"
        )
    lines += ["", "## Per file (passed / tests)", ""]
    files = sorted({test.split("::")[0] for outcomes in results.values() for test in outcomes})
    lines += ["| file | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    for file in files:
        cells = []
        for outcomes in results.values():
            mine = [o for t, o in outcomes.items() if t.split("::")[0] == file]
            cells.append(f"{mine.count('passed')} / {len(mine)}")
        lines.append(f"| {file} | " + " | ".join(cells) + " |")
    failed = False
    for mode, reference in REFERENCE.items():
        if mode not in results or reference not in results:
            continue
        ours, theirs = results[mode], results[reference]
        worse = sorted(t for t, o in theirs.items() if o == "passed" and ours.get(t) != "passed")
        better = sorted(t for t, o in ours.items() if o == "passed" and theirs.get(t) not in (None, "passed"))
        lines += ["", f"## {mode}: passes on {reference}, fails through dl ({len(worse)})", ""]
        unexplained = []
        for test in worse:
            reason = allowed_reason(mode, test)
            if reason:
                lines.append(f"- `{test}`: allowed: {reason}")
            else:
                unexplained.append(test)
                lines.append(f"- `{test}`: **unexplained** ({ours.get(test, 'missing')})")
        failed |= bool(unexplained)
        lines += ["", f"## {mode}: fails on {reference}, passes through dl ({len(better)})", ""]
        lines += [f"- `{test}`" for test in better[:200]]
    for mode in ("control", "prefix"):
        if mode not in audits:
            continue
        findings = audits[mode]
        explained = [f for f in findings if audit_reason(f)]
        unexplained = [f for f in findings if not audit_reason(f)]
        kinds = collections.Counter(f["kind"] for f in unexplained)
        patterns = {(f["kind"], f["url"].split("?")[0]) for f in unexplained}
        lines += [
            "",
            f"## Link audit, {mode}: {kinds['outside']} links outside the prefix, {kinds['doubled']} doubled "
            f"({len({p for k, p in patterns if k == 'outside'})} and {len({p for k, p in patterns if k == 'doubled'})} "
            f"distinct paths) in {len({f['test'] for f in unexplained})} tests; {len(explained)} explained",
            "",
        ]
        for kind, path in sorted(patterns)[:60]:
            example = next(f for f in unexplained if f["kind"] == kind and f["url"].split("?")[0] == path)
            lines.append(f"- {kind} ({example['where']}): `{example['url'][:160]}` in `{example['test']}`")
        for reason, count in collections.Counter(audit_reason(f) for f in explained).items():
            lines.append(f"- explained ({count}): {reason}")
        if mode == "prefix" and unexplained:
            failed = True
    lines += ["", f"Allow-list entries: {len(ALLOWED)} (harness/datasette_suite/allowlist.py)", ""]
    return "\n".join(lines), failed


if __name__ == "__main__":
    sys.exit(main())
