"""The generic trigger: wait for one recorded job and yield exactly one event.

A subclass only says which hook builds its client. ``run()`` is stateless and safe to restart at any
time (a triggerer restart re-runs it from the start; in HA two triggerers may briefly run it at once):
it only *observes* the job, through the shared poller of :mod:`durable_jobs.polling`. Its kwargs hold
the locator, a ``conn_id``, the poll settings, the token and an **absolute** deadline, never a secret.

Event payload: ``{"status", "job", "token", "generation", "message", "details": {"last": status}}``
where status is a terminal state, ``timeout``, ``unknown`` (the endpoint stayed unreachable past the
budget; the operator re-checks and defers again) or ``error`` (the endpoint refused us, or the connection is
set up wrong: the message says what to fix).

**Classpaths are permanent.** Airflow stores each deferred trigger in its trigger table as the classpath
``durable_jobs.triggers.<module>.<Class>`` with the kwargs of :meth:`~DurableJobTrigger.serialize`, and
rebuilds it from them in the triggerer, possibly after an upgrade. Every classpath a release could store
must keep importing (a move leaves the old name importable), and every kwarg it stored must still be
accepted; ``tests/core/test_compat_010.py`` holds those of 0.1.0.

A subclass may take constructor arguments of its own (see :class:`DurableJobTrigger`): the triggerer
rebuilds a trigger as ``cls(**kwargs)`` from what :meth:`~DurableJobTrigger.serialize` returned, so
``serialize()`` returns every keyword of the subclass's ``__init__``, read from the attribute of the same
name, and refuses a missing attribute or a value that is not plain JSON.

``on_kill`` runs only on a user action (clear, mark failed, mark success). It cancels the job only when
the task instance has really finished: after a *clear*, Airflow may run it after the new try has
already re-attached to the same job, and that job must live.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import structlog
from airflow.triggers.base import BaseTrigger, TriggerEvent

from durable_jobs.airflow_compat import task_instance_state, uses_default_logger
from durable_jobs.clients.base import JobClient, KeyedLocator
from durable_jobs.errors import ConnectionConfigError, DurableJobError, RecordError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.messages import cut
from durable_jobs.polling import IN_TRIGGERER, log_info, wait_for_outcome
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.retry import RetryPolicy
from durable_jobs.watch import PollSettings

# TI states after which no try of this task will look at the job again
FINISHED_TI_STATES = frozenset({"failed", "success", "skipped", "upstream_failed", "removed"})
_CLASS_LOGGERS: dict[type[Any], Any] = {}


@functools.lru_cache(maxsize=256)
def _settings(interval: float, unknown_budget: float, lost_confirmations: int) -> PollSettings:
    """Poll settings are immutable: triggers with the same ones share one object."""
    return PollSettings(interval=interval, unknown_budget=unknown_budget, lost_confirmations=lost_confirmations)


def _init_parameters(cls: type[Any]) -> tuple[list[str], bool]:
    """The keywords ``cls(**kwargs)`` reaches in ``cls``'s own ``__init__`` chain, and whether the chain ends
    at :class:`DurableJobTrigger` (every ``__init__`` on the way forwards ``**kwargs``)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is DurableJobTrigger:
            return names, True
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is p.POSITIONAL_ONLY:
                raise TypeError(
                    f"{cls.__qualname__}: {klass.__qualname__}.__init__ takes {p.name!r} by position only; the "
                    f"triggerer rebuilds a trigger as cls(**kwargs), so every argument must be a keyword"
                )
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in names:
                names.append(p.name)
        if not forwards:
            return names, False
    return names, False  # not reached: every subclass has DurableJobTrigger in its MRO


def _plain_json(value: Any, where: str) -> Any:
    """``value`` if it is plain JSON (what the trigger table stores and gives back unchanged), else TypeError."""
    if value is None or type(value) in (str, int, bool):
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}; JSON has no NaN or infinity")
        return value
    if type(value) in (list, tuple):
        return [_plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value) is dict:
        for k in value:
            if type(k) is not str:
                raise TypeError(f"{where} has the key {k!r}; a JSON object's keys are strings")
        return {k: _plain_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a trigger cannot carry: its "
        "kwargs are stored as JSON in Airflow's trigger table. Pass a str, int, float, bool or None, or lists "
        "and dicts of them (e.g. a duration in seconds, a timestamp as an ISO string)"
    )


