"""The submit-once protocol, worker side: one small state machine shared by every system.

It is plain Python (no Airflow): the operator hands it a task state store (anything with ``get`` and
``set``), a client and a way to run the client's coroutines. The rules:

* persist before acting: the intent (with the token) is written before submitting, the locator before
  deferring, the outcome before returning;
* a record in ``submitting`` means a crashed try may have submitted: **find** by token before
  submitting, and if find cannot decide, fail the try (retryable) rather than submit blindly;
* unknown is never failed and never resubmitted; only a *confirmed* terminal failure starts the next
  generation, with a new token;
* no record at all while an earlier try of the run could have submitted means the record was **lost** (the
  state store cleared, the row deleted): a client that can look a token up cheaply looks for each generation's
  job before submitting, and adopts what it finds (:meth:`JobProtocol.start`);
* a job the system no longer knows (**lost**, confirmed) may have succeeded before it was forgotten, so it
  is never rerun unless the user asked: ``on_lost="fail"`` (the default) fails the task without retry and
  says how to run it again; ``on_lost="resubmit"``, or a clear of the task after the loss, starts the
  next generation;
* a **tombstone** (the reaper's record of a task a user marked finished while its job ran) is never
  followed by a second job while the first still runs: the try cancels the old job itself and waits for
  it to end before it submits the next generation (a clear right after a mark would otherwise race the
  reaper's cancel).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from durable_jobs import failpoints, metrics
from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.errors import DurableJobError, RecordError, TransientError, UndecidableError
from durable_jobs.messages import cut
from durable_jobs.record import MAX_GENERATION, STATE_KEY, JobRecord, Outcome, Phase, TaskIdentity, cancel_words
from durable_jobs.status import JobState, JobStatus

T = TypeVar("T")
log = logging.getLogger(__name__)

_OUTCOME_OF = {
    JobState.SUCCEEDED: Outcome.SUCCEEDED,
    JobState.FAILED: Outcome.FAILED,
    JobState.CANCELLED: Outcome.CANCELLED,
    JobState.LOST: Outcome.LOST,
}


class StateStore(Protocol):
    """What the protocol needs of Airflow's ``TaskStateStoreAccessor``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class RetryLater(DurableJobError):
    """This try cannot proceed safely now; a later try will (nothing was resubmitted)."""


class JobFailed(DurableJobError):
    """The job ended without success; the outcome is recorded, so a retry starts the next generation."""

    def __init__(self, message: str, record: JobRecord, status: JobStatus | None = None):
        super().__init__(message)
        self.record = record
        self.status = status


class JobError(DurableJobError):
    """Observing the job failed permanently (e.g. credentials refused); the record is untouched."""


class JobLost(DurableJobError):
    """The system forgot the job; its outcome is unknown and it is not rerun (``on_lost="fail"``).

    Not retryable: a retry would find the same record and refuse again. A clear of the task, or
    ``on_lost="resubmit"``, runs it again.
    """

    def __init__(self, message: str, record: JobRecord):
        super().__init__(message)
        self.record = record


ON_LOST_CHOICES = ("fail", "resubmit")


@dataclass(frozen=True, slots=True)
class Defer:
    """Wait for this job (in the triggerer, or on the worker when not deferrable)."""

    record: JobRecord
    status: JobStatus | None
    adopted: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """The job of this generation succeeded; no new job is needed."""

    record: JobRecord
    status: JobStatus | None


Decision = Defer | Finished


@dataclass(frozen=True, slots=True)
class ProtocolSettings:
    timeout: float | None = None  # seconds from a generation's intent to its deadline
    rerun_on_clear: bool = False
    lost_confirmations: int = 3
    confirm_delay: float = 2.0
    cancel_wait: float = 30.0
    on_lost: str = "fail"  # "fail": a forgotten job is not rerun unless the user asks; "resubmit": rerun it
    # the task's max_tries (Airflow's ``ti.max_tries``): a failure says whether a retry follows. None: not known
    max_tries: int | None = None
    # seconds a wait may run past its job's deadline (:func:`deadline_pad`)
    deadline_pad: float = 60.0

    def __post_init__(self) -> None:
        if self.on_lost not in ON_LOST_CHOICES:
            raise ValueError(f"on_lost must be one of {', '.join(ON_LOST_CHOICES)}, not {self.on_lost!r}")


def deadline_pad(poll_interval: float) -> float:
    """How long a wait may run past its job's deadline: the trigger's timeout event (which cancels the job) comes
    first, and a job older than its deadline plus this was due to be cancelled."""
    return max(60.0, 2 * poll_interval)


