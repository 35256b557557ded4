"""The Datasette application of one instance: immutable databases, typed settings, metadata, inspect data.

Under a prefix Datasette gets ``base_url = prefix`` and sees requests as behind a proxy that does not strip
the prefix (see ``gateway``): its router strips ``base_url`` once to route, and ``links`` makes the links it
builds from the request path carry the prefix exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import units

units.install()  # before datasette.app imports datasette.views.base: pint's registry is built on first use

from datasette.app import Datasette  # noqa: E402
from datasette.database import Database  # noqa: E402
from datasette.version import __version__ as _datasette_version  # noqa: E402

from . import links  # noqa: E402
from .instance import InstanceSpec  # noqa: E402

DATASETTE_1 = not _datasette_version.startswith("0.")  # the 1.0 line (alphas included)


def build_datasette(spec: InstanceSpec, paths: dict[str, Path], secret: str | None) -> Datasette:
    """Datasette serving ``paths`` ({database name: file}, in the instance's order) immutable."""
    links.install()
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
