"""Links Datasette builds from the request path, made to carry the prefix exactly once.

The gateway hands Datasette the request as a proxy that does not strip the prefix would: ``path``,
``raw_path`` and therefore ``request.path``, ``request.url`` and ``request.full_path`` all start with the
prefix (Datasette's ``base_url``), and Datasette's router strips it once to route. Datasette 0.65 builds links
from the request path in two ways:

* directly (``path_with_removed_args(request, ...)`` for array and date facet toggles and ``_where`` removal,
  ``path_with_replaced_args`` for the facet "..." link, ``path_with_format`` for blob links): these are right
  when the request path carries the prefix, and leave it when a proxy strips it;
* through ``datasette.urls.path(...)``, which adds ``base_url`` to whatever it is given unless it is a
  ``PrefixedUrlString``: right behind a stripping proxy, and doubled (``/prefix/prefix/db/table.json``) behind
  a non-stripping one.

No proxy setting makes both right. What makes both right is to say what is true: a path built from a request
whose path already carries the prefix is already prefixed. ``install()`` does that at the source:
``Request.path`` is a ``PrefixedUrlString`` when the scope says its path carries the prefix (the gateway sets
``scope["dl.prefix"]``), so every path derived from it by concatenation or ``str`` methods is one too
(``path_with_added_args``, ``path_with_removed_args``, ``path_with_replaced_args`` build with ``+``), and
``path_with_format``, which builds with f-strings, returns one when built from such a request or path (given
both, 0.65 builds from the request and 1.0 from the path: its views pass the unprefixed ``route_path``).
``urls.path`` then leaves those alone, while a path a view or plugin names itself (``urls.path("-/metadata")``)
still gets the prefix. Requests without the scope key (Datasette's own test client, plain ``datasette``) are
untouched.
"""

from __future__ import annotations

import functools
import sys

SCOPE_KEY = "dl.prefix"  # the prefix the scope's path carries (set by the gateway for prefixed instances)

_installed = False


def install() -> None:
    """Make request-derived paths prefixed strings (idempotent); see the module docstring."""
    global _installed
    if _installed:
        return
    import datasette.utils
    from datasette.utils import PrefixedUrlString
    from datasette.utils.asgi import Request

    plain_path = Request.path

    def path(self):
        value = plain_path.fget(self)
        prefix = self.scope.get(SCOPE_KEY)
        if prefix and value.startswith(prefix):
            return PrefixedUrlString(value)
        return value

    Request.path = property(path, doc=plain_path.__doc__)

    original = datasette.utils.path_with_format
    # Given both, 0.65 builds from request.path and 1.0 from path (its views pass the unprefixed route_path)
    request_first = original(request=Request.fake("/a"), path="/b", format="json").startswith("/a")

    @functools.wraps(original)
    def path_with_format(*, request=None, path=None, **kwargs):
        value = original(request=request, path=path, **kwargs)
        source = request.path if request is not None and (path is None or request_first) else path
        return PrefixedUrlString(value) if isinstance(source, PrefixedUrlString) else value

    for module in list(sys.modules.values()):  # views, facets and plugins imported it by name
        if getattr(module, "__name__", "").startswith("datasette") or module is datasette.utils:
            if getattr(module, "path_with_format", None) is original:
                module.path_with_format = path_with_format
    _installed = True
