"""What a system declares about itself, once: :class:`System`.

A system is a module of the same name in ``durable_jobs.systems`` (this declaration), ``hooks/``,
``triggers/`` and ``operators/``, plus its client package. Provider info, Airflow's connection form and
the lazy exports of :mod:`durable_jobs.operators` and :mod:`durable_jobs.triggers` and the operators' links on
the task page are all read from the declarations, so no table elsewhere lists the systems or their classes.
Declarations import no hook, no client and no Airflow.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from durable_jobs.hooks.fields import Connection

#: the class every declared link is an instance of (:mod:`durable_jobs.links`), for provider info
LINK_CLASS = "durable_jobs.links.XComLink"


class Link(NamedTuple):
    """A button on the task page: its label, and the XCom key the operator pushes its URL under."""

    name: str
    xcom_key: str


class System:
    """One system: its name in Airflow, its connection types and its public classes."""

    __slots__ = ("connections", "doc_url", "integration", "links", "module", "operators", "tags", "triggers")

    def __init__(
        self,
        *,
        module: str,
        integration: str,
        doc_url: str,
        connections: tuple[Connection, ...],
        triggers: tuple[str, ...],
        operators: tuple[str, ...],
        tags: tuple[str, ...] = ("software",),
        links: tuple[Link, ...] = (),
    ) -> None:
        self.module = module  # the module name in systems/, hooks/, triggers/ and operators/
        self.integration = integration  # the integration name Airflow lists
        self.doc_url = doc_url
        self.connections = connections
        self.triggers = triggers  # class names in durable_jobs.triggers.<module>
        self.operators = operators  # class names in durable_jobs.operators.<module>
        self.tags = tags
        self.links = links  # the task page's buttons of every operator of this system, read from XCom

    def __repr__(self) -> str:
        return f"System({self.module!r})"

    def exports(self, layer: str) -> dict[str, str]:
        """Public class name -> its module, for ``durable_jobs.<layer>`` (triggers or operators)."""
        names: tuple[str, ...] = getattr(self, layer)
        return dict.fromkeys(names, f"durable_jobs.{layer}.{self.module}")

    def integration_entry(self) -> dict[str, Any]:
        return {"integration-name": self.integration, "external-doc-url": self.doc_url, "tags": list(self.tags)}

    def modules_entry(self, layer: str) -> dict[str, Any]:
        """The ``hooks``, ``triggers`` or ``operators`` entry of provider info."""
        return {"integration-name": self.integration, "python-modules": [f"durable_jobs.{layer}.{self.module}"]}

    def connection_types(self) -> list[dict[str, Any]]:
        """Its connection types that this package's form describes (not ones another provider owns)."""
        hooks = f"durable_jobs.hooks.{self.module}"
        return [conn.provider_entry(hooks) for conn in self.connections if conn.own_form]


__all__ = ["LINK_CLASS", "Link", "System"]
