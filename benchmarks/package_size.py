"""Package size: the ``dl package`` zip against a naive ``pip install --target`` of the same pins, in one run.

    .venv/bin/python benchmarks/package_size.py [--python 3.13] [--architecture x86_64] [--top 15]

Both hold code only (an instance without databases: databases are the user's bytes, the same either way).

* **lean**: ``dl.build.package.build_package`` for Lambda (manylinux wheels of the instance's Python and
  architecture): leaned, bytecode compiled for the target Python (without column tables) and shipped
  sourceless, deflate level 6.
* **naive**: ``pip install --target`` of the same pinned versions for the same platform (what a hand-made
  Lambda package holds: pip and setuptools included), zipped with ``zip -r``'s default level (6); the same
  tree at level 9 is shown too, so the gain from the compression level alone can be told apart.

Prints zipped and unzipped sizes, the ratios lean/naive, and the largest entries of the lean zip. The lean
tree is cached (``$DL_CACHE_DIR/deps``), the naive one under ``$DL_CACHE_DIR/benchmarks``.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cold_start import bench_instance  # noqa: E402
from dl.build.dependencies import LOCK_FILE, lock_pins, target_spec  # noqa: E402
from dl.build.hashing import cache_dir  # noqa: E402
from dl.build.locations import human  # noqa: E402
from dl.build.package import build_package  # noqa: E402


def naive_tree(root: Path, python_version: str, platforms: tuple[str, ...]) -> Path:
    """``pip install --target`` of the lock's pins for the Lambda platform (reused when present)."""
    if (root / ".complete").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    pins = root.parent / f"{root.name}-pins.txt"
    pins.write_text(lock_pins(LOCK_FILE.read_text()))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(root), "--no-compile"]
    cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for platform in platforms:
        cmd += ["--platform", platform]
    subprocess.run([*cmd, "-r", str(pins)], check=True, capture_output=True)
    (root / ".complete").write_text("")
    return root


def zip_tree(tree: Path, out: Path, level: int) -> tuple[int, int]:
    """(zipped, unzipped) bytes of ``tree`` zipped at ``level`` (files only, like ``zip -r``)."""
    unzipped = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file() and path.name != ".complete":
                zf.write(path, path.relative_to(tree).as_posix())
                unzipped += path.stat().st_size
    return out.stat().st_size, unzipped


def largest(zip_path: Path, top: int) -> str:
    """The biggest top-level entries and kinds of file of a zip, by compressed size."""
    by_top, by_kind = collections.Counter(), collections.Counter()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            by_top[info.filename.split("/")[0]] += info.compress_size
            leaf = info.filename.rsplit("/", 1)[-1]
            by_kind[leaf.rsplit(".", 1)[-1] if "." in leaf else "(none)"] += info.compress_size
    lines = ["largest top-level entries of the lean zip (compressed):"]
    lines += [f"  {human(size):>9}  {name}" for name, size in by_top.most_common(top)]
    lines.append("by kind: " + ", ".join(f"{kind} {human(size)}" for kind, size in by_kind.most_common(6)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="lean package vs naive pip --target, zipped and unzipped")
    parser.add_argument("--python", default="3.13", help="target Python version")
    parser.add_argument("--architecture", default="x86_64", choices=["x86_64", "arm64"])
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    instance = replace(
        bench_instance(Path("unused.db")),
        databases=(),
        runtime=f"python{args.python}",
        architecture=args.architecture,
    )
    work = cache_dir() / "benchmarks"
    with tempfile.TemporaryDirectory(prefix="dl-size-") as tmp:
        lean = build_package(instance, Path(tmp) / "lean.zip", target="lambda", log=lambda _: None)
        if not lean.bytecode:
            print(f"warning: no python{args.python} interpreter: the lean package ships sources only")
        spec = target_spec(instance, "lambda")
        naive = naive_tree(
            work / f"naive-target-{args.python}-{args.architecture}", args.python, spec.platforms
        )
        naive6, naive_unzipped = zip_tree(naive, Path(tmp) / "naive6.zip", 6)
        naive9, _ = zip_tree(naive, Path(tmp) / "naive9.zip", 9)
        print(
            f"python{args.python} {args.architecture}, pins of {LOCK_FILE.relative_to(LOCK_FILE.parents[2])}"
        )
        print(f"{'':>22} {'zipped':>10} {'unzipped':>10}")
        print(f"{'lean (dl package)':>22} {human(lean.zipped_size):>10} {human(lean.unzipped_size):>10}")
        print(f"{'naive, zip level 6':>22} {human(naive6):>10} {human(naive_unzipped):>10}")
        print(f"{'naive, zip level 9':>22} {human(naive9):>10} {human(naive_unzipped):>10}")
        print(
            f"ratio lean/naive: {lean.zipped_size / naive6:.2f}x zipped (vs level 9: "
            f"{lean.zipped_size / naive9:.2f}x), {lean.unzipped_size / naive_unzipped:.2f}x unzipped "
            f"(goal: zipped <= 0.50x)"
        )
        print(largest(lean.path, args.top))


if __name__ == "__main__":
    main()