class JobProtocol:
    """Runs the protocol for one task instance.

    ``spec(record)`` builds the job's spec for the generation of ``record``: before that generation's intent
    is written (so an invalid spec records nothing), and when a crashed try's job is looked for.
    ``run_after``: the DAG run's ``run_after`` (epoch seconds), before which no job of the run was submitted;
    None: not known.
    """

    def __init__(
        self,
        *,
        client: JobClient[Any],
        store: StateStore,
        identity: TaskIdentity,
        spec: Callable[[JobRecord], Any],
        run: Callable[[Awaitable[Any]], Any],
        settings: ProtocolSettings = ProtocolSettings(),
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        run_after: float | None = None,
        conn_id: str | None = None,
        hook: str | None = None,
    ) -> None:
        self.client = client
        self.run_after = run_after
        self.store = store
        self.identity = identity
        self._spec = spec
        self._run = run
        self.settings = settings
        self._sleep = sleep
        self.log = logger or log
        # written into every intent: what the reaper builds a client from when no try is running
        self.conn_id = conn_id
        self.hook = hook
        # this try's resume decision and when it was made (kept in the record's ``tries``), and whether it is stored
        self._decision: tuple[str, float] | None = None
        self._decision_stored = False

    # --- store -----------------------------------------------------------------------------------------

    def load(self) -> JobRecord | None:
        raw = self.store.get(STATE_KEY)
        if raw is None:
            return None
        rec = JobRecord.from_json(raw, system=self.client.system, identity=self.identity)
        if rec.job is not None:
            try:
                job = self.client.validate_locator(rec.job)
            except RecordError as exc:
                raise RecordError(f"task state store key {STATE_KEY!r}: field 'job': {exc}") from exc
            if not self.client.locator_matches_token(job, rec.token):
                raise RecordError(
                    f"task state store key {STATE_KEY!r}: field 'job': {self.client.describe(job)} does not carry "
                    f"token {rec.token}; the record was edited or copied. Refusing to touch that job."
                )
            rec = replace(rec, job=job)
        return rec

    def save(self, rec: JobRecord) -> None:
        """Store ``rec``, with this try's resume decision once it is made."""
        if self._decision is not None:
            rec = rec.decided(self.identity.try_number, *self._decision)
            self._decision_stored = True
        self.store.set(STATE_KEY, rec.to_json())

    # --- worker entry points ---------------------------------------------------------------------------

    def start(self) -> Decision:
        """``execute()``: decide between adopting, reattaching, returning and submitting.

        Each decision is one INFO line of the task's log (:meth:`_decided`), one count of
        ``durable_jobs.resume.<decision>`` and one entry of the record's ``tries`` (written with the decision's
        own write, or alone when the decision writes nothing: a re-attach, a returned result).
        """
        self._decision, self._decision_stored = None, False
        decision = self._start()
        if self._decision is not None and not self._decision_stored:
            self.save(decision.record)
        return decision

    def _start(self) -> Decision:
        rec = self.load()
        if rec is None:
            return self._unrecorded()
        self.log.debug(
            "Recorded job: generation %d, phase %s, job %s, outcome %s",
            rec.generation,
            rec.phase,
            rec.job,
            rec.outcome,
        )
        if rec.phase is Phase.FINISHED:
            return self._after_outcome(rec)
        if rec.phase is Phase.SUBMITTING:
            found = self._find(rec)
            if found is None:
                self._decided(
                    metrics.NOT_FOUND,
                    "No job carries token %s (generation %d, intent written by %s): that try ended before "
                    "submitting; submitting generation %d",
                    rec.token,
                    rec.generation,
                    self._try_of(rec),
                    rec.generation,
                )
                return self._submit(rec)
            rec = rec.submitted(found)
            self.save(rec)
            return self._check(rec, adopted=True)
        return self._check(rec)

    def complete(self, event: Mapping[str, Any]) -> Decision:
        """``execute_complete()``: record the outcome the trigger reported, or re-check."""
        rec = self.load()
        if rec is None or rec.job is None:
            raise RecordError(
                f"resumed from the triggerer but no job is recorded under {STATE_KEY!r} for "
                f"{self.identity.describe()}; the key was deleted while the task was deferred"
            )
        kind = str(event.get("status", ""))
        ev_job = event.get("job")
        if ev_job is not None and self.client.validate_locator(ev_job) != rec.job:
            self.log.warning("Event for %s does not match the recorded job %s; re-checking", ev_job, rec.job)
            return self._check(rec)
        if rec.phase is Phase.FINISHED:
            # a crash after recording the outcome: act on what is recorded
            return self.start()
        details = event.get("details") or {}
        last = JobStatus.from_json(details["last"]) if isinstance(details.get("last"), dict) else None
        message = str(event.get("message") or (last.message if last else ""))
        if kind == JobState.SUCCEEDED.value:
            self.log.info(
                "%s %s: recording the outcome and returning its result",
                self.client.describe(rec.job),
                _state_words(last) if last is not None and last.state is JobState.SUCCEEDED else "SUCCEEDED",
            )
            return self._record_success(rec, last)
        if kind == JobState.LOST.value:
            return self._record_loss(rec, message)
        if kind in (JobState.FAILED.value, JobState.CANCELLED.value):
            self._record_failure(rec, _OUTCOME_OF[JobState(kind)], message, last)
        if kind == "timeout":
            return self._cancel_after_deadline(rec, message, cancelled=details.get("cancelled") is True)
        if kind == "error":
            what = self.client.describe(rec.job)
            raise JobError(
                f"watching {what} failed: {_sentence(message)}{self._links_text(rec.job, last)} The record is "
                "untouched. "
                + self._next_try("looks at the same job again (nothing is resubmitted)", "nothing looks at it again")
            )
        if kind == JobState.UNKNOWN.value:
            self.log.warning("The trigger could not learn the job's status (%s); re-checking", message)
            return self._check(rec)
        raise JobError(f"unexpected trigger event {dict(event)!r}")

    # --- what is said -------------------------------------------------------------------------------------

    def _decided(self, decision: str, msg: str, *args: Any) -> None:
        """The one INFO line a decision writes to the task's log, and its count."""
        self.log.info(msg, *args)
        metrics.decision(decision, self.client.system)
        self._decision, self._decision_stored = (decision, time.time()), False

    def _try_of(self, rec: JobRecord) -> str:
        """Which try wrote this generation's intent, in words."""
        if not rec.submitted_try:
            return "an earlier try"  # a record without submitted_try does not say which
        if rec.submitted_try == self.identity.try_number:
            return f"this try ({rec.submitted_try})"
        return f"try {rec.submitted_try}"

    def _next_try(self, then: str, otherwise: str) -> str:
        """What comes after this try fails, from the task's real retries: ``then`` is what the next try does,
        ``otherwise`` what happens when none comes."""
        max_tries, this = self.settings.max_tries, self.identity.try_number
        if max_tries is None:
            return f"A retry of the task, if it has one left, {then}."
        if this <= max_tries:
            return f"A retry (try {this + 1} of {max_tries + 1}) {then}."
        return f"This task has no retries left, so {otherwise}; clearing the task {then}."

    def _links_text(self, job: Locator, status: JobStatus | None = None) -> str:
        """`` Driver log: <url>.`` from the client's links; empty when it has none. Never raises: a failure
        message is not lost to a link that cannot be had."""
        links: dict[str, str] = {}
        try:
            links = dict(self._run(asyncio.wait_for(self.client.links(job), LINKS_TIMEOUT)))
        except Exception:
            self.log.debug("Could not compute links for %s", job, exc_info=True)
        if not links and status is not None and status.tracking_url:
            links = {"tracking_url": status.tracking_url}
        return "".join(f" {label}: {url}." for label, url in _shown_links(links))

    # --- no record ---------------------------------------------------------------------------------------

    def _unrecorded(self) -> Decision:
        """No record: submit generation 0, unless an earlier try of this run could have submitted.

        A try after the first, or any try after a clear, that finds no record may have lost it (the state store
        cleared or the row deleted), or an earlier try ended before writing its intent. When the client can look
        a token up cheaply (:attr:`JobClient.find_unrecorded`), each generation's job is looked for
        (:meth:`_probe`) and the latest one found is adopted, returned or followed by the next generation, as a
        recorded one would be. A lookup that cannot decide fails the try (retryable); nothing is submitted
        blindly.
        """
        who = self.identity.describe()
        earlier = self.identity.try_number > 1 or self.identity.clear_number > 0
        if not (earlier and self.client.find_unrecorded):
            if earlier:
                self.log.warning(
                    "No job recorded for %s at try %d (clear %d): an earlier try ended before recording anything, "
                    "or the record was lost (the state store cleared, the row deleted). %s jobs are not looked up "
                    "without a record, so a job an earlier try submitted may run twice",
                    who,
                    self.identity.try_number,
                    self.identity.clear_number,
                    self.client.system,
                )
            self._decided(metrics.FRESH, "No job recorded for %s: submitting generation 0", who)
            return self._submit_generation(self._unrecorded_intent(0, ()))
        since = self._unrecorded_since()
        latest, status = self._probe(since)
        if latest is None or status is None:
            self._decided(
                metrics.FRESH,
                "No job recorded for %s, and no job carries the token of %s (looked up since %s): submitting "
                "generation 0",
                who,
                "generation 0" if self.identity.try_number == 1 else f"generations 0 to {self.identity.try_number - 1}",
                _when(since),
            )
            return self._submit_generation(self._unrecorded_intent(0, ()))
        assert latest.job is not None
        found = (
            f"No job recorded for {who}, but {self.client.describe(latest.job)} (generation {latest.generation}) "
            "carries its token: the record was lost;"
        )
        state = _state_words(status)
        if status.state is JobState.SUCCEEDED:
            self._decided(
                metrics.UNRECORDED, "%s it already %s: returning its result without running anything", found, state
            )
            return self._record_success(latest, status)
        if status.state is JobState.LOST:
            self.log.warning("%s the system no longer knows it (%s)", found, cut(status.message, 300))
            return self._record_loss(latest, status.message)
        if status.state.is_terminal:
            latest = latest.finished(
                _OUTCOME_OF[status.state],
                status.message,
                clear_number=self.identity.clear_number,
                max_tries=self.settings.max_tries,
            )
            self.save(latest)
            self._decided(
                metrics.NEXT_GENERATION,
                "%s it ended %s%s: submitting generation %d",
                found,
                state,
                f" ({cut(status.message, 300)})" if status.message else "",
                latest.generation + 1,
            )
            return self._next_generation(latest)
        self.save(latest)  # before deferring: the next try re-attaches instead of looking again
        self._decided(metrics.UNRECORDED, "%s it is %s: adopting it (token %s)", found, state, latest.token)
        return Defer(latest, status, adopted=True)

    def _probe(self, since: float) -> tuple[JobRecord | None, JobStatus | None]:
        """The latest generation whose job is found by its token (as a ``submitted`` record), and its status.

        Every generation below this try's number is looked up, not only up to the first one missing: an old
        generation may be gone (deleted after it ended, or older than ``since``) while a later one runs. Each try
        submits about one generation, and the lookup goes on past that bound while the last one is found ended
        (a try that resumed from the triggerer may have submitted a second). It stops at a job that has not
        ended: nothing follows a generation before its end is confirmed.
        """
        latest: JobRecord | None = None
        status: JobStatus | None = None
        history: list[dict[str, Any]] = []
        generation = 0
        while generation <= MAX_GENERATION and (
            generation < self.identity.try_number or (latest is not None and latest.generation == generation - 1)
        ):
            intent = self._unrecorded_intent(generation, tuple(history))
            locator = self._find(intent, since=since)
            if locator is not None:
                latest, status = replace(intent.submitted(locator), submitted_try=0), self._confirmed_status(locator)
                if not status.state.is_terminal:
                    break
                ended = latest.finished(_OUTCOME_OF[status.state], status.message)
                history.append(ended.history_entry())
            generation += 1
        return latest, status

    def _unrecorded_intent(self, generation: int, history: tuple[dict[str, Any], ...]) -> JobRecord:
        return JobRecord.intent(
            system=self.client.system,
            identity=self.identity,
            generation=generation,
            timeout=self.settings.timeout,
            history=history,
            conn_id=self.conn_id,
            hook=self.hook,
        )

    def _unrecorded_since(self) -> float:
        """From when a lost record's jobs are looked for: the run's ``run_after`` (nothing of the run was submitted
        before it), and no earlier than the job timeout plus its pad ago (an older job was due to be cancelled;
        this keeps a run from months ago, cleared today, from listing months of jobs)."""
        floors = [] if self.run_after is None else [self.run_after]
        if self.settings.timeout is not None:
            floors.append(time.time() - self.settings.timeout - self.settings.deadline_pad)
        return max(floors, default=0.0)

    # --- steps -----------------------------------------------------------------------------------------

    def _after_outcome(self, rec: JobRecord) -> Decision:
        """A record with its outcome: return the success, or move on after a failure or a loss."""
        assert rec.job is not None
        what = self.client.describe(rec.job)
        if rec.outcome is Outcome.SUCCEEDED:
            if self.settings.rerun_on_clear and self._cleared_since(rec):
                return self._rerun_after_clear(rec, "SUCCEEDED", "rerun_on_clear is set")
            self._decided(
                metrics.RETURNED,
                "%s from generation %d already SUCCEEDED: returning its result without running anything",
                what,
                rec.generation,
            )
            return Finished(rec, None)
        if rec.outcome is Outcome.LOST:
            return self._after_loss(rec)
        if rec.cancel is not None:
            self._end_tombstoned(rec)
        self._decided(
            metrics.NEXT_GENERATION,
            "%s (generation %d) ended %s%s: submitting generation %d",
            what,
            rec.generation,
            _upper(rec.outcome),
            f" ({cut(rec.message, 300)})" if rec.message else "",
            rec.generation + 1,
        )
        return self._next_generation(rec)

    def _cleared_since(self, rec: JobRecord) -> bool:
        """Whether a user cleared this task since ``rec``'s outcome was recorded.

        Airflow counts clears per DAG run (``clear_number`` goes up at a clear of any of its tasks), and raises
        a task instance's ``max_tries`` only at a clear of that task: both must have moved. A record or a try
        that does not know ``max_tries`` goes by the run's count alone.
        """
        if rec.clear_number == self.identity.clear_number:
            return False
        now, then = self.settings.max_tries, rec.max_tries
        return now is None or then is None or now != then

    def _rerun_after_clear(self, rec: JobRecord, ended: str, why: str) -> Decision:
        """The task was cleared since ``rec``'s outcome was recorded, and ``why`` that means running it again."""
        assert rec.job is not None
        self._decided(
            metrics.NEXT_GENERATION,
            "%s (generation %d) %s, and the task was cleared since (clear_number %d -> %d): %s, so submitting "
            "generation %d",
            self.client.describe(rec.job),
            rec.generation,
            ended,
            rec.clear_number,
            self.identity.clear_number,
            why,
            rec.generation + 1,
        )
        return self._next_generation(rec)

    def _end_tombstoned(self, rec: JobRecord) -> None:
        """A tombstone: its job must have ended before the next generation starts (never two at once).

        The reaper cancels it from a triggerer; when this try comes first (a clear right after the mark, or
        no triggerer up), it cancels the job itself (cancel is idempotent) and waits up to ``cancel_wait``.
        """
        assert rec.job is not None and rec.cancel is not None
        what = self.client.describe(rec.job)
        status = self._status(rec.job)
        if status.state.is_terminal:
            return
        self.log.warning(
            "%s (generation %d) is still %s although the task was %s by a user: cancelling it before "
            "submitting generation %d",
            what,
            rec.generation,
            _state_words(status),
            cancel_words(str(rec.cancel.get("by", ""))),
            rec.generation + 1,
        )
        status = self._cancel_and_wait(rec.job, f"{what} of the marked try")
        if not status.state.is_terminal:
            raise RetryLater(
                f"{what} (generation {rec.generation}) was asked to stop but is still {_upper(status.state)} after "
                f"{self.settings.cancel_wait:.0f}s; not submitting generation {rec.generation + 1} while it runs. "
                + self._next_try("cancels it again", "it is not cancelled again")
            )

    def _cancel_and_wait(self, job: Locator, what: str) -> JobStatus:
        """Ask the system to stop ``job`` and poll it until it ends or ``cancel_wait`` passes; its last status."""
        try:
            self._run(self.client.cancel(job))
        except TransientError as exc:
            raise RetryLater(
                f"cancelling {what} failed ({exc}). " + self._next_try("cancels it again", "it is not cancelled again")
            ) from exc
        waited = 0.0
        status = self._status(job)
        while not status.state.is_terminal and waited < self.settings.cancel_wait:
            self._sleep(self.settings.confirm_delay)
            waited += self.settings.confirm_delay
            status = self._status(job)
        return status

    def _next_generation(self, rec: JobRecord) -> Decision:
        return self._submit_generation(
            rec.next_generation(self.identity, self.settings.timeout, conn_id=self.conn_id, hook=self.hook)
        )

    def _submit_generation(self, intent: JobRecord) -> Decision:
        spec = self._spec(intent)  # a spec that is not valid (once rendered) fails here, before anything is written
        failpoints.failpoint(failpoints.BEFORE_INTENT)
        self.save(intent)
        failpoints.failpoint(failpoints.AFTER_INTENT)
        return self._submit(intent, spec)

    def _submit(self, rec: JobRecord, spec: Any = None) -> Decision:
        if spec is None:
            spec = self._spec(rec)
        if rec.job is None:
            try:
                reserved = self._run(self.client.reserve(spec, rec.token))
            except TransientError as exc:
                raise RetryLater(
                    f"reserving a job id for token {rec.token} failed transiently: {exc}. Nothing was submitted. "
                    + self._next_try("reserves it again", "nothing is submitted")
                ) from exc
            if reserved is not None:
                # the id is known before the job exists: record it first, so a crash leaves nothing to guess
                rec = replace(rec, job=self.client.validate_locator(reserved))
                self.save(rec)
                self.log.info("Reserved %s for token %s", self.client.describe(rec.job or {}), rec.token)
        try:
            locator = self._run(self.client.submit(spec, rec.token, reserved=rec.job))
        except TransientError as exc:
            found = self._look_after_lost_answer(rec, exc)
            if found is None:
                raise RetryLater(
                    f"submitting generation {rec.generation} (token {rec.token}) failed transiently: {exc}. "
                    "The intent is recorded. "
                    + self._next_try(
                        "looks for the job with that token before submitting again", "nothing is submitted"
                    )
                ) from exc
            locator = found
        metrics.incr("submissions", metrics.client_tags(self.client))  # counted once the system took it
        failpoints.failpoint(failpoints.AFTER_SUBMIT)
        locator = self.client.validate_locator(locator)
        rec = rec.submitted(locator)
        self.save(rec)
        failpoints.failpoint(failpoints.AFTER_PERSIST)
        self.log.info(
            "Submitted %s (generation %d, token %s)", self.client.describe(locator), rec.generation, rec.token
        )
        return Defer(rec, None)

    def _look_after_lost_answer(self, rec: JobRecord, exc: TransientError) -> Locator | None:
        """The job of a submit whose answer did not come, when the system has it; None: not known yet.

        The request may have reached the system before the answer was lost (a reset, a timeout). Looking the
        token up once lets this try go on with that job instead of failing; when the lookup finds nothing or
        cannot decide, the try fails as before, and the next one looks again (nothing is submitted blindly).
        """
        try:
            found = self._find(rec)
        except RetryLater:
            return None
        if found is not None:
            self.log.warning(
                "The answer to submitting generation %d was lost (%s), but %s carries its token %s: going on with it",
                rec.generation,
                cut(str(exc), 300),
                self.client.describe(found),
                rec.token,
            )
        return found

    def _find(self, rec: JobRecord, since: float | None = None) -> Locator | None:
        """The job carrying ``rec``'s token, submitted after ``since`` (default: its intent), if any."""
        self.log.debug("Looking for a job with token %s", rec.token)
        since = rec.intent_at if since is None else since
        try:
            found = self._run(self.client.find(rec.token, since=since, spec=self._spec(rec), reserved=rec.job))
        except UndecidableError as exc:
            raise RetryLater(
                f"cannot tell yet whether token {rec.token} was submitted: {exc}. Not submitting blindly. "
                + self._next_try("looks again", "nothing is submitted")
            ) from exc
        except TransientError as exc:
            raise RetryLater(
                f"cannot look for the job with token {rec.token}: {exc}. Not submitting blindly. "
                + self._next_try("looks again", "nothing is submitted")
            ) from exc
        return None if found is None else self.client.validate_locator(found)

    def _status(self, locator: Locator) -> JobStatus:
        try:
            status: JobStatus = self._run(self.client.status(locator))
        except TransientError as exc:
            return JobStatus.unknown_from(exc)
        return status

    def _confirmed_status(self, locator: Locator) -> JobStatus:
        status = self._status(locator)
        for _ in range(self.settings.lost_confirmations - 1):
            if status.state is not JobState.LOST:
                break
            self._sleep(self.settings.confirm_delay)
            status = self._status(locator)
        return status

    def _check(self, rec: JobRecord, adopted: bool = False) -> Decision:
        """Look at the recorded job once and act on its status: wait, return, move on, or handle a loss.

        ``adopted``: the job was just found by its token, submitted by a try that ended before recording it.
        """
        assert rec.job is not None
        status = self._confirmed_status(rec.job)
        what = self.client.describe(rec.job)
        self.log.debug("Status of %s: %s %s", what, status.state, status.message)
        state = _state_words(status)
        if adopted:
            found = f"Adopted {what} from {self._try_of(rec)}, which ended before recording it; it"
            tail = f" (generation {rec.generation}, token {rec.token})"  # last: the story fits one line's start
        else:
            found, tail = f"Found {what} from {self._try_of(rec)}; it", ""
        decision = metrics.ADOPTED if adopted else None
        if status.state is JobState.SUCCEEDED:
            self._decided(
                decision or metrics.RETURNED,
                "%s already %s: returning its result without running anything%s",
                found,
                state,
                tail,
            )
            return self._record_success(rec, status)
        if status.state is JobState.LOST:
            return self._record_loss(rec, status.message)
        if status.state.is_terminal and rec.submitted_try == self.identity.try_number:
            # Airflow ran this try's execute() again (its resume was lost, apache/airflow#72716): the job it
            # submitted failed, so the try fails as its execute_complete() would have; a retry, if the task has
            # one, submits the next generation. Submitting it here would spend a generation no retry gave.
            self._decided(
                metrics.FAILED,
                "%s ended %s%s: failing this try%s",
                found,
                state,
                f" ({cut(status.message, 300)})" if status.message else "",
                tail,
            )
            self._record_failure(rec, _OUTCOME_OF[status.state], status.message, status)
        if status.state.is_terminal:
            rec = rec.finished(
                _OUTCOME_OF[status.state],
                status.message,
                clear_number=self.identity.clear_number,
                max_tries=self.settings.max_tries,
            )
            self.save(rec)
            self._decided(
                decision or metrics.NEXT_GENERATION,
                "%s ended %s%s: submitting generation %d%s",
                found,
                state,
                f" ({cut(status.message, 300)})" if status.message else "",
                rec.generation + 1,
                tail,
            )
            return self._next_generation(rec)
        if status.state is JobState.UNKNOWN:
            self._decided(
                decision or metrics.REATTACHED,
                "%s cannot be seen now (%s): re-attaching; the wait goes on until the endpoint answers%s",
                found,
                cut(status.message, 300),
                tail,
            )
        else:
            self._decided(decision or metrics.REATTACHED, "%s is still %s: re-attaching%s", found, state, tail)
        return Defer(rec, status, adopted=adopted)

    def _record_success(self, rec: JobRecord, status: JobStatus | None) -> Finished:
        failpoints.failpoint(failpoints.BEFORE_OUTCOME)
        rec = rec.finished(
            Outcome.SUCCEEDED,
            status.message if status else "",
            clear_number=self.identity.clear_number,
            max_tries=self.settings.max_tries,
        )
        self.save(rec)
        return Finished(rec, status)

    def _record_loss(self, rec: JobRecord, message: str) -> Decision:
        """A confirmed LOST: record it (with the run's clear count now), then do what ``on_lost`` says."""
        failpoints.failpoint(failpoints.BEFORE_OUTCOME)
        rec = rec.finished(
            Outcome.LOST, message, clear_number=self.identity.clear_number, max_tries=self.settings.max_tries
        )
        self.save(rec)
        return self._after_loss(rec)

    def _after_loss(self, rec: JobRecord) -> Decision:
        assert rec.job is not None
        what = self.client.describe(rec.job)
        if self.settings.on_lost == "resubmit":
            self._decided(
                metrics.NEXT_GENERATION,
                "%s (generation %d) is LOST (%s); on_lost='resubmit': submitting generation %d",
                what,
                rec.generation,
                rec.message or "not found",
                rec.generation + 1,
            )
            return self._next_generation(rec)
        if self._cleared_since(rec):
            return self._rerun_after_clear(rec, "was LOST", "a clear asks to run it again")
        self._decided(
            metrics.LOST,
            "%s (generation %d) is LOST (%s): not submitting it again; failing the task (on_lost='fail')",
            what,
            rec.generation,
            rec.message or "not found",
        )
        raise JobLost(
            f"The outcome of {what} (generation {rec.generation}, token {rec.token}) is unknown: the system no "
            f"longer knows the job ({rec.message or 'not found'}).{self._links_text(rec.job)} It was not submitted "
            "again, because a job the system forgot may have succeeded, and this failure is not retried. To run it "
            "again, clear this task (a clear counts as asking), or set on_lost='resubmit' on the operator "
            "(deployment-wide: [durable_jobs] on_lost = resubmit).",
            rec,
        )

    def _record_failure(self, rec: JobRecord, outcome: Outcome, message: str, status: JobStatus | None) -> None:
        failpoints.failpoint(failpoints.BEFORE_OUTCOME)
        rec = rec.finished(outcome, message, clear_number=self.identity.clear_number, max_tries=self.settings.max_tries)
        self.save(rec)
        assert rec.job is not None
        raise JobFailed(
            f"{self.client.describe(rec.job)} (generation {rec.generation}) ended {_upper(outcome)}"
            + (f": {_sentence(message)}" if message else ".")
            + self._links_text(rec.job, status)
            + " "
            + self._next_try(f"submits generation {rec.generation + 1}", "nothing is resubmitted"),
            rec,
            status,
        )

    def _lost_at_deadline(self, rec: JobRecord, status: JobStatus) -> Decision:
        assert rec.job is not None
        self.log.warning(
            "%s is LOST after its deadline passed (%s)", self.client.describe(rec.job), cut(status.message, 300)
        )
        return self._record_loss(rec, status.message)

    def _cancel_from_triggerer(self, rec: JobRecord, why: str) -> Defer:
        """The deadline passed and this try could not stop the job: wait again instead of failing with the job
        still running (a last try would leave it running for good). The trigger starts past the deadline, so it
        cancels the job itself, repeating the cancel until the system takes it, and fires when the job ended
        (:meth:`DurableJobTrigger.wait`); this try then records the outcome."""
        assert rec.job is not None
        self.log.warning(
            "Deadline passed, but %s Waiting for %s to end: the trigger cancels it until the system takes the cancel",
            _sentence(why),
            self.client.describe(rec.job),
        )
        return Defer(rec, None)

    def _cancel_after_deadline(self, rec: JobRecord, message: str, *, cancelled: bool = False) -> Decision:
        """The deadline passed: cancel the job and record it cancelled (``cancelled``: the trigger already did).

        A job the system forgot is a loss, not a cancel: it may have succeeded first, and a cancel is followed
        by the next generation. After a cancel that deletes the job (:attr:`JobClient.cancel_deletes`), LOST is
        that cancel's doing, so a job already gone is told apart before cancelling.
        """
        job = rec.job
        assert job is not None
        what = self.client.describe(job)
        if self.client.cancel_deletes and not cancelled:
            before = self._confirmed_status(job)
            if before.state is JobState.LOST:
                return self._lost_at_deadline(rec, before)
        self.log.warning("Deadline passed: cancelling %s", what)
        try:
            status = self._cancel_and_wait(job, f"{what} after its deadline passed")
        except RetryLater as exc:
            return self._cancel_from_triggerer(rec, f"the cancel of {what} failed ({exc.__cause__ or exc})")
        if status.state is JobState.LOST and not self.client.cancel_deletes:
            status = self._confirmed_status(job)
            if status.state is JobState.LOST:
                return self._lost_at_deadline(rec, status)
        if not status.state.is_terminal:
            return self._cancel_from_triggerer(
                rec,
                f"{what} was asked to stop but is still {_upper(status.state)} after {self.settings.cancel_wait:.0f}s",
            )
        if status.state is JobState.SUCCEEDED:
            self.log.info("%s succeeded just before it could be cancelled", what)
            return self._record_success(rec, status)
        failpoints.failpoint(failpoints.BEFORE_OUTCOME)
        deadline_msg = f"deadline passed; job cancelled (final state {status.raw_state or _upper(status.state)})"
        rec = rec.finished(
            Outcome.CANCELLED, deadline_msg, clear_number=self.identity.clear_number, max_tries=self.settings.max_tries
        )
        self.save(rec)
        raise JobFailed(
            f"{what} (generation {rec.generation}): {deadline_msg}. {_sentence(message) if message else ''}".rstrip()
            + self._links_text(job, status)
            + " "
            + self._next_try(f"submits generation {rec.generation + 1}", "nothing is resubmitted"),
            rec,
            status,
        )


