"""The Datasette application of one instance: immutable databases, typed settings, metadata, inspect data.

Under a prefix Datasette gets ``base_url = prefix`` and sees requests as behind a proxy that does not strip
the prefix (see ``gateway``): its router strips ``base_url`` once to route, and ``links`` makes the links it
builds from the request path carry the prefix exactly once.
"""

from __future__ import annotations

from pathlib import Path

from . import units

units.install()  # before datasette.app imports datasette.views.base: pint's registry is built on first use

from datasette.app import Datasette  # noqa: E402
from datasette.database import Database  # noqa: E402

from . import links  # noqa: E402
from .instance import InstanceSpec  # noqa: E402


def build_datasette(spec: InstanceSpec, paths: dict[str, Path], secret: str | None) -> Datasette:
    """Datasette serving ``paths`` ({database name: file}, in the instance's order) immutable."""
    links.install()
    settings = dict(spec.settings, base_url=spec.prefix)
    ds = Datasette(
        files=[],
        metadata=spec.metadata or None,
        settings=settings,
        cors=spec.cors,
        inspect_data=spec.inspect or None,
        secret=secret,
    )
    if spec.databases:
        ds.remove_database("_memory")  # Datasette adds it when given no files; `datasette a.db` has none
    for db in spec.databases:
        ds.add_database(Database(ds, path=str(paths[db.name]), is_mutable=False), name=db.name)
    return ds
