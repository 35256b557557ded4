"""Links Datasette 0.65 builds without its ``base_url``, put back under the prefix.

Binary values in SQL query results link to ``<path>.blob?...`` built from the request path without
``urls.path()``, so under a prefix they point outside it. This module is registered as a Datasette plugin
(only for prefixed instances) whose ``render_cell`` renders those cells exactly as Datasette does, with the
prefix. ``render_cell`` is not given the request, so the router records it in a context variable.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar

from datasette import hookimpl
from datasette.utils import format_bytes, path_with_format
from markupsafe import Markup

current_request: ContextVar = ContextVar("dl_runtime_request", default=None)


@hookimpl
def render_cell(value, column, table, database, datasette):
    """A query result's blob cell (table is None), linked under the prefix; None for anything else."""
    request = current_request.get()
    if table is not None or not isinstance(value, bytes) or request is None:
        return None
    blob_path = path_with_format(
        request=request,
        format="blob",
        extra_qs={"_blob_column": column, "_blob_hash": hashlib.sha256(value).hexdigest()},
    )
    formatted = format_bytes(len(value))
    return Markup(
        '<a class="blob-download" href="{}"{}>&lt;Binary:&nbsp;{:,}&nbsp;byte{}&gt;</a>'.format(
            datasette.urls.path(blob_path),
            f' title="{formatted}"' if "bytes" not in formatted else "",
            len(value),
            "" if len(value) == 1 else "s",
        )
    )
