"""Pint's unit registry, built on first use instead of at import.

``datasette.views.base`` creates ``ureg = pint.UnitRegistry()`` when imported: parsing pint's unit
definitions costs about 0.3 s of CPU on every cold start, though only tables with ``units`` metadata (cell
rendering, unit filters such as ``?height__gt=2m``) and ``custom_units`` metadata ever use it.
:func:`install` makes that module-level ``ureg`` a :class:`LazyUnitRegistry`: the same registry (same
arguments), created the first time anything is asked of it, and then answering everything the real one
answers (attributes, calls). It must run before ``datasette.app`` is imported.
"""

from __future__ import annotations

import sys
import threading


class LazyUnitRegistry:
    """Stands in for ``pint.UnitRegistry(*args, **kwargs)`` and creates it on first use."""

    def __init__(self, factory, *args, **kwargs):
        state = {"factory": factory, "args": args, "kwargs": kwargs, "real": None, "lock": threading.Lock()}
        object.__setattr__(self, "_dl_lazy", state)

    def dl_registry(self):
        """The real registry, created now if need be."""
        state = object.__getattribute__(self, "_dl_lazy")
        if state["real"] is None:
            with state["lock"]:
                if state["real"] is None:
                    state["real"] = state["factory"](*state["args"], **state["kwargs"])
        return state["real"]

    @property
    def dl_created(self) -> bool:
        return object.__getattribute__(self, "_dl_lazy")["real"] is not None

    def __getattr__(self, name):
        return getattr(self.dl_registry(), name)

    def __setattr__(self, name, value):
        setattr(self.dl_registry(), name, value)

    def __call__(self, *args, **kwargs):
        return self.dl_registry()(*args, **kwargs)

    def __getitem__(self, item):
        return self.dl_registry()[item]

    def __contains__(self, item):
        return item in self.dl_registry()

    def __iter__(self):
        return iter(self.dl_registry())

    def __dir__(self):
        return dir(self.dl_registry())

    def __repr__(self):
        return repr(self.dl_registry()) if self.dl_created else "<LazyUnitRegistry (not created yet)>"


def install() -> None:
    """Import ``datasette.views.base`` with a lazy ``ureg`` (no-op if it was imported already)."""
    if "datasette.views.base" in sys.modules:
        return
    from datasette.vendored import pint

    real = pint.UnitRegistry
    pint.UnitRegistry = lambda *args, **kwargs: LazyUnitRegistry(real, *args, **kwargs)
    try:
        import datasette.views.base  # noqa: F401  (its `ureg = pint.UnitRegistry()` runs now)
    finally:
        pint.UnitRegistry = real
