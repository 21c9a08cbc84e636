"""The generic durable operator: Airflow glue around :class:`durable_jobs.protocol.JobProtocol`.

A system operator only names its trigger and builds its job spec; everything else (the hook, the task
identity, the spec check at parse time and once rendered, the record, adopt/reattach/resubmit, deferral
with an absolute deadline, the non-deferrable worker path, XCom links) is here, once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from airflow.sdk import NEVER_EXPIRE, BaseOperator  # type: ignore[attr-defined]  # public; absent from the SDK stub
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from durable_jobs.clients.base import JobClient
from durable_jobs.errors import ConnectionConfigError, DurableJobError, RecordError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.convert import as_bool
from durable_jobs.operators.templated import is_templated
from durable_jobs.operators.triggerer_health import warn_if_no_triggerer
from durable_jobs.protocol import (
    ON_LOST_CHOICES,
    Decision,
    Finished,
    JobLost,
    JobProtocol,
    ProtocolSettings,
    deadline_pad,
)
from durable_jobs.record import JobRecord, TaskIdentity
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.base import BASE_KWARGS, DurableJobTrigger

T = TypeVar("T")
DEFAULT_JOB_TIMEOUT = timedelta(days=1)


def default_on_lost() -> str:
    """``[durable_jobs] on_lost`` (or ``AIRFLOW__DURABLE_JOBS__ON_LOST``), else ``"fail"``."""
    try:
        from airflow.sdk import conf

        value = conf.get("durable_jobs", "on_lost", fallback=None)
    except Exception:  # no usable config: keep our default
        value = None
    value = (value or "fail").strip().lower()
    if value not in ON_LOST_CHOICES:
        raise ValueError(f"[durable_jobs] on_lost must be one of {', '.join(ON_LOST_CHOICES)}, not {value!r}")
    return value


def _run_after(context: Any) -> float | None:
    """The DAG run's ``run_after`` in epoch seconds: stable across clears, unlike its start and queued dates."""
    value = getattr(context.get("dag_run"), "run_after", None)
    return value.timestamp() if isinstance(value, datetime) and value.tzinfo is not None else None