class DurableJobTrigger(BaseTrigger):  # type: ignore[misc]
    """Base trigger; subclasses set :attr:`hook_class`.

    **Extra constructor arguments.** A subclass may add keyword arguments to ``__init__``; it stores each
    as an attribute of the same name and passes the base arguments on (``**kwargs`` or by name)::

        class RegionTrigger(SparkStandaloneTrigger):
            def __init__(self, *, region: str = "eu", **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.region = region

    :meth:`serialize` then returns ``region`` with the base kwargs, so the triggerer's ``cls(**kwargs)``
    gets it back; the names are found once, when the class is defined (:attr:`extra_kwargs`). A value that
    is not plain JSON, or a missing attribute, raises ``TypeError`` from :meth:`serialize` (the operator
    calls it as soon as it builds the trigger), never a silent drop; an ``__init__`` that takes an argument
    by position only, or that drops a base argument, raises ``TypeError`` when the class is defined. An
    operator passes the values from :meth:`DurableJobOperator.trigger_kwargs
    <durable_jobs.operators.base.DurableJobOperator.trigger_kwargs>`. A subclass that overrides
    :meth:`serialize` itself is left to it.
    """

    #: the hook that builds the client; the operators deferring to this trigger take it from here too
    hook_class: ClassVar[type[DurableJobHook]]
    #: the subclass's own ``__init__`` keywords that :meth:`serialize` returns (computed, do not set)
    extra_kwargs: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names, reaches_base = _init_parameters(cls)
        if cls.serialize is DurableJobTrigger.serialize and not reaches_base:
            missing = [n for n in BASE_KWARGS if n not in names]
            if missing:
                raise TypeError(
                    f"{cls.__qualname__}.__init__ does not take {', '.join(map(repr, missing))}, which "
                    "serialize() returns and the triggerer passes back: take **kwargs and pass them to "
                    "super().__init__()"
                )
        cls.extra_kwargs = tuple(n for n in names if n not in _BASE_KWARGS)

    def __init__(
        self,
        *,
        job: dict[str, Any],
        conn_id: str,
        token: str,
        generation: int,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        unknown_budget: float = 1800.0,
        lost_confirmations: int = 3,
    ) -> None:
        super().__init__()
        self.job = dict(job)
        self.conn_id = conn_id
        self.token = token
        self.generation = generation
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.unknown_budget = float(unknown_budget)
        self.lost_confirmations = int(lost_confirmations)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and the kwargs Airflow stores in its trigger table and rebuilds the trigger from.

        The classpath (``durable_jobs.triggers.<module>.<Class>``) and the base kwargs' names are permanent:
        a trigger stored by an older release is rebuilt with this code.
        """
        cls = type(self)
        kwargs = {name: getattr(self, name) for name in BASE_KWARGS}
        kwargs["job"] = dict(self.job)
        for name in cls.extra_kwargs:
            try:
                value = getattr(self, name)
            except AttributeError:
                raise TypeError(
                    f"{cls.__qualname__}.__init__ takes {name!r} but the trigger has no attribute {name!r}: "
                    f"store it as self.{name}, so that serialize() can hand it back to the triggerer"
                ) from None
            kwargs[name] = _plain_json(value, f"{cls.__qualname__}.{name}")
        return f"{cls.__module__}.{cls.__qualname__}", kwargs

    @property
    def settings(self) -> PollSettings:
        return _settings(self.poll_interval, self.unknown_budget, self.lost_confirmations)

    @property
    def log(self) -> Any:
        """The class's logger, made once per class instead of once per instance (a triggerer holds thousands).

        Which task a line belongs to comes from the triggerer's log context, not from the logger object, so
        the lines are the same. A logger set on the instance, or a custom logger name, is used as before.
        """
        if not uses_default_logger(self):
            return super().log
        cls = type(self)
        shared = _CLASS_LOGGERS.get(cls)
        if shared is None:
            shared = _CLASS_LOGGERS[cls] = structlog.get_logger(f"{cls.__module__}.{cls.__name__}")
        return shared

    async def get_client(self) -> JobClient[Any]:
        return await self.hook_class.aget_client(self.conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        IN_TRIGGERER.set(True)  # this task's context only: its wait counts in the triggerer's jobs_watched
        try:
            client = await self.get_client()
        except ConnectionConfigError as exc:
            # nothing can be watched until someone fixes the connection: say what to fix, in one event
            self.log.error("Cannot watch %s: %s", self.job, exc)
            yield TriggerEvent(self._event("error", self.job, str(exc), None))
            return
        yield TriggerEvent(await self.wait(client))

    async def wait(self, client: JobClient[Any]) -> dict[str, Any]:
        """Wait with ``client`` and return the event payload (also the worker path when not deferrable)."""
        try:
            job = self._checked_job(client)
        except RecordError as exc:
            self.log.error("Refusing to watch %s: %s", self.job, exc)
            return self._event("error", self.job, str(exc), None)
        job = KeyedLocator(job)  # keyed once: every poll keys every watched job
        self.job = job  # one dict per waiting trigger, not two
        if self.deadline is not None and self.deadline <= time.time():
            return await self._cancel_then_wait(client, job)
        log_info(  # not self.log.info: this coroutine waits on, and must not keep a frame object for the log call
            self.log,
            "Watching %s (generation %d, token %s) every %.0fs",
            client.describe(job),
            self.generation,
            self.token,
            self.poll_interval,
        )
        result = await wait_for_outcome(client, job, self.settings, deadline=self.deadline, logger=self.log)
        self.log.info("%s: %s %s", client.describe(job), result.status, cut(result.message, 500))
        return self._event(result.status, job, result.message, result.last)

    async def _cancel_then_wait(self, client: JobClient[Any], job: dict[str, Any]) -> dict[str, Any]:
        """A wait that starts after its deadline: the worker could not stop the job (its endpoint did not take
        the cancel), so the triggerer cancels it, repeating the cancel until the system takes it, and waits for
        the job to end, holding no worker slot. Then ``timeout`` (the job ended without success), or how it
        ended otherwise (it may have succeeded first). A task never ends with its job left running."""
        what = client.describe(job)
        self.log.warning("Deadline passed: cancelling %s from the triggerer until the system takes it", what)
        try:
            await CANCEL_UNTIL_TAKEN.call(lambda: client.cancel(job), what=f"cancelling {what}", level=logging.WARNING)
        except DurableJobError as exc:
            self.log.error("Cannot cancel %s: %s", what, exc)
            return self._event("error", job, f"cancelling after the deadline failed: {exc}", None)
        result = await wait_for_outcome(client, job, self.settings, deadline=None, logger=self.log)
        self.log.info("%s: %s %s", what, result.status, cut(result.message, 500))
        ended = (JobState.FAILED.value, JobState.CANCELLED.value)
        if result.status in ended or (result.status == JobState.LOST.value and client.cancel_deletes):
            event = self._event("timeout", job, f"deadline passed; the triggerer cancelled {what}", result.last)
            event["details"]["cancelled"] = True
            return event
        return self._event(result.status, job, result.message, result.last)

    def _checked_job(self, client: JobClient[Any]) -> dict[str, Any]:
        """The locator, validated, and shown to belong to this trigger's token where the system allows."""
        job = client.validate_locator(self.job)
        if not client.locator_matches_token(job, self.token):
            raise RecordError(
                f"{client.describe(job)} does not carry token {self.token}: the trigger's kwargs were edited or "
                "copied from another task. Refusing to watch or cancel it."
            )
        return job

    def _event(self, status: str, job: dict[str, Any], message: str, last: JobStatus | None) -> dict[str, Any]:
        return {
            "status": status,
            "job": dict(job),
            "token": self.token,
            "generation": self.generation,
            "message": cut(message),
            "details": {"last": last.to_json() if last else None},
        }

    async def on_kill(self) -> None:
        state = await self._task_instance_state()
        if state is not None and state not in FINISHED_TI_STATES:
            self.log.info(
                "Task instance is %s after the user action (cleared): a new try owns %s; not cancelling it",
                state,
                self.job,
            )
            return
        if state is None and self.task_instance is not None:
            self.log.warning("Could not read the task instance state; not cancelling %s to be safe", self.job)
            return
        try:
            client = await self.get_client()
            job = self._checked_job(client)
        except (RecordError, ConnectionConfigError) as exc:
            self.log.error("Not cancelling %s: %s", self.job, exc)
            return
        self.log.info("Task instance is %s: cancelling %s", state, client.describe(job))
        await client.cancel(job)

    async def _task_instance_state(self) -> str | None:
        """The TI's current state via the triggerer's supervisor channel; None when unknown."""
        ti = self.task_instance
        if ti is None:
            return None
        try:
            from durable_jobs.record import TaskIdentity  # here: the module's import time is on the triggerer's loop

            who = TaskIdentity.from_ti(ti)
            value = await task_instance_state(who.dag_id, who.run_id, who.task_id, who.map_index)
        except Exception:
            logging.getLogger(__name__).warning("reading the task instance state failed", exc_info=True)
            return None
        return "none" if value is None else str(getattr(value, "value", value))


#: the keyword arguments every durable trigger takes and serializes: ``DurableJobTrigger.__init__``'s. They
#: are stored by Airflow in its trigger table, so they are permanent (a stored trigger is rebuilt with them)
#: a cancel after the deadline, from the triggerer: repeated on transient errors until the system takes it
CANCEL_UNTIL_TAKEN = RetryPolicy(attempts=None, budget=None, backoff=Backoff(base=1.0, cap=60.0))
BASE_KWARGS: tuple[str, ...] = tuple(inspect.signature(DurableJobTrigger.__init__).parameters)[1:]
_BASE_KWARGS = frozenset(BASE_KWARGS)
