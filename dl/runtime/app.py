"""The Datasette application of one instance: immutable databases, typed settings, metadata, inspect data.

Datasette's ``base_url`` is meant for a proxy that strips the prefix before Datasette sees the request: the
URLs it builds from the request path (``next_url``, ``.json`` alternates, facet toggles) then get the prefix
exactly once. The gateway strips the prefix, so this module gives Datasette ``base_url = prefix``. Datasette's
router, however, strips ``base_url`` once more when the stripped path still starts with it (a database named
like the prefix: ``/northwind/northwind/orders``); ``_Router`` makes it strip exactly once, and gives the
prefix back to the request path that Datasette's 404 handler turns into redirects. ``links`` fixes the one
kind of link Datasette builds without the prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import units

units.install()  # before datasette.app imports datasette.views.base: pint's registry is built on first use

import datasette.app  # noqa: E402
from datasette.app import Datasette  # noqa: E402
from datasette.database import Database  # noqa: E402
from datasette.plugins import pm  # noqa: E402
from datasette.utils.asgi import Request  # noqa: E402
from datasette.version import __version__ as _datasette_version  # noqa: E402

from . import links  # noqa: E402
from .instance import InstanceSpec  # noqa: E402


class _Router(datasette.app.DatasetteRouter):
    """Datasette's router, routing the already-unprefixed path as is."""

    async def route_path(self, scope, receive, send, path):
        """``path`` is what Datasette's ``__call__`` read from the (unprefixed) raw path; Datasette 1.0's
        ``__call__`` also sets up per-request state, so only this step is replaced, on both lines."""
        base_url = self.ds.setting("base_url")
        if base_url != "/":
            path = base_url.rstrip("/") + path  # route_path strips it again: exactly once in all
        links.current_request.set(Request(scope, receive))
        return await super().route_path(scope, receive, send, path)

    async def handle_404(self, request, send, exception=None):
        """Datasette's 404 redirects (trailing slash, % to ~) reuse the request path: give it the prefix."""
        base_url = self.ds.setting("base_url")
        path = request.scope["path"]
        if base_url != "/" and ("%" in request.path or request.path.endswith("/")):
            raw_path = request.scope.get("raw_path") or path.encode("utf-8")
            prefix = base_url.rstrip("/")
            request.scope = dict(request.scope, path=prefix + path, raw_path=prefix.encode() + raw_path)
        return await super().handle_404(request, send, exception)


datasette.app.DatasetteRouter = _Router
DATASETTE_1 = not _datasette_version.startswith("0.")  # the 1.0 line (alphas included)


def build_datasette(spec: InstanceSpec, paths: dict[str, Path], secret: str | None) -> Datasette:
    """Datasette serving ``paths`` ({database name: file}, in the instance's order) immutable."""
    if spec.prefix != "/" and not pm.is_registered(links):
        pm.register(links, name="dl_runtime.links")
    settings = dict(spec.settings, base_url=spec.prefix)
    ds = Datasette(
        files=[],
        **configuration(spec.metadata, settings),
        cors=spec.cors,
        inspect_data=spec.inspect or None,
        secret=secret,
    )
    if spec.databases:
        ds.remove_database("_memory")  # Datasette adds it when given no files; `datasette a.db` has none
    for db in spec.databases:
        ds.add_database(Database(ds, path=str(paths[db.name]), is_mutable=False), name=db.name)
    return ds


def configuration(metadata: dict, settings: dict) -> dict:
    """The constructor arguments carrying metadata and settings, where this Datasette expects them.

    0.65: ``metadata=`` (plugin configuration and permissions included) and ``settings=``. 1.0: settings, plugin
    configuration, permissions (``allow``, ``allow_sql``), canned ``queries``, ``extra_css_urls``/``extra_js_urls``
    and table options in ``config=`` (its ``datasette.yaml``); descriptive metadata in ``metadata=``. Datasette's
    own ``move_plugins_and_allow`` and ``move_table_config`` move what they know; the rest is moved here first.
    """
    if not DATASETTE_1:
        return {"metadata": metadata or None, "settings": settings}
    from datasette.utils import move_plugins_and_allow, move_table_config

    metadata, config = _move_config_keys(metadata or {})
    metadata, config = move_plugins_and_allow(metadata, config)
    metadata, config = move_table_config(metadata, config)
    return {"metadata": metadata or None, "config": {**config, "settings": settings}}


CONFIG_KEYS = ("allow_sql", "extra_css_urls", "extra_js_urls")  # top level of 1.0's configuration
DATABASE_CONFIG_KEYS = ("allow_sql", "queries")  # per database


def _move_config_keys(metadata: dict) -> tuple[dict, dict]:
    """(metadata, config) with the 0.65 metadata keys that 1.0 reads only from its configuration moved there."""
    metadata = json.loads(json.dumps(metadata))  # a deep copy of plain JSON
    config: dict = {key: metadata.pop(key) for key in CONFIG_KEYS if key in metadata}
    for name, database in list((metadata.get("databases") or {}).items()):
        moved = {key: database.pop(key) for key in DATABASE_CONFIG_KEYS if key in database}
        if moved:
            config.setdefault("databases", {})[name] = moved
        if not database:
            del metadata["databases"][name]
    if metadata.get("databases") == {}:
        del metadata["databases"]
    return metadata, config
