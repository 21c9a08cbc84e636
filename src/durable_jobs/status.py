"""One status model for every system.

Clients translate their raw states into :class:`JobState` so that the protocol, the poller and the
triggers never need to know which system they talk to.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobState(str, enum.Enum):
    """Normalized job state."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        return self in (JobState.PENDING, JobState.RUNNING)


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST})


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What a client observed about one job."""

    state: JobState
    raw_state: str = ""
    message: str = ""
    tracking_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def same_as(self, other: JobStatus | None) -> bool:
        """True when nothing a user would care about changed."""
        return (
            other is not None
            and other.state is self.state
            and other.raw_state == self.raw_state
            and other.message == self.message
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state.value, "raw_state": self.raw_state}
        if self.message:
            out["message"] = self.message
        if self.tracking_url:
            out["tracking_url"] = self.tracking_url
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        return cls(
            state=JobState(data["state"]),
            raw_state=str(data.get("raw_state", "")),
            message=str(data.get("message", "")),
            tracking_url=data.get("tracking_url"),
            extra=dict(data.get("extra") or {}),
        )

    @classmethod
    def unknown(cls, message: str) -> JobStatus:
        return cls(state=JobState.UNKNOWN, message=message)
