"""What a request of the records API asks for, checked, and the SQL ``LIKE`` patterns that filter on it.

Our records live as JSON text in Airflow's ``task_state_store.value`` (a Text column, not JSON), written by
``json.dumps`` with its default separators (the execution API's store route, the reaper) from
:meth:`JobRecord.to_json`, whose key order is fixed: ``{"v": 1, "system": ..., "phase": ..., ...,
"outcome": ..., "message": ..., "clear_number": ...``. A pattern anchored on that order filters on the
database side, with no JSON function (whose behaviour on a value that is not JSON differs by database, and
fails the whole query on PostgreSQL). The rows are decoded again afterwards (:mod:`durable_jobs.ui.rows`),
and a row that does not match exactly is dropped: a pattern never lists a record the filter excludes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from durable_jobs.record import Outcome, Phase

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
W = TypeVar("W", Phase, Outcome)
_SYSTEM_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")


class FilterError(ValueError):
    """A filter value that cannot be asked for; the message names it."""


@dataclass(frozen=True, slots=True)
class Filters:
    """The records a request asks for: ``None`` leaves a field unfiltered."""

    dag_id: str | None = None
    system: str | None = None
    phase: Phase | None = None
    outcome: Outcome | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def parse(
        cls,
        *,
        dag_id: str | None = None,
        system: str | None = None,
        phase: str | None = None,
        outcome: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> Filters:
        """From query parameters (an empty string: no filter); :class:`FilterError` names a bad one."""
        if not 1 <= limit <= MAX_LIMIT:
            raise FilterError(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
        if offset < 0:
            raise FilterError(f"offset must be 0 or more, not {offset}")
        if dag_id and len(dag_id) > 250:
            raise FilterError("dag_id is longer than 250 characters")
        if system and not _SYSTEM_RE.match(system):
            raise FilterError(f"system {system[:80]!r} is not a system name")
        return cls(
            dag_id=dag_id or None,
            system=system or None,
            phase=_word(Phase, "phase", phase),
            outcome=_word(Outcome, "outcome", outcome),
            limit=limit,
            offset=offset,
        )

    @property
    def on_value(self) -> bool:
        """Whether it filters on the record itself (then unreadable records never match)."""
        return self.system is not None or self.phase is not None or self.outcome is not None

    def patterns(self) -> list[str]:
        """The ``LIKE`` patterns (escape character ``\\``) the stored value must match, all of them."""
        out = []
        if self.system is not None or self.phase is not None:
            system = _escape(self.system) if self.system is not None else "%"
            phase = self.phase.value if self.phase is not None else "%"
            out.append(f'{{"v": 1, "system": "{system}", "phase": "{phase}", %')
        if self.outcome is not None:
            # the top-level outcome: the history's entries end with "message", never with "clear_number" after
            out.append(f'%"outcome": "{self.outcome.value}", "message": %, "clear_number": %')
        return out

    def matches(self, system: str, phase: str, outcome: str | None) -> bool:
        """The exact check of a decoded record (the patterns are a database-side superset)."""
        return (
            (self.system is None or self.system == system)
            and (self.phase is None or self.phase.value == phase)
            and (self.outcome is None or self.outcome.value == outcome)
        )


def _word(kind: type[W], name: str, value: str | None) -> W | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise FilterError(f"{name} must be one of {', '.join(m.value for m in kind)}, not {value[:80]!r}") from None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
