"""The generic trigger: wait for one recorded job and yield exactly one event.

A subclass only says which hook builds its client. ``run()`` is stateless and safe to restart at any
time (a triggerer restart re-runs it from the start; in HA two triggerers may briefly run it at once):
it only *observes* the job, through the shared poller of :mod:`durable_jobs.polling`. Its kwargs hold
the locator, a ``conn_id``, the poll settings, the token and an **absolute** deadline, never a secret.

Event payload: ``{"status", "job", "token", "generation", "message", "details": {"last": status}}``
where status is a terminal state, ``timeout``, ``unknown`` (the endpoint stayed unreachable past the
budget; the operator re-checks and defers again) or ``error`` (the endpoint refused us).

``on_kill`` runs only on a user action (clear, mark failed, mark success). It cancels the job only when
the task instance has really finished: after a *clear*, Airflow may run it after the new try has
already re-attached to the same job, and that job must live.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import structlog
from airflow.triggers.base import BaseTrigger, TriggerEvent

from durable_jobs.clients.base import JobClient, KeyedLocator
from durable_jobs.errors import RecordError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.messages import cut
from durable_jobs.polling import PollSettings, log_info, wait_for_outcome
from durable_jobs.status import JobStatus

# TI states after which no try of this task will look at the job again
FINISHED_TI_STATES = frozenset({"failed", "success", "skipped", "upstream_failed", "removed"})
_CLASS_LOGGERS: dict[type[Any], Any] = {}


@functools.lru_cache(maxsize=256)
def _settings(interval: float, unknown_budget: float, lost_confirmations: int) -> PollSettings:
    """Poll settings are immutable: triggers with the same ones share one object."""
    return PollSettings(interval=interval, unknown_budget=unknown_budget, lost_confirmations=lost_confirmations)


class DurableJobTrigger(BaseTrigger):  # type: ignore[misc]
    """Base trigger; subclasses set :attr:`hook_class`."""

    hook_class: ClassVar[type[DurableJobHook]]

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
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job": dict(self.job),
                "conn_id": self.conn_id,
                "token": self.token,
                "generation": self.generation,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "unknown_budget": self.unknown_budget,
                "lost_confirmations": self.lost_confirmations,
            },
        )

    @property
    def settings(self) -> PollSettings:
        return _settings(self.poll_interval, self.unknown_budget, self.lost_confirmations)

    @property
    def log(self) -> Any:
        """The class's logger, made once per class instead of once per instance (a triggerer holds thousands).

        Which task a line belongs to comes from the triggerer's log context, not from the logger object, so
        the lines are the same. A logger set on the instance, or a custom logger name, is used as before.
        """
        if self._log is not None or self._logger_name is not None or self._log_config_logger_name is not None:
            return super().log
        cls = type(self)
        shared = _CLASS_LOGGERS.get(cls)
        if shared is None:
            shared = _CLASS_LOGGERS[cls] = structlog.get_logger(f"{cls.__module__}.{cls.__name__}")
        return shared

    async def get_client(self) -> JobClient[Any]:
        return await self.hook_class.aget_client(self.conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await self.get_client()
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
        client = await self.get_client()
        try:
            job = self._checked_job(client)
        except RecordError as exc:
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
            from airflow.sdk.execution_time import task_runner
            from airflow.sdk.execution_time.comms import GetTaskStates

            comms = task_runner.SUPERVISOR_COMMS
            map_index = getattr(ti, "map_index", -1)
            map_index = -1 if map_index is None else int(map_index)
            resp = await comms.asend(
                GetTaskStates(
                    dag_id=ti.dag_id,
                    run_ids=[ti.run_id],
                    task_ids=[ti.task_id],
                    map_index=None if map_index < 0 else map_index,
                )
            )
            states = (getattr(resp, "task_states", None) or {}).get(ti.run_id, {})
            key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
            value = states.get(key)
        except Exception:
            logging.getLogger(__name__).warning("reading the task instance state failed", exc_info=True)
            return None
        return "none" if value is None else str(getattr(value, "value", value))
