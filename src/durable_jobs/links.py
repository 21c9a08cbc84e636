"""The buttons on the task page (operator extra links), read from the XCom the operator pushes before deferring.

Each system declares its links (a label and an XCom key, :class:`durable_jobs.system.Link`); this module
turns a declaration into Airflow links, once, for every operator. Airflow 3 serializes a link as its name
and :attr:`~XComLink.xcom_key`, and the api-server answers the task page with that XCom's value, so a link
shows as soon as the operator pushed its URL (before it defers, on either path) and shows nothing while
the XCom is missing. :meth:`XComLink.get_link` runs on the worker whenever a try ends, the deferral included,
and Airflow pushes its answer to the same key: it must return the pushed URL unchanged (an empty answer would
remove the button while the task is deferred), and "" where none was pushed (which leaves an empty XCom).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from airflow.sdk import BaseOperatorLink

from durable_jobs.airflow_compat import xcom_value
from durable_jobs.system import LINK_CLASS, System

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


@attrs.frozen
class XComLink(BaseOperatorLink):  # type: ignore[misc]
    """A link whose URL is the task's XCom ``key``; empty (no button) when there is none."""

    name: str  # type: ignore[misc]  # the label: a field here, an abstract property in BaseOperatorLink
    key: str

    @property
    def xcom_key(self) -> str:
        return self.key

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        value = xcom_value(ti_key, self.key)
        return value if isinstance(value, str) else ""


def system_links(system: System) -> tuple[XComLink, ...]:
    """The links of every operator of ``system``, as it declares them."""
    return tuple(XComLink(name=link.name, key=link.xcom_key) for link in system.links)


assert f"{XComLink.__module__}.{XComLink.__qualname__}" == LINK_CLASS

__all__ = ["XComLink", "system_links"]
