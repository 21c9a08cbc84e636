"""The versioned record the protocol keeps in Airflow's task state store.

One record per task instance lives under :data:`STATE_KEY`. Everything read back is validated here
(:meth:`JobRecord.from_json`) before any request is made with it.

**What is permanent.** Records outlive the code that wrote them (a task deferred for a day sees an
upgrade of the triggerer and the workers), so these may never change meaning:

* the key :data:`STATE_KEY` (``"durable_jobs.job"``): renaming it makes in-flight tries forget their jobs
  and submit them again;
* every field below, with its name, type and meaning. A new field must be optional (a record without it
  still loads); a change of meaning needs a new :data:`RECORD_VERSION` and a reader for the old one;
* the ``system`` strings of the clients (:attr:`durable_jobs.clients.base.JobClient.system`): a record is
  refused by a client of another system;
* the token's derivation (:func:`make_token`): a crashed try's job is found again by its token.

**The record** (a JSON object; every field since 0.1.0, record version 1):

================  ===============  =====================================================================
field             type             meaning
================  ===============  =====================================================================
``v``             int              record version: ``1``; any other value is refused
``system``        str              the client's :attr:`~durable_jobs.clients.base.JobClient.system`, e.g.
                                   ``"spark-standalone"``; must equal the reading client's
``phase``         str              ``"submitting"`` (intent written; the job may or may not exist),
                                   ``"submitted"`` (the locator is known) or ``"finished"`` (the outcome
                                   is recorded)
``generation``    int              0 to 9999: how many jobs this task instance submitted before this one
                                   (a confirmed failure starts the next generation)
``token``         str              the idempotency token of this generation, ``dj`` + 20 hex digits;
                                   must equal :meth:`TaskIdentity.token` of the reading task
``intent_at``     float            epoch seconds when this generation's intent was written (``find``
                                   looks for a crashed try's job submitted since then)
``deadline``      float or null    absolute epoch seconds after which the job is cancelled; null: none
``job``           object or null   the job's locator, as the client's ``validate_locator`` returns it;
                                   null only in phase ``submitting`` before a reservation
``outcome``       str or null      ``"succeeded"``, ``"failed"``, ``"cancelled"`` or ``"lost"``; set in
                                   phase ``finished``
``message``       str              the system's last message about the job (cut to 2,000 characters)
``clear_number``  int              the DAG run's clear count when the intent (or the outcome) was
                                   written: a later clear is told from an earlier one. Missing: 0
``submitted_try`` int              the try number that wrote the intent. Missing: 0
``history``       list of objects  earlier generations, the last :data:`HISTORY_LIMIT`: each
                                   ``{"generation", "token", "job", "outcome", "message"}`` (the
                                   message cut to 500 characters). Missing: empty
``conn_id``       str or null      the Airflow connection the try that wrote the intent used (at most
                                   250 characters): the reaper builds a client from it. Missing: null
``hook``          str or null      that try's hook class, as an import path (``module.Class``, at most
                                   200 characters). Missing: null
``cancel``        object or null   set on a **tombstone**: the task instance was marked failed, success or
                                   skipped by a user while this job was active, and the job is cancelled
                                   by the reaper (:mod:`durable_jobs.reaper`): ``{"at": epoch seconds,
                                   "by": "mark_failed" | "mark_success" | "mark_skipped" | "ui_cancel",
                                   "ti_id": str}`` (``ui_cancel``: the cancel button of the "Durable
                                   jobs" view, for a task that already ended). Missing: null
``max_tries``     int or null      the task instance's max_tries when the outcome was recorded. Missing:
                                   null
``tries``         list of objects  each try's resume decision, oldest first, the last
                                   :data:`TRIES_LIMIT`: ``{"try": int, "decision": str, "at": epoch
                                   seconds}``; ``decision`` is one of
                                   :data:`durable_jobs.metrics.DECISIONS` (``fresh``, ``adopted``,
                                   ``reattached``, ``returned``, ``next_generation``, ``lost``...), a
                                   later release may add words. Kept across generations. Missing: empty
================  ===============  =====================================================================

A locator (``job``, ``history[].job``) is a flat object: at most 16 string keys of at most 64
characters, each value a string of at most 2,048 characters, an integer or null. The whole record is at
most :data:`RECORD_LIMIT` bytes of JSON.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from durable_jobs.errors import RecordError
from durable_jobs.messages import cut
from durable_jobs.status import Word

#: the task state store key of the record. Permanent: renaming it makes in-flight tries forget their jobs
STATE_KEY = "durable_jobs.job"
RECORD_VERSION = 1
HISTORY_LIMIT = 20
#: the resume decisions a record keeps (``tries``), the last ones
TRIES_LIMIT = 20
_DECISION_RE = re.compile(r"^[a-z][a-z_]{0,31}\Z")
#: the highest generation a record holds
MAX_GENERATION = 9_999
#: the largest record, in bytes of JSON: a record is a handful of fields, never a store for data
RECORD_LIMIT = 64 * 1024
TOKEN_PREFIX = "dj"
_TOKEN_RE = re.compile(r"^dj[0-9a-f]{20}\Z")
_HOOK_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")
#: who tombstoned a record (the ``by`` of its ``cancel`` field), and how a log line says it: a user's mark of the
#: task (the reaper's listener), or the cancel button of the "Durable jobs" view (:mod:`durable_jobs.ui`)
CANCEL_WORDS = {
    "mark_failed": "marked failed",
    "mark_success": "marked success",
    "mark_skipped": "marked skipped",
    "ui_cancel": "cancelled in the Durable jobs view",
}
CANCEL_CAUSES = tuple(CANCEL_WORDS)


def cancel_words(by: str) -> str:
    """How a log line says what the ``by`` of a tombstone did (``"marked failed"``...)."""
    return CANCEL_WORDS.get(by, by)


class Phase(Word):
    SUBMITTING = "submitting"  # intent written; the job may or may not exist
    SUBMITTED = "submitted"  # the locator is known
    FINISHED = "finished"  # the outcome is recorded


class Outcome(Word):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


_OUTCOMES = frozenset(o.value for o in Outcome)
E = TypeVar("E", bound=enum.Enum)
_MISSING: Any = object()
_MISSING_DEFAULT: Any = _MISSING


@dataclass(frozen=True, slots=True)
class TaskIdentity:
    """Who owns a record: stable across tries (``ti.id`` is not)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1
    clear_number: int = 0

    @classmethod
    def from_ti(cls, ti: Any, *, clear_number: int = 0) -> TaskIdentity:
        """The identity of an Airflow task instance (or a trigger's ``task_instance``).

        The one place ``map_index`` is normalised: Airflow gives ``None`` or ``-1`` for an unmapped task.
        """
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
            try_number=int(getattr(ti, "try_number", 1) or 1),
            clear_number=clear_number,
        )

    @classmethod
    def from_context(cls, context: Any) -> TaskIdentity:
        """The identity of the task instance an Airflow context belongs to (its ``ti`` and ``dag_run``)."""
        dag_run = context.get("dag_run")
        return cls.from_ti(context["ti"], clear_number=int(getattr(dag_run, "clear_number", 0) or 0))

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
    conn_id: str | None = None  # the connection of the try that wrote the intent (the reaper's client)
    hook: str | None = None  # that try's hook class, ``module.Class``
    cancel: dict[str, Any] | None = None  # set on a tombstone: who marked the task, when (see the table)
    # the task instance's max_tries when the outcome was recorded: a clear of *this* task raises it, while the
    # run's clear_number goes up at a clear of any task of the run
    max_tries: int | None = None
    # each try's resume decision, oldest first: {"try", "decision", "at"} (see the table)
    tries: tuple[dict[str, Any], ...] = field(default_factory=tuple)
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
        conn_id: str | None = None,
        hook: str | None = None,
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
            conn_id=conn_id,
            hook=hook,
        )

    def submitted(self, job: dict[str, Any]) -> JobRecord:
        return replace(self, phase=Phase.SUBMITTED, job=dict(job))

    def finished(
        self, outcome: Outcome, message: str = "", *, clear_number: int | None = None, max_tries: int | None = None
    ) -> JobRecord:
        """The outcome recorded; ``clear_number`` and ``max_tries``: the run's clear count and the task
        instance's max_tries when it was recorded (a later clear is then told from one that happened before
        the outcome, and a clear of this task from one of another task of the run)."""
        return replace(
            self,
            phase=Phase.FINISHED,
            outcome=outcome,
            message=cut(message),
            clear_number=self.clear_number if clear_number is None else clear_number,
            max_tries=self.max_tries if max_tries is None else max_tries,
        )

    def tombstone(self, by: str, *, ti_id: str, now: float | None = None) -> JobRecord:
        """The record of a job whose task a user marked finished while it ran: ``finished``/``cancelled``,
        with the ``cancel`` field saying who and when. Every later try moves to the next generation."""
        if by not in CANCEL_CAUSES:
            raise ValueError(f"by must be one of {', '.join(CANCEL_CAUSES)}, not {by!r}")
        at = time.time() if now is None else now
        return replace(
            self.finished(
                Outcome.CANCELLED, f"the task was {cancel_words(by)} by a user; the job is cancelled by the reaper"
            ),
            cancel={"at": at, "by": by, "ti_id": ti_id},
        )

    def next_generation(
        self, identity: TaskIdentity, timeout: float | None, *, conn_id: str | None = None, hook: str | None = None
    ) -> JobRecord:
        intent = JobRecord.intent(
            system=self.system,
            identity=identity,
            generation=self.generation + 1,
            timeout=timeout,
            history=(*self.history, self.history_entry()),
            conn_id=conn_id,
            hook=hook,
        )
        return replace(intent, tries=self.tries)

    def decided(self, try_number: int, decision: str, at: float) -> JobRecord:
        """This record with try ``try_number``'s resume decision kept (once: the same decision is not repeated)."""
        entry = {"try": try_number, "decision": decision, "at": at}
        if self.tries and {k: self.tries[-1][k] for k in ("try", "decision")} == {
            "try": try_number,
            "decision": decision,
        }:
            return self
        return replace(self, tries=(*self.tries, entry)[-TRIES_LIMIT:])

    def history_entry(self) -> dict[str, Any]:
        """This generation as a later record's ``history`` keeps it."""
        return {
            "generation": self.generation,
            "token": self.token,
            "job": self.job,
            "outcome": self.outcome.value if self.outcome else None,
            "message": cut(self.message, 500),
        }

    # --- (de)serialisation ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The stored object; the optional fields only when set (a record stays readable by 0.1.0)."""
        optional = {"conn_id": self.conn_id, "hook": self.hook, "cancel": self.cancel, "max_tries": self.max_tries}
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
            **{k: v for k, v in optional.items() if v is not None},
            **({"tries": list(self.tries)} if self.tries else {}),
        }

    @classmethod
    def from_json(cls, data: Any, *, system: str, identity: TaskIdentity) -> JobRecord:
        """Parse and validate a stored record; raise :class:`RecordError` naming the field at fault.

        Exact types (a bool is not a number; NaN and infinity are refused), bounded sizes (the history is
        capped to its last :data:`HISTORY_LIMIT` entries on load, and the whole record must stay within
        :data:`RECORD_LIMIT` bytes), and the token must be this task's for the recorded generation.
        """
        where = f"task state store key {STATE_KEY!r} of {identity.describe()}"
        if not isinstance(data, dict):
            raise RecordError(f"{where} holds a {type(data).__name__}, not a durable_jobs record")
        v = data.get("v")
        if type(v) is not int or v != RECORD_VERSION:
            raise RecordError(f"{where}: field 'v' is {_show(v)}; this library reads record version {RECORD_VERSION}")
        if data.get("system") != system:
            raise RecordError(
                f"{where} belongs to system {_show(data.get('system'))}, not {system!r}. The operator was changed "
                f"to another system while a job was recorded; delete the key to start afresh."
            )
        f = _Fields(data, where)
        phase = f.enum("phase", Phase)
        generation = f.integer("generation", 0, MAX_GENERATION)
        token = f.string("token", 64)
        intent_at = f.number("intent_at")
        deadline = f.number("deadline", optional=True)
        outcome = f.enum("outcome", Outcome, optional=True)
        clear_number = f.integer("clear_number", 0, 10**9, default=0)
        submitted_try = f.integer("submitted_try", 0, 10**9, default=0)
        max_tries = f.integer("max_tries", 0, 10**9) if data.get("max_tries") is not None else None
        tries = f.tries("tries")
        message = f.string("message", 100_000, default="")
        job = f.locator("job")
        history = f.history("history")
        conn_id = f.string("conn_id", 250, default=None)
        hook = f.string("hook", 200, default=None)
        if hook is not None and not _HOOK_RE.match(hook):
            raise RecordError(f"{where}: field 'hook' is {_show(hook)}, expected an import path module.Class")
        cancel = f.cancel("cancel")
        if not _TOKEN_RE.match(token):
            raise RecordError(f"{where}: field 'token' is {_show(token)}, not a durable_jobs token")
        if token != identity.token(generation):
            raise RecordError(
                f"{where} carries token {token} which is not this task's token for generation {generation}: "
                "the record was copied from another task or edited. Refusing to touch its job."
            )
        if phase is not Phase.SUBMITTING and job is None:
            raise RecordError(f"{where}: field 'job' is missing in phase {phase.value}")
        if phase is Phase.FINISHED and outcome is None:
            raise RecordError(f"{where}: field 'outcome' is missing in phase finished")
        rec = cls(
            system=system,
            phase=phase,
            generation=generation,
            token=token,
            intent_at=intent_at,
            deadline=deadline,
            job=job,
            outcome=outcome,
            message=cut(message),
            clear_number=clear_number,
            submitted_try=submitted_try,
            history=history,
            conn_id=conn_id,
            hook=hook,
            cancel=cancel,
            max_tries=max_tries,
            tries=tries,
        )
        size = rec.size()
        if size > RECORD_LIMIT:
            raise RecordError(
                f"{where} is {size} bytes once its history is capped; a record holds at most {RECORD_LIMIT}"
            )
        return rec

    def size(self) -> int:
        return len(json.dumps(self.to_json(), separators=(",", ":")))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Fields:
    """Reads one field of a stored record at a time; every refusal names the field."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def _refuse(self, name: str, value: Any, expected: str) -> RecordError:
        return RecordError(f"{self.where}: field {name!r} is {_show(value)}, expected {expected}")

    def _get(self, name: str, optional: bool, default: Any) -> tuple[bool, Any]:
        if name not in self.data:
            if default is not _MISSING or optional:
                return False, None if default is _MISSING else default
            raise RecordError(f"{self.where}: field {name!r} is missing")
        value = self.data[name]
        if value is None and optional:
            return False, None
        return True, value

    def integer(self, name: str, low: int, high: int, *, default: Any = _MISSING_DEFAULT) -> int:
        present, value = self._get(name, False, default)
        if not present:
            return int(value)
        if type(value) is not int or not low <= value <= high:
            raise self._refuse(name, value, f"an integer from {low} to {high}")
        return value

    def number(self, name: str, *, optional: bool = False) -> Any:
        present, value = self._get(name, optional, _MISSING)
        if not present:
            return None
        if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value < 1e11:
            raise self._refuse(name, value, "a finite epoch timestamp in seconds")
        return float(value)

    def string(self, name: str, limit: int, *, default: Any = _MISSING_DEFAULT) -> Any:
        present, value = self._get(name, default is None, default)
        if not present:
            return None if value is None else str(value)
        if type(value) is not str or len(value) > limit:
            raise self._refuse(name, value, f"a string of at most {limit} characters")
        return value

    def enum(self, name: str, kind: type[E], *, optional: bool = False) -> Any:
        present, value = self._get(name, optional, _MISSING)
        if not present:
            return None
        try:
            if type(value) is not str:
                raise ValueError
            return kind(value)
        except ValueError:
            raise self._refuse(name, value, "one of " + ", ".join(m.value for m in kind)) from None

    def cancel(self, name: str) -> dict[str, Any] | None:
        """A tombstone's ``cancel`` object: ``at`` (epoch seconds), ``by`` (a cause), ``ti_id`` (a string)."""
        present, value = self._get(name, True, _MISSING)
        if not present:
            return None
        if type(value) is not dict:
            raise self._refuse(name, value, "an object with 'at', 'by' and 'ti_id'")
        inner = _Fields(value, f"{self.where}: field {name!r}")
        by = inner.string("by", 32)
        if by not in CANCEL_CAUSES:
            raise RecordError(
                f"{self.where}: field 'cancel.by' is {_show(by)}, expected one of {', '.join(CANCEL_CAUSES)}"
            )
        return {"at": inner.number("at"), "by": by, "ti_id": inner.string("ti_id", 64, default="")}

    def locator(self, name: str) -> dict[str, Any] | None:
        present, value = self._get(name, True, _MISSING)
        if not present:
            return None
        return _locator(value, f"{self.where}: field {name!r}")

    def tries(self, name: str) -> tuple[dict[str, Any], ...]:
        """Each try's resume decision: ``{"try": int, "decision": a lower-case word, "at": epoch seconds}``."""
        present, value = self._get(name, True, ())
        if not present:
            return ()
        if type(value) is not list:
            raise self._refuse(name, value, "a list of each try's decision")
        out = []
        for i, entry in enumerate(value[-TRIES_LIMIT:]):
            if type(entry) is not dict:
                raise RecordError(f"{self.where}: field 'tries[{i}]' is {_show(entry)}, expected an object")
            inner = _Fields(entry, f"{self.where}: field 'tries[{i}]'")
            decision = inner.string("decision", 32)
            if not _DECISION_RE.match(decision):
                raise RecordError(f"{self.where}: field 'tries[{i}].decision' is {_show(decision)}, expected a word")
            out.append({"try": inner.integer("try", 0, 10**9), "decision": decision, "at": inner.number("at")})
        return tuple(out)

    def history(self, name: str) -> tuple[dict[str, Any], ...]:
        present, value = self._get(name, True, ())
        if not present:
            return ()
        if type(value) is not list:
            raise self._refuse(name, value, "a list of earlier generations")
        out = []
        for i, entry in enumerate(value[-HISTORY_LIMIT:]):
            at = f"{self.where}: field 'history[{i}]'"
            if type(entry) is not dict:
                raise RecordError(f"{at} is {_show(entry)}, expected an object")
            gen = entry.get("generation")
            if type(gen) is not int or not 0 <= gen <= MAX_GENERATION:
                raise RecordError(f"{at}.generation is {_show(gen)}, expected an integer from 0 to {MAX_GENERATION}")
            tok = entry.get("token")
            if type(tok) is not str or not _TOKEN_RE.match(tok):
                raise RecordError(f"{at}.token is {_show(tok)}, expected a durable_jobs token")
            outcome = entry.get("outcome")
            if outcome is not None and outcome not in _OUTCOMES:
                raise RecordError(f"{at}.outcome is {_show(outcome)}, expected one of {', '.join(sorted(_OUTCOMES))}")
            msg = entry.get("message", "")
            if type(msg) is not str:
                raise RecordError(f"{at}.message is {_show(msg)}, expected a string")
            job = entry.get("job")
            out.append(
                {
                    "generation": gen,
                    "token": tok,
                    "job": None if job is None else _locator(job, f"{at}.job"),
                    "outcome": outcome,
                    "message": cut(msg, 500),
                }
            )
        return tuple(out)


def _locator(value: Any, at: str) -> dict[str, Any]:
    """A locator as stored: a small object of string keys and scalar values (the client checks the rest)."""
    if type(value) is not dict:
        raise RecordError(f"{at} is {_show(value)}, expected an object")
    if len(value) > 16:
        raise RecordError(f"{at} has {len(value)} fields; a locator has a few")
    for k, v in value.items():
        if type(k) is not str or len(k) > 64:
            raise RecordError(f"{at} has a key {_show(k)}, expected a short string")
        if (v is not None and type(v) not in (str, int)) or (type(v) is str and len(v) > 2048):
            raise RecordError(f"{at}.{k} is {_show(v)}, expected a string or an integer")
    return dict(value)
