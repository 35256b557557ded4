"""``datasette publish lambda``: Datasette's publish command, deploying through ``dl apply``.

A Datasette plugin (entry point ``lambda = "dl.commands.publish"`` in the ``datasette`` group) implementing the
``publish_subcommand`` hook. It never deploys by itself: it writes a manifest for one instance (a temporary
one, or ``--manifest-out FILE`` to keep it as the start of a GitOps repository) and runs ``dl apply`` on it
with ``--target`` that instance, so the plan shown, the confirmation, the apply and its errors are exactly
``dl apply``'s, and other instances of the same project are never planned for destruction.

Datasette's common publish options (``datasette.publish.common``) map onto the manifest: ``--metadata`` and
``--title``/``--license``/``--source``/``--about`` (and their URLs) become ``metadata``, ``--install`` becomes
``plugins``, ``--plugin-secret PLUGIN KEY VALUE`` becomes a ``secrets:`` entry (the value travels only in this
process's environment, as ``dl apply`` reads every secret) referenced from the plugin's configuration with
Datasette's ``{"$env": ...}``, and ``--secret`` sets ``DATASETTE_SECRET`` the same way. Options the Lambda
package cannot honour (``--static``, ``--plugins-dir``, ``--template-dir``, ``--extra-options``, ``--branch``,
``--version-note``) are refused with a message saying why.

This module is part of the tool, not of the Lambda package (``dl/build/package.py`` ships only ``dl/runtime``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import click
import yaml
from datasette import hookimpl

from dl.manifest.lines import DEFAULT_LINE, LINES, settings
from dl.manifest.load import DEFAULT_MANIFEST, find_root

# Datasette's common options dl cannot honour, and why (each refused when given).
UNSUPPORTED = {
    "static": "static files are not packaged; serve them from a plugin or another host",
    "plugins_dir": "a plugins directory is not packaged; publish your plugin to PyPI and use --install",
    "template_dir": "custom templates are not packaged; ship them in a plugin and use --install",
    "extra_options": "the Lambda runtime does not run `datasette serve`; use --setting NAME VALUE for settings",
    "branch": "the Lambda package installs the locked Datasette release of its line (see --datasette)",
    "version_note": "the Lambda package does not set a version note",
}
METADATA_FIELDS = ("title", "license", "license_url", "source", "source_url", "about", "about_url")


def _common_options(command):
    """Datasette's own common publish options, when this Datasette has them (0.65 and the 1.0 alphas do)."""
    from datasette.publish.common import add_common_publish_arguments_and_options

    return add_common_publish_arguments_and_options(command)


def _secret_env_name(plugin: str, key: str) -> str:
    """The function's environment variable for a plugin secret, named as Datasette's publishers name it."""
    return re.sub(r"[^A-Z0-9_]", "_", f"{plugin}_{key}".upper())


def setting_value(name: str, text: str, line: str):
    """A ``--setting NAME VALUE`` typed by the line's own settings list; click.BadParameter if unknown."""
    from dl.manifest.schema import suggest

    known = {s.name: s for s in settings(line) if s.name != "base_url"}
    if name == "base_url":
        raise click.BadParameter("base_url: use --prefix instead", param_hint="--setting")
    if name not in known:
        raise click.BadParameter(
            f"{name!r} is not a setting of Datasette {line}{suggest(name, list(known))}",
            param_hint="--setting",
        )
    kind = known[name].type
    if kind is bool:
        lowered = text.lower()
        if lowered in ("on", "true", "1", "yes"):
            return True
        if lowered in ("off", "false", "0", "no"):
            return False
        raise click.BadParameter(f"{name} expects on/off, got {text!r}", param_hint="--setting")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise click.BadParameter(
                f"{name} expects an integer, got {text!r}", param_hint="--setting"
            ) from None
    return text


def _metadata(metadata_file, fields: dict, plugin_config: dict, manifest_dir: Path):
    """The manifest's ``metadata``: the file by path when nothing is added to it, else one inline mapping."""
    if metadata_file is None and not fields and not plugin_config:
        return None
    path = Path(metadata_file.name) if metadata_file is not None else None
    if path is not None and path.is_file() and not fields and not plugin_config:
        return os.path.relpath(path.resolve(), manifest_dir)
    content = {}
    if metadata_file is not None:
        text = metadata_file.read()
        try:
            content = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"not JSON or YAML: {exc}", param_hint="--metadata") from None
        if not isinstance(content, dict):
            raise click.BadParameter("must hold a mapping (title, databases, ...)", param_hint="--metadata")
    content.update(fields)
    for plugin, values in plugin_config.items():
        content.setdefault("plugins", {}).setdefault(plugin, {}).update(values)
    return content


def build_manifest(
    *,
    files: tuple[str, ...],
    manifest_dir: Path,
    name: str,
    project: str,
    region: str | None,
    line: str,
    metadata,
    plugins: tuple[str, ...],
    secrets: dict[str, str],
    config: dict,
    instance: dict,
) -> dict:
    """The manifest document of one instance (pure): databases relative to ``manifest_dir``."""
    entry: dict = {}
    if line != DEFAULT_LINE:
        entry["datasette"] = line
    entry["databases"] = [os.path.relpath(Path(f).resolve(), manifest_dir) for f in files]
    if metadata is not None:
        entry["metadata"] = metadata
    entry.update({k: v for k, v in instance.items() if v is not None})
    if config:
        entry["config"] = config
    if plugins:
        entry["plugins"] = list(plugins)
    if secrets:
        entry["secrets"] = {env: env for env in sorted(secrets)}
    document: dict = {"version": 1, "project": project}
    if region:
        document["region"] = region
    document["instances"] = {name: entry}
    return document


