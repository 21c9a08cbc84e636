"""The run model of the Databricks Jobs API 2.2 contract fake: runs, jobs, scripted life cycles.

Kept apart from the HTTP server (:mod:`durable_jobs_harness.fake_databricks`) so that each stays small. Nothing
here runs in the background: a run's state is computed from ``time.monotonic()`` whenever it is read, from a
:class:`Timeline` fixed at submission (and moved by a cancel, a timeout or :meth:`FakeRun.finish`).

A run's life cycle is scripted by the first string, depth-first over the request body, matching
``durable-fake:<seconds>s:<RESULT>`` (default: 3 s then SUCCESS): PENDING for the first 0.5 s, RUNNING, then
TERMINATING for the last 0.2 s, then TERMINATED with the result; ``INTERNAL_ERROR`` ends in life-cycle state
INTERNAL_ERROR with result FAILED, ``SKIPPED`` in life-cycle state SKIPPED without a result, both straight from
PENDING. Every duration (``timeout_seconds`` too) is multiplied by the fake's ``time_scale``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCRIPT_RE = re.compile(r"^durable-fake:(\d+(?:\.\d+)?)s:(SUCCESS|FAILED|TIMEDOUT|CANCELED|INTERNAL_ERROR|SKIPPED)$")
DEFAULT_SCRIPT = (3.0, "SUCCESS")
PENDING_SECONDS = 0.5
TERMINATING_SECONDS = 0.2
ACTIVE_STATES = ("QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY")
USER = "fake-user@example.com"

# (life-cycle state, result state, termination code, termination type, run state message) of each scripted end
_ENDS: dict[str, tuple[str, str | None, str, str, str]] = {
    "SUCCESS": ("TERMINATED", "SUCCESS", "SUCCESS", "SUCCESS", ""),
    "FAILED": ("TERMINATED", "FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR", ""),  # message: the failing task's
    "TIMEDOUT": ("TERMINATED", "TIMEDOUT", "CANCELED", "CLIENT_ERROR", "Run timed out."),
    "CANCELED": ("TERMINATED", "CANCELED", "USER_CANCELED", "SUCCESS", "Run cancelled."),
    "INTERNAL_ERROR": (
        "INTERNAL_ERROR",
        "FAILED",
        "INTERNAL_ERROR",
        "INTERNAL_ERROR",
        "An internal error occurred while running the run (injected by durable-fake).",
    ),
    "SKIPPED": (
        "SKIPPED",
        None,
        "SKIPPED",
        "SUCCESS",
        "Run skipped: the maximum number of concurrent runs was reached.",
    ),
}
TASK_FAILURE = "Workload failed, see run output for details"
RESULTS = tuple(_ENDS)


def find_script(value: Any) -> tuple[float, str] | None:
    """The first ``durable-fake:<s>s:<RESULT>`` string, depth-first (mappings in order, then lists)."""
    if isinstance(value, str):
        match = SCRIPT_RE.match(value)
        return (float(match[1]), match[2]) if match else None
    children = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else ()
    for child in children:
        found = find_script(child)
        if found is not None:
            return found
    return None


# --- runs -----------------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """When a run leaves PENDING, starts TERMINATING and ends (monotonic seconds), and how it ends."""

    start: float
    running_at: float
    terminating_at: float
    ends: float
    result: str
    user_cancelled_or_timedout: bool = False

    @classmethod
    def scripted(cls, start: float, seconds: float, result: str, scale: float, timeout: int | None) -> Timeline:
        total = seconds * scale
        pending = min(PENDING_SECONDS * scale, total / 4)
        terminating = min(TERMINATING_SECONDS * scale, total / 10)
        if timeout and timeout * scale < total:  # the run's own timeout_seconds cuts it short
            at = start + timeout * scale
            return cls(start, min(start + pending, at), at, at + TERMINATING_SECONDS * scale, "TIMEDOUT", True)
        if result in ("INTERNAL_ERROR", "SKIPPED"):  # never ran: PENDING until the end
            return cls(start, start + total, start + total, start + total, result)
        ends = start + total
        return cls(start, start + pending, ends - terminating, ends, result, result in ("TIMEDOUT", "CANCELED"))

    def stop(self, now: float, result: str, terminating: float) -> None:
        """End the run from ``now`` on: TERMINATING for ``terminating`` seconds, then ``result``."""
        self.running_at = min(self.running_at, now)
        self.terminating_at = now
        self.ends = now + terminating
        self.result = result
        self.user_cancelled_or_timedout = result in ("CANCELED", "TIMEDOUT")

    def phase(self, now: float) -> str:
        if now >= self.ends:
            return _ENDS[self.result][0]
        if now < self.running_at:
            return "PENDING"
        return "RUNNING" if now < self.terminating_at else "TERMINATING"


@dataclass
class FakeTask:
    task_key: str
    run_id: int
    depends_on: list[str]
    settings: dict[str, Any]


@dataclass
class FakeJob:
    job_id: int
    name: str
    tasks: list[dict[str, Any]]
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "creator_user_name": USER,
            "created_time": int(self.created * 1000),
            "settings": {"name": self.name, "format": "MULTI_TASK", "max_concurrent_runs": 1},
        }


@dataclass
class FakeRun:
    """One run: what it was asked to do, its timeline, and its bookkeeping (deleted, forgotten)."""

    run_id: int
    token: str | None
    run_type: str  # JOB_RUN (run-now) or SUBMIT_RUN
    job_id: int | None
    run_name: str
    body: dict[str, Any]
    tasks: list[FakeTask]
    timeline: Timeline
    failing_task: str
    created: float = field(default_factory=time.time)  # epoch seconds
    deleted: bool = False
    forgotten: bool = False

    @property
    def life_cycle_state(self) -> str:
        return self.timeline.phase(time.monotonic())

    @property
    def result_state(self) -> str | None:
        return self.result_at(time.monotonic())

    def result_at(self, now: float) -> str | None:
        return _ENDS[self.timeline.result][1] if now >= self.timeline.ends else None

    def active(self, now: float) -> bool:
        return self.timeline.phase(now) in ACTIVE_STATES

    def visible(self) -> bool:
        return not (self.deleted or self.forgotten)

    def epoch_ms(self, mono: float) -> int:
        return int((self.created + (mono - self.timeline.start)) * 1000)

    def page_url(self, base: str, run_id: int | None = None) -> str:
        rid = self.run_id if run_id is None else run_id
        return f"{base}/?o=0#job/{self.job_id}/run/{rid}" if self.job_id is not None else f"{base}/?o=0#run/{rid}"

    def _downstream_of_failure(self) -> set[str]:
        hit, grew = {self.failing_task}, True
        while grew:
            grew = False
            for task in self.tasks:
                if task.task_key not in hit and hit & set(task.depends_on):
                    hit.add(task.task_key)
                    grew = True
        return hit - {self.failing_task}

    def _state(self, now: float, task: FakeTask | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(``state``, ``status``) of the run (``task`` None) or of one of its tasks."""
        tl, phase = self.timeline, self.timeline.phase(now)
        if phase in ACTIVE_STATES:
            message = {"PENDING": "Waiting for cluster", "RUNNING": "In run"}.get(phase, "")
            active = {"life_cycle_state": phase, "state_message": message, "user_cancelled_or_timedout": False}
            return active, {"state": phase}
        life, result, code, kind, message = _ENDS[tl.result]
        if tl.result == "FAILED":  # the failing task carries the error, its downstream tasks are skipped
            if task is None:
                message = (
                    f"Task {self.failing_task} failed with message: {TASK_FAILURE}. "
                    "This caused all downstream tasks to get skipped."
                )
            elif task.task_key == self.failing_task:
                message = TASK_FAILURE
            elif task.task_key in self._downstream_of_failure():
                life, result, code, kind, message = (
                    "SKIPPED",
                    "UPSTREAM_FAILED",
                    "SKIPPED",
                    "SUCCESS",
                    "Upstream failed",
                )
            else:
                life, result, code, kind, message = _ENDS["SUCCESS"]
        state: dict[str, Any] = {
            "life_cycle_state": life,
            "state_message": message,
            "user_cancelled_or_timedout": tl.user_cancelled_or_timedout,
        }
        if result is not None:
            state["result_state"] = result
        details = {"code": code, "type": kind, "message": message}
        return state, {"state": "TERMINATED", "termination_details": details}

    def _times(self, now: float) -> dict[str, int]:
        end = self.epoch_ms(self.timeline.ends) if now >= self.timeline.ends else 0
        start = self.epoch_ms(self.timeline.start)
        return {"start_time": start, "end_time": end, "run_duration": (end or self.epoch_ms(now)) - start}

    def to_json(self, base_url: str, now: float, *, expand_tasks: bool = True) -> dict[str, Any]:
        state, status = self._state(now, None)
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "original_attempt_run_id": self.run_id,
            "attempt_number": 0,
            "creator_user_name": USER,
            "run_name": self.run_name,
            "run_type": self.run_type,
            "format": "MULTI_TASK",
            "state": state,
            "status": status,
            **self._times(now),
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "run_page_url": self.page_url(base_url),
        }
        if self.job_id is not None:
            out["job_id"] = self.job_id
            out["number_in_job"] = self.run_id
        if expand_tasks:
            out["tasks"] = [self._task_json(task, base_url, now) for task in self.tasks]
        return out

    def _task_json(self, task: FakeTask, base_url: str, now: float) -> dict[str, Any]:
        state, status = self._state(now, task)
        out = {
            "run_id": task.run_id,
            "task_key": task.task_key,
            "state": state,
            "status": status,
            **self._times(now),
            "attempt_number": 0,
            "run_page_url": self.page_url(base_url, task.run_id),
        }
        if task.depends_on:
            out["depends_on"] = [{"task_key": k} for k in task.depends_on]
        return out

    def summary(self, base_url: str) -> dict[str, Any]:
        """What the admin listener shows: the bookkeeping and the run as runs/get would answer it."""
        now = time.monotonic()
        return {
            "run_id": self.run_id,
            "token": self.token,
            "run_type": self.run_type,
            "job_id": self.job_id,
            "run_name": self.run_name,
            "deleted": self.deleted,
            "forgotten": self.forgotten,
            "created": self.created,
            "life_cycle_state": self.timeline.phase(now),
            "result_state": self.result_at(now),
            "run": self.to_json(base_url, now),
        }


def make_tasks(settings: list[dict[str, Any]], next_id: Any) -> list[FakeTask]:
    return [
        FakeTask(
            task_key=str(t["task_key"]),
            run_id=int(next_id()),
            depends_on=[str(d["task_key"]) for d in t.get("depends_on", [])],
            settings=t,
        )
        for t in settings
    ]


def failing_task(tasks: list[FakeTask]) -> str:
    """The task a FAILED script fails: the first one that carries a script, else the last one."""
    for task in tasks:
        if find_script(task.settings) is not None:
            return task.task_key
    return tasks[-1].task_key
