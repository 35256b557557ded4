"""Pint (Datasette's vendored unit library) imported, and its unit registry built, on first use.

``datasette.views.base`` imports pint and creates ``ureg = pint.UnitRegistry()`` when imported: importing pint
and parsing its unit definitions cost about half of a cold start's CPU, though only tables with ``units``
metadata (cell rendering, unit filters such as ``?height__gt=2m``) and ``custom_units`` metadata ever use
them. :func:`install` imports that module with a stand-in for pint, so its ``ureg`` is a
:class:`LazyUnitRegistry`: the same registry (same arguments), created (pint imported) the first time
anything is asked of it, and then answering everything the real one answers (attributes, calls, ``in``).
Everything else that imports pint gets the real module. It must run before ``datasette.app`` is imported.

Datasette 1.0 has no ``datasette.vendored`` (units support left with pint): there :func:`install` does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

PINT = "datasette.vendored.pint"


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
    """Import ``datasette.views.base`` with a lazy ``ureg`` and without importing pint (no-op if it was imported
    already). Pint itself is imported when the registry is first used: importing it costs as much again."""
    if "datasette.views.base" in sys.modules or importlib.util.find_spec("datasette.vendored") is None:
        return
    stand_in = _PintStandIn(PINT)
    sys.modules.setdefault(PINT, stand_in)
    try:
        import datasette.views.base  # noqa: F401  (its `ureg = pint.UnitRegistry()` runs now)
    finally:
        _forget(stand_in)  # later importers get the real pint


def _forget(stand_in) -> None:
    import datasette.vendored

    if sys.modules.get(PINT) is stand_in:
        del sys.modules[PINT]
    if getattr(datasette.vendored, "pint", None) is stand_in:
        delattr(datasette.vendored, "pint")


def _real_pint():
    stand_in = sys.modules.get(PINT)
    if isinstance(stand_in, _PintStandIn):
        _forget(stand_in)
    return importlib.import_module(PINT)


class _PintStandIn(types.ModuleType):
    """``datasette.vendored.pint`` while ``datasette.views.base`` is imported: its ``UnitRegistry(...)`` is a
    LazyUnitRegistry; anything else is taken from the real module (imported then)."""

    def UnitRegistry(self, *args, **kwargs):  # noqa: N802  (pint's name)
        return LazyUnitRegistry(lambda *a, **k: _real_pint().UnitRegistry(*a, **k), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(_real_pint(), name)
