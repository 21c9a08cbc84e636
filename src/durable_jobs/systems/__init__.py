"""The systems this package ships: the one list a new system adds its name to.

Each name is a module in this package (its :class:`~durable_jobs.system.System` declaration) and in
``hooks/``, ``triggers/`` and ``operators/``. Provider info and the lazy exports of
:mod:`durable_jobs.operators` and :mod:`durable_jobs.triggers` are derived from the declarations. This
package imports none of them until asked, so importing one system's trigger loads no other system.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable_jobs.system import System

SYSTEMS = ("spark_standalone", "yarn", "kubernetes", "emr", "databricks", "glue", "bigquery")


def declared() -> tuple[System, ...]:
    """Every system's declaration (imports the declaration modules only: no hook, client or Airflow)."""
    return tuple(importlib.import_module(f"{__name__}.{name}").SYSTEM for name in SYSTEMS)


def exports(layer: str) -> dict[str, str]:
    """Public class name -> module, of every system's ``durable_jobs.<layer>`` (triggers or operators)."""
    return {name: module for system in declared() for name, module in system.exports(layer).items()}


def lazy_export(layer: str, core: Mapping[str, str], name: str) -> Any:
    """The attribute ``name`` of package ``durable_jobs.<layer>``: a core class, a system's, or ``__all__``.

    Only the declaring system's module is imported, so asking for one class loads no other system.
    """
    if name in core:
        return getattr(importlib.import_module(core[name]), name)
    found = exports(layer)
    if name == "__all__":
        return sorted([*core, *found])
    if name not in found:
        raise AttributeError(f"module 'durable_jobs.{layer}' has no attribute {name!r}")
    return getattr(importlib.import_module(found[name]), name)


__all__ = ["SYSTEMS", "declared", "exports", "lazy_export"]