#: the longest wait for a job's links when a failure message is written
LINKS_TIMEOUT = 20.0
#: which of a client's links a failure message shows, best first, and how it calls them
_LINK_LABELS = {
    "driver_ui_url": "Driver log",
    "emr_logs_url": "Logs",
    "logs_url": "Logs",
    "tracking_url": "Tracking UI",
    "rm_app_url": "ResourceManager page",
    "console_url": "Console",
    "emr_cluster_url": "EMR console",
    "log_uri": "Logs",
    "emr_logs_uri": "Logs",
    "master_ui_url": "Master UI",
}
_LINKS_SHOWN = 2


def _shown_links(links: Mapping[str, str]) -> list[tuple[str, str]]:
    """The links a message shows: the best :data:`_LINKS_SHOWN` of them, each with its label."""
    ranked = sorted(
        (k for k, v in links.items() if isinstance(v, str) and v),
        key=lambda k: list(_LINK_LABELS).index(k) if k in _LINK_LABELS else len(_LINK_LABELS),
    )
    return [(_LINK_LABELS.get(k) or k.removesuffix("_url").replace("_", " ").capitalize(), links[k]) for k in ranked][
        :_LINKS_SHOWN
    ]


def _upper(word: Any) -> str:
    """A state or an outcome as the log lines and messages write it: ``FAILED``."""
    return str(word).upper()


def _state_words(status: JobStatus) -> str:
    """``RUNNING``, with the system's own word when it differs (``SUCCEEDED (FINISHED)``)."""
    word = _upper(status.state)
    raw = status.raw_state.strip()
    return f"{word} ({raw})" if raw and raw.upper() != word else word


def _when(epoch: float) -> str:
    """An epoch time as the log lines write it: ``2026-12-03 11:50:42 UTC``; 0: ``any time``."""
    if not epoch:
        return "any time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _sentence(text: str) -> str:
    """``text`` ending with one full stop."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
