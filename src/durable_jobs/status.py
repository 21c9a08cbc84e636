"""One status model for every system.

Clients translate their raw states into :class:`JobState` so that the protocol, the poller and the
triggers never need to know which system they talk to.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.errors import DurableJobError
from durable_jobs.messages import MESSAGE_LIMIT, cut

RAW_STATE_LIMIT = 100
URL_LIMIT = 2048


def safe_url(url: str | None) -> str | None:
    """A URL an answer gave that is worth showing as a tracking URL: http(s), bounded, no whitespace (else None)."""
    if not url or len(url) > URL_LIMIT or not url.startswith(("http://", "https://")):
        return None
    return None if any(c.isspace() or ord(c) < 32 for c in url) else url


class Word(str, enum.Enum):
    """A string enum that prints as its word (``failed``), never as ``JobState.FAILED``, wherever it is formatted."""

    def __str__(self) -> str:
        return str(self.value)


class JobState(Word):
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

    def __post_init__(self) -> None:
        # whatever an endpoint said, a status stays small: it goes into events, XCom, records and logs
        if len(self.message) > MESSAGE_LIMIT:
            object.__setattr__(self, "message", cut(self.message))
        if len(self.raw_state) > RAW_STATE_LIMIT:
            object.__setattr__(self, "raw_state", cut(self.raw_state, RAW_STATE_LIMIT))
        if self.tracking_url is not None and len(self.tracking_url) > URL_LIMIT:
            object.__setattr__(self, "tracking_url", None)

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
            # scalars only, each cut: the event (and XCom) must stay small whatever the endpoint sent
            out["extra"] = {
                str(k)[:100]: cut(v, 500) if isinstance(v, str) else v
                for k, v in list(self.extra.items())[:20]
                if v is None or isinstance(v, (str, int, float, bool))
            }
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

    @classmethod
    def unknown_from(cls, exc: BaseException) -> JobStatus:
        """Unknown because of ``exc``; a server's ``Retry-After`` on it stays with the status, for the poller."""
        message = str(exc) if isinstance(exc, DurableJobError) and str(exc) else f"{type(exc).__name__}: {exc}"
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool) and retry_after > 0:
            return cls(state=JobState.UNKNOWN, message=message, extra={"retry_after": float(retry_after)})
        return cls(state=JobState.UNKNOWN, message=message)