def default_deferrable() -> bool:
    """Deferrable unless the deployment explicitly says otherwise.

    Honoured, first found wins: ``[durable_jobs] default_deferrable`` (or
    ``AIRFLOW__DURABLE_JOBS__DEFAULT_DEFERRABLE``), this library's own and so the more specific; then the
    environment variable ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE``; otherwise True. ``[operators]
    default_deferrable`` in ``airflow.cfg`` is not read, whatever its value: Airflow writes ``false`` there in
    every generated file, so a value in the file cannot be told from Airflow's shipped default (and ``true``
    is this default anyway).
    """
    try:
        from airflow.sdk import conf

        own = conf.get("durable_jobs", "default_deferrable", fallback=None)
    except Exception:  # no usable config: the environment and our default
        own = None
    if own not in (None, ""):
        return as_bool(own, True)
    return as_bool(os.environ.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"), True)


def _record_passing(build_spec: Callable[..., Any]) -> str:
    """How ``build_spec`` takes the record: ``"position"`` (``(self, context, record)``), ``"keyword"``
    (``(self, context, *, record)``) or ``"no"`` (``(self, context)``, as written for 0.1.0)."""
    try:
        params = list(inspect.signature(build_spec).parameters.values())[1:]
    except (TypeError, ValueError):  # no signature to read: assume the current one
        return "position"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return "position"
    if any(p.name == "record" or p.kind is p.VAR_KEYWORD for p in params):
        return "keyword"
    return "no"


def _init_owner(cls: type[Any]) -> type[Any]:
    """The class whose ``__init__`` constructing a ``cls`` starts with."""
    return next(k for k in cls.__mro__ if "__init__" in k.__dict__)


def _checking_init(owner: type[Any], init: Callable[..., None]) -> Callable[..., None]:
    """``init``, followed by the parse-time spec check once the outermost ``__init__`` has set every field."""

    @functools.wraps(init)
    def __init__(self: DurableJobOperator, **kwargs: Any) -> None:
        init(self, **kwargs)
        if _init_owner(type(self)) is owner:
            self._check_literal_spec()

    __init__.checks_spec = True  # type: ignore[attr-defined]
    return __init__


class _StoreForever:
    """The task state store, writing with ``NEVER_EXPIRE``: a record must outlive any retry delay."""

    def __init__(self, accessor: Any) -> None:
        self._acc = accessor

    def get(self, key: str, default: Any = None) -> Any:
        return self._acc.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._acc.set(key, value, retention=NEVER_EXPIRE)


class _WorkerLoop:
    """A private event loop for the client's coroutines on the (sync) worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(aw)

    def close(self) -> None:
        """End what is still running on the loop (a shared poller waiting out its interval), as
        ``asyncio.run`` would, close the sessions, then the loop."""
        try:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(close_sessions())
        finally:
            self.loop.close()


class DurableJobOperator(BaseOperator):  # type: ignore[misc]
    """Submit a job once, persist it, defer; on any retry reattach, return, or resubmit after a failure.

    :param conn_id: the system's Airflow connection.
    :param deferrable: wait in the triggerer; ``False`` waits on the worker under the same protocol. Default:
        True, unless ``[durable_jobs] default_deferrable`` or the environment variable
        ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE`` says otherwise (see :func:`default_deferrable`; the
        ``[operators]`` value in ``airflow.cfg`` is not read).
    :param poll_interval: seconds between status polls (default 30): a job's end reaches the task within
        about one interval. The tasks waiting on one endpoint with the same interval share one poll per
        interval, so a shorter one costs requests per endpoint, not per job.
    :param job_timeout: deadline of each job, anchored on the try that submitted it (default: the
        task's ``execution_timeout``, else one day). When it passes the job is cancelled and the task fails.
    :param rerun_on_clear: when a task whose job succeeded is cleared, submit a new job (default: return the
        recorded result without running anything).
    :param unknown_budget: seconds (default 1800) the trigger tolerates an unreachable endpoint before handing
        back to the worker, which re-checks and defers again (never fails, never resubmits).
    :param lost_confirmations: how many times in a row (default 3) the system must deny knowing the job before
        it is lost.
    :param on_lost: what a confirmed lost job (one the system no longer knows: evicted, removed by a TTL)
        does. ``"fail"`` (default, or ``[durable_jobs] on_lost``): the task fails without retry and the job
        is not rerun, because it may have succeeded; clearing the task runs it again. ``"resubmit"``: the
        next generation is submitted at once.

    A system operator sets :attr:`trigger_class` and implements :meth:`build_spec`. Its spec is checked
    when the operator is constructed (a bad DAG fails when it is parsed, not in a retry loop), unless a
    template field still holds Jinja or an XComArg; then it is checked once rendered, before anything is
    recorded or submitted.
    """

    #: the trigger that waits for the job; it names the hook, so the operator need not
    trigger_class: ClassVar[type[DurableJobTrigger]]
    #: the hook that builds the client on the worker: ``trigger_class.hook_class`` unless a class sets it
    hook_class: ClassVar[type[DurableJobHook]]
    #: how :meth:`build_spec` takes the record (computed per class: a ``build_spec(self, context)`` written
    #: for 0.1.0 keeps working)
    _record_passing: ClassVar[str] = "position"
    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        conn_id: str,
        deferrable: bool | None = None,
        poll_interval: float = 30.0,
        job_timeout: timedelta | float | None = None,
        rerun_on_clear: bool = False,
        unknown_budget: float = 1800.0,
        lost_confirmations: int = 3,
        on_lost: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if on_lost is not None and on_lost not in ON_LOST_CHOICES:
            raise ValueError(f"on_lost must be one of {', '.join(ON_LOST_CHOICES)}, not {on_lost!r}")
        self.on_lost = on_lost
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.poll_interval = float(poll_interval)
        self.job_timeout = job_timeout
        self.rerun_on_clear = rerun_on_clear
        self.unknown_budget = float(unknown_budget)
        self.lost_confirmations = int(lost_confirmations)
        self._watching: tuple[JobClient[Any], dict[str, Any]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "trigger_class" in cls.__dict__ and "hook_class" not in cls.__dict__:
            hook = getattr(cls.trigger_class, "hook_class", None)
            if hook is None:
                raise TypeError(
                    f"{cls.__qualname__}.trigger_class {cls.trigger_class.__qualname__} has no hook_class: set it "
                    "on the trigger (the operator takes its hook from there)"
                )
            cls.hook_class = hook
        cls._record_passing = _record_passing(cls.build_spec)
        if "__init__" in cls.__dict__ or not getattr(cls.__init__, "checks_spec", False):
            cls.__init__ = _checking_init(cls, cls.__init__)  # type: ignore[method-assign]

    # --- what a system operator provides ---------------------------------------------------------------

    @abstractmethod
    def build_spec(self, context: Any, record: JobRecord | None = None) -> Any:
        """The system's job spec, from this operator's fields; raise ``ValueError`` if they make no valid spec.

        It is called at two moments. When the operator is constructed, with ``context=None`` and ``record=None``,
        unless a template field still holds Jinja or an XComArg: a bad DAG fails when it is parsed. When the
        task runs, after Airflow rendered the fields, with the task's context and ``record``, the
        :class:`~durable_jobs.record.JobRecord` of the generation about to be submitted (or looked for after
        a crash): before anything is recorded or submitted. A ``build_spec(self, context)`` written for
        0.1.0 is still called with the context alone.
        """

    def get_client(self) -> JobClient[Any]:
        return self.hook_class.get_client(self.conn_id)

    # --- the spec ----------------------------------------------------------------------------------------

    def _build_spec(self, context: Any, record: JobRecord | None) -> Any:
        if self._record_passing == "position":
            return self.build_spec(context, record)
        if self._record_passing == "keyword":
            return self.build_spec(context, record=record)
        return self.build_spec(context)

    def _check_literal_spec(self) -> None:
        """The parse-time check, when every field the spec may read holds its final value."""
        ext = tuple(self.template_ext or ())
        for name in self.template_fields:
            if name != "conn_id" and is_templated(getattr(self, name, None), ext):
                return  # checked once rendered
        try:
            self._build_spec(None, None)
        except ValueError:
            raise
        except Exception:
            if self._record_passing != "no":
                raise
            # a build_spec written for 0.1.0 was never called without a context: it is checked when the task runs
            self.log.debug("%s: spec not checked at parse time", self.task_id, exc_info=True)

    # --- Airflow entry points --------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        return self._drive(context, lambda proto: proto.start(), new_try=True)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if not isinstance(event, dict):
            raise AirflowException(f"resumed from the triggerer without an event payload: {event!r}")
        return self._drive(context, lambda proto: proto.complete(event), new_try=False)

    def on_kill(self) -> None:
        """Worker-side kill (non-deferrable mode): cancel the job being watched."""
        watching = self._watching
        if watching is None:
            return
        client, job = watching

        async def cancel() -> None:
            try:
                await client.cancel(job)
            finally:
                await close_sessions()

        self.log.info("Task killed: cancelling %s", client.describe(job))
        t = threading.Thread(target=lambda: asyncio.run(cancel()), daemon=True)
        t.start()
        t.join(30)

    # --- the loop --------------------------------------------------------------------------------------

    def _drive(self, context: Any, step: Callable[[JobProtocol], Decision], *, new_try: bool) -> Any:
        loop = _WorkerLoop()
        try:
            # the client is built here, from the connection: a connection set up wrong fails without retry
            proto = self._guard(lambda: self._protocol(context, loop))
            decision = self._guard(lambda: step(proto))
            announced = not new_try  # a resumed try still has the XCom its deferral pushed
            while True:
                if isinstance(decision, Finished):
                    if not announced and decision.record.job is not None:
                        # a new try starts with no XCom: a job an earlier try saw end keeps its buttons
                        self._announce(context, proto, decision.record, loop)
                    return self.result(decision.record)
                self._announce(context, proto, decision.record, loop)
                announced = True
                trigger = self._trigger(decision.record)
                if self.deferrable:
                    warn_if_no_triggerer(self.log)  # a task deferred with no triggerer alive would wait silently
                    self.defer(
                        trigger=trigger,
                        method_name="execute_complete",
                        kwargs={"generation": decision.record.generation, "token": decision.record.token},
                        timeout=self._defer_timeout(decision.record),
                    )
                assert decision.record.job is not None
                self._watching = (proto.client, decision.record.job)
                try:
                    event = loop.run(trigger.wait(proto.client))
                finally:
                    self._watching = None
                decision = self._guard(lambda ev=event: proto.complete(ev))  # type: ignore[misc]
        finally:
            loop.close()

    def _protocol(self, context: Any, loop: _WorkerLoop) -> JobProtocol:
        accessor = context.get("task_state_store") if hasattr(context, "get") else None
        if accessor is None:
            raise AirflowFailException(
                "context['task_state_store'] is missing: durable_jobs needs Airflow 3.3+ and a task run by the "
                "task runner (it is where the job id is kept across tries)"
            )
        # Airflow retries a failed try while try_number <= ti.max_tries (retries, raised by each clear): a
        # failure message says whether a retry follows
        max_tries = getattr(context["ti"], "max_tries", None)
        return JobProtocol(
            client=self.get_client(),
            store=_StoreForever(accessor),
            identity=TaskIdentity.from_context(context),
            spec=lambda record: self._build_spec(context, record),
            run=loop.run,
            settings=ProtocolSettings(
                timeout=self._job_timeout_seconds(),
                rerun_on_clear=self.rerun_on_clear,
                lost_confirmations=self.lost_confirmations,
                on_lost=self.on_lost or default_on_lost(),
                max_tries=max_tries if type(max_tries) is int else None,
                deadline_pad=deadline_pad(self.poll_interval),
            ),
            logger=self.log,
            run_after=_run_after(context),
            conn_id=self.conn_id,
            hook=f"{self.hook_class.__module__}.{self.hook_class.__qualname__}",
        )

    def _guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except ConnectionConfigError as exc:
            text = str(exc)
            if f"connection {self.conn_id!r}" not in text:  # said by a client, which does not know the name
                text = f"connection {self.conn_id!r}: {text}"
            raise AirflowFailException(text) from exc
        except (RecordError, JobLost) as exc:
            raise AirflowFailException(str(exc)) from exc
        except DurableJobError as exc:
            raise AirflowException(str(exc)) from exc

    def trigger_kwargs(self, record: JobRecord) -> dict[str, Any]:
        """Extra arguments for :attr:`trigger_class`, on top of the ones every durable trigger takes.

        Override it when the trigger class takes arguments of its own (its
        :attr:`~durable_jobs.triggers.base.DurableJobTrigger.extra_kwargs`): they are passed to its
        constructor and serialized with the trigger. ``record`` is the job about to be waited for.
        Default: none.
        """
        return {}

    def _trigger(self, record: JobRecord) -> DurableJobTrigger:
        assert record.job is not None
        extra = self.trigger_kwargs(record)
        cls = self.trigger_class
        for name in extra:
            if name in BASE_KWARGS:
                raise TypeError(
                    f"{type(self).__qualname__}.trigger_kwargs() returned {name!r}, which the operator sets itself"
                )
            if name not in cls.extra_kwargs:
                raise TypeError(
                    f"{type(self).__qualname__}.trigger_kwargs() returned {name!r}, which "
                    f"{cls.__qualname__}.__init__ does not take (it takes: {', '.join(cls.extra_kwargs) or 'none'})"
                )
        trigger = cls(
            job=record.job,
            conn_id=self.conn_id,
            token=record.token,
            generation=record.generation,
            poll_interval=self.poll_interval,
            deadline=record.deadline,
            unknown_budget=self.unknown_budget,
            lost_confirmations=self.lost_confirmations,
            **extra,
        )
        if cls.extra_kwargs:
            trigger.serialize()  # a value the trigger table cannot hold fails here, on either path, not at defer
        return trigger

    def _job_timeout_seconds(self) -> float:
        value = self.job_timeout if self.job_timeout is not None else self.execution_timeout
        if value is None:
            value = DEFAULT_JOB_TIMEOUT
        return value.total_seconds() if isinstance(value, timedelta) else float(value)

    def _defer_timeout(self, record: JobRecord) -> timedelta | None:
        now = time.time()
        if record.deadline is None or record.deadline <= now:
            # past the deadline the trigger cancels the job and fires once it ended, however long the system
            # takes to answer: Airflow's own timeout would fail the task with the job still running
            return None
        # padded past the deadline: our trigger's timeout event (which cancels the job) must come first
        return timedelta(seconds=record.deadline - now + deadline_pad(self.poll_interval))

    def _announce(self, context: Any, proto: JobProtocol, record: JobRecord, loop: _WorkerLoop) -> None:
        """Push the job and its links to XCom, so users can find it at once (before waiting, or on its result)."""
        job = record.job
        assert job is not None
        ti = context["ti"]
        links: dict[str, str] = {}
        try:
            links = loop.run(proto.client.links(job))
        except Exception:
            self.log.warning("Could not compute links for %s", job, exc_info=True)
        for key, value in {**job, **links}.items():
            ti.xcom_push(key=key, value=value)
        for key, value in links.items():
            self.log.info("%s: %s", key, value)

    def result(self, record: JobRecord) -> dict[str, Any]:
        """The task's return value: the same whether the job ran in this try or an earlier one."""
        return {
            "system": record.system,
            "job": record.job,
            "generation": record.generation,
            "token": record.token,
            "outcome": record.outcome.value if record.outcome else None,
        }