def render_manifest(document: dict) -> str:
    header = (
        "# Written by `datasette publish lambda`. Deploy changes with `dl apply`; the manifest reference is\n"
        "# datasette-lambda's docs/manifest.md. Secrets are read from the environment variables named under `secrets`.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Secret values for `dl apply` to read, for as long as it runs (never written anywhere)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _refuse_unsupported(ctx: click.Context, given: dict) -> None:
    for option, why in UNSUPPORTED.items():
        if given.get(option):
            flag = "--" + option.replace("_", "-")
            raise click.UsageError(f"{flag} is not supported by datasette publish lambda: {why}", ctx=ctx)


def _explicit(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


@hookimpl
def publish_subcommand(publish):
    @publish.command(name="lambda")
    @_common_options
    @click.option("-n", "--name", required=True, help="The instance to deploy (stack <project>-<name>).")
    @click.option("--project", help="The project (default: the instance's name).")
    @click.option("--region", help="AWS region (default: boto3's, e.g. AWS_REGION).")
    @click.option(
        "--datasette",
        "line",
        type=click.Choice(LINES),
        default=DEFAULT_LINE,
        show_default=True,
        help="The Datasette line the function runs.",
    )
    @click.option("--prefix", help="URL path the instance is served under (default /).")
    @click.option("--domain", help="Custom domain (served by CloudFront, so needs the CDN).")
    @click.option("--memory", type=click.IntRange(128, 10240), help="Lambda memory in MB (default 1024).")
    @click.option("--cdn/--no-cdn", default=None, help="CloudFront in front of the function (default: on).")
    @click.option(
        "--endpoint",
        type=click.Choice(["function-url", "http-api"]),
        help="The function's front door (default function-url).",
    )
    @click.option("--cors", is_flag=True, default=None, help="Send Access-Control-Allow-Origin: *.")
    @click.option(
        "--setting",
        "settings_",
        type=(str, str),
        multiple=True,
        metavar="NAME VALUE",
        help="A Datasette setting, e.g. --setting default_page_size 50 (repeatable).",
    )
    @click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
    @click.option(
        "--manifest-out",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Keep the generated manifest in this file (e.g. {DEFAULT_MANIFEST}) and deploy from it.",
    )
    @click.pass_context
    def lambda_(ctx, files, metadata, plugin_secret, install, secret, name, project, region, line, **options):
        """Publish databases to Datasette on AWS Lambda, through datasette-lambda's `dl apply`."""
        _refuse_unsupported(ctx, options)
        if not files:
            raise click.UsageError("name at least one database file to publish", ctx=ctx)
        config = {key: setting_value(key, value, line) for key, value in options["settings_"]}
        environment: dict[str, str] = {}
        plugin_config: dict[str, dict] = {}
        for plugin, key, value in plugin_secret:
            env = _secret_env_name(plugin, key)
            environment[env] = value
            plugin_config.setdefault(plugin, {})[key] = {"$env": env}
        if secret and _explicit(ctx, "secret"):
            environment["DATASETTE_SECRET"] = secret
        out = options["manifest_out"]
        fields = {k: options[k] for k in METADATA_FIELDS if options.get(k)}
        instance = {
            "prefix": options["prefix"],
            "domain": options["domain"],
            "memory": options["memory"],
            "cdn": options["cdn"],
            "endpoint": options["endpoint"],
            "cors": options["cors"] or None,
        }
        with contextlib.ExitStack() as stack:
            if out:
                path = out.resolve()
                _check_inside(files, path)
            else:
                path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dl-publish-"))) / (
                    DEFAULT_MANIFEST
                )
            document = build_manifest(
                files=files,
                manifest_dir=path.parent,
                name=name,
                project=project or name,
                region=region,
                line=line,
                metadata=_metadata(metadata, fields, plugin_config, path.parent),
                plugins=install,
                secrets=environment,
                config=config,
                instance=instance,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_manifest(document), encoding="utf-8")
            if out:
                click.echo(
                    f"Wrote {out}: `dl plan -f {out}` and `dl apply -f {out}` manage it from now on.",
                    err=True,
                )
            args = ["apply", "-f", str(path), "--target", name]
            args += ["--yes"] if options["yes"] else []
            args += [] if out else ["--allow-outside-paths"]  # the files were named on the command line
            stack.enter_context(_environment(environment))
            _run_dl(args)

    for param in lambda_.params:
        if param.name in UNSUPPORTED:
            param.help = f"Refused on Lambda: {UNSUPPORTED[param.name]}."


def _check_inside(files: tuple[str, ...], manifest: Path) -> None:
    """--manifest-out makes a repository: its databases must be inside it, as `dl plan` will require."""
    root = find_root(manifest.parent).resolve()
    for f in files:
        if not Path(f).resolve().is_relative_to(root):
            raise click.BadParameter(
                f"{f} is outside {root}, the folder (repository) holding {manifest.name}: write the manifest "
                "next to the databases or above them",
                param_hint="--manifest-out",
            )


def _run_dl(args: list[str]) -> None:
    """`dl ARGS`, in this process: dl's own error handling and exit codes."""
    from dl.cli import main

    main.main(args=args, prog_name="dl", standalone_mode=True)
