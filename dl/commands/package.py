"""``dl package``: build the deployment zip of one instance and explain where each database goes."""

from __future__ import annotations

import re
from pathlib import Path

import click

from dl.build.locations import human, limit_share
from dl.build.package import PackageResult, build_package
from dl.commands.options import load, manifest_option, outside_paths_option, select_instances


def parse_size(text: str) -> int:
    """'50MB' / '2.5 GB' / '1000000' -> bytes (decimal units; MiB/GiB binary)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgG]i?[bB]?|[bB])?\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 50MB)")
    number, unit = float(match.group(1)), (match.group(2) or "b").lower().rstrip("b")
    factors = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
    return int(number * factors[unit])


@click.command("package")
@click.argument("instance_name", metavar="INSTANCE")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Zip to write (default INSTANCE.zip).",
)
@manifest_option
@outside_paths_option
@click.option(
    "--target",
    type=click.Choice(["lambda", "host"]),
    default="lambda",
    show_default=True,
    help="lambda: manylinux wheels for the instance's runtime and architecture; host: wheels for this machine.",
)
@click.option(
    "--inline-limit",
    metavar="SIZE",
    callback=lambda _ctx, _param, value: None if value is None else parse_size(value),
    help="Inline at most SIZE bytes of databases (e.g. 50MB); default: all that fit Lambda's limit.",
)
def package_command(instance_name, output, manifest_path, allow_outside_paths, target, inline_limit):
    """Build the deployment zip of INSTANCE and explain where each database goes."""
    manifest = load(manifest_path, allow_outside_paths)
    (name,) = select_instances(manifest, (instance_name,))
    out = output or Path(f"{name}.zip")
    result = build_package(
        manifest.instances[name], out, target=target, inline_limit=inline_limit, log=click.echo
    )
    click.echo(render_result(result))


def render_result(result: PackageResult) -> str:
    """The human summary of a build."""
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    lines = [
        f"package: {result.path}",
        f"  sha256:   {result.sha256}",
        f"  zipped:   {human(result.zipped_size)} ({result.zipped_size} bytes)",
        f"  unzipped: {human(result.unzipped_size)} (dependencies {human(result.dependencies_size)}; "
        f"{limit_share(result.unzipped_size)})",
        f"  python:   {result.python_version} ({result.target}); bytecode: "
        + ("precompiled" if result.bytecode else "none (sources only)"),
        f"  versions: {versions}",
        "databases:",
        *(f"  {d.name}: {d.reason}" for d in result.databases),
    ]
    if not result.databases:
        lines.append("  (none)")
    return "\n".join(lines)
