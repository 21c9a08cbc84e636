"""The versioned record the protocol keeps in Airflow's task state store.

One record per task instance lives under :data:`STATE_KEY`. The key is permanent API: renaming it
would make in-flight retries forget their jobs. Everything read back is validated here before any
request is made with it.
"""

from __future__ import annotations

import enum
import hashlib
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from durable_jobs.errors import RecordError

STATE_KEY = "durable_jobs.job"
RECORD_VERSION = 1
HISTORY_LIMIT = 20
TOKEN_PREFIX = "dj"
_TOKEN_RE = re.compile(r"^dj[0-9a-f]{20}$")


class Phase(str, enum.Enum):
    SUBMITTING = "submitting"  # intent written; the job may or may not exist
    SUBMITTED = "submitted"  # the locator is known
    FINISHED = "finished"  # the outcome is recorded


class Outcome(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class TaskIdentity:
    """Who owns a record: stable across tries (``ti.id`` is not)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1
    clear_number: int = 0

    def token(self, generation: int) -> str:
        return make_token(self.dag_id, self.run_id, self.task_id, self.map_index, generation)

    def describe(self) -> str:
        mi = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mi} run {self.run_id}"


def make_token(dag_id: str, run_id: str, task_id: str, map_index: int, generation: int) -> str:
    """Deterministic idempotency token: the same inputs always give the same 22 characters.

    Lower-case hex only, so it survives YARN tag lower-casing, DNS-1123 names and EMR name rules.
    """
    raw = "\x1f".join((dag_id, run_id, task_id, str(map_index), str(generation)))
    return TOKEN_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class JobRecord:
    system: str
    phase: Phase
    generation: int
    token: str
    intent_at: float  # epoch seconds when the intent of this generation was written
    deadline: float | None = None  # absolute epoch seconds, anchored on the generation's first try
    job: dict[str, Any] | None = None
    outcome: Outcome | None = None
    message: str = ""
    clear_number: int = 0
    submitted_try: int = 0
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    v: int = RECORD_VERSION

    # --- transitions -------------------------------------------------------------------------------------

    @classmethod
    def intent(
        cls,
        *,
        system: str,
        identity: TaskIdentity,
        generation: int,
        timeout: float | None,
        history: tuple[dict[str, Any], ...] = (),
        now: float | None = None,
    ) -> JobRecord:
        now = time.time() if now is None else now
        return cls(
            system=system,
            phase=Phase.SUBMITTING,
            generation=generation,
            token=identity.token(generation),
            intent_at=now,
            deadline=None if timeout is None else now + timeout,
            clear_number=identity.clear_number,
            submitted_try=identity.try_number,
            history=history[-HISTORY_LIMIT:],
        )

    def submitted(self, job: dict[str, Any]) -> JobRecord:
        return replace(self, phase=Phase.SUBMITTED, job=dict(job))

    def finished(self, outcome: Outcome, message: str = "") -> JobRecord:
        return replace(self, phase=Phase.FINISHED, outcome=outcome, message=message[:2000])

    def next_generation(self, identity: TaskIdentity, timeout: float | None) -> JobRecord:
        entry = {
            "generation": self.generation,
            "token": self.token,
            "job": self.job,
            "outcome": self.outcome.value if self.outcome else None,
            "message": self.message[:500],
        }
        return JobRecord.intent(
            system=self.system,
            identity=identity,
            generation=self.generation + 1,
            timeout=timeout,
            history=(*self.history, entry),
        )

    # --- (de)serialisation ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "system": self.system,
            "phase": self.phase.value,
            "generation": self.generation,
            "token": self.token,
            "intent_at": self.intent_at,
            "deadline": self.deadline,
            "job": self.job,
            "outcome": self.outcome.value if self.outcome else None,
            "message": self.message,
            "clear_number": self.clear_number,
            "submitted_try": self.submitted_try,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: Any, *, system: str, identity: TaskIdentity) -> JobRecord:
        """Parse and validate a stored record; raise :class:`RecordError` with a clear message."""
        where = f"task state store key {STATE_KEY!r} of {identity.describe()}"
        if not isinstance(data, dict):
            raise RecordError(f"{where} holds a {type(data).__name__}, not a durable_jobs record")
        if data.get("v") != RECORD_VERSION:
            raise RecordError(f"{where} has record version {data.get('v')!r}; this library reads version 1")
        if data.get("system") != system:
            raise RecordError(
                f"{where} belongs to system {data.get('system')!r}, not {system!r}. The operator was changed "
                f"to another system while a job was recorded; delete the key to start afresh."
            )
        try:
            phase = Phase(data["phase"])
            generation = data["generation"]
            token = data["token"]
            intent_at = float(data["intent_at"])
            deadline = None if data.get("deadline") is None else float(data["deadline"])
            outcome = None if data.get("outcome") is None else Outcome(data["outcome"])
            clear_number = int(data.get("clear_number", 0))
            submitted_try = int(data.get("submitted_try", 0))
            job = data.get("job")
            history = tuple(data.get("history") or ())
            message = str(data.get("message") or "")
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{where} is malformed: {exc!r}") from exc
        if not isinstance(generation, int) or isinstance(generation, bool) or not 0 <= generation < 10_000:
            raise RecordError(f"{where} has an invalid generation {generation!r}")
        if not isinstance(token, str) or not _TOKEN_RE.match(token):
            raise RecordError(f"{where} has an invalid token {token!r}")
        if token != identity.token(generation):
            raise RecordError(
                f"{where} carries token {token} which is not this task's token for generation {generation}: "
                "the record was copied from another task or edited. Refusing to touch its job."
            )
        if job is not None and not isinstance(job, dict):
            raise RecordError(f"{where} has a job locator of type {type(job).__name__}")
        if phase is not Phase.SUBMITTING and job is None:
            raise RecordError(f"{where} is in phase {phase.value} without a job locator")
        if phase is Phase.FINISHED and outcome is None:
            raise RecordError(f"{where} is finished without an outcome")
        return cls(
            system=system,
            phase=phase,
            generation=generation,
            token=token,
            intent_at=intent_at,
            deadline=deadline,
            job=job,
            outcome=outcome,
            message=message,
            clear_number=clear_number,
            submitted_try=submitted_try,
            history=history,
        )
