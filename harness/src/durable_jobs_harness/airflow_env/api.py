"""A small client of the Airflow api-server's public REST API (``/api/v2``), with a JWT from ``/auth/token``
(simple auth manager, generated admin password): trigger runs, read task instances, clear, mark failed, read the
task state store. The standard library's urllib; 5xx answers to idempotent requests are retried (tenacity).
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_incrementing

from durable_jobs_harness.airflow_env.processes import AirflowEnvError, wait_until

__all__ = ["FINISHED_RUN_STATES", "FINISHED_TI_STATES", "AirflowApi"]

FINISHED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
FINISHED_RUN_STATES = frozenset({"success", "failed"})
_HTTP_TIMEOUT = 30.0


class AirflowApi:
    """A small client of the api-server's public REST API (``/api/v2``), JWT from ``/auth/token``."""

    def __init__(self, base_url: str, username: str, password: Callable[[], str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._token: str | None = None

    # --- plumbing --------------------------------------------------------------------------------------

    def _raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - local URL
        try:
            with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT) as resp:  # noqa: S310 - local URL
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:
            raise AirflowEnvError(f"{method} {path}: {exc}") from exc
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return status, payload

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send a request; 5xx answers (e.g. SQLite busy) are retried for idempotent requests."""
        retry = method == "GET" if idempotent is None else idempotent

        def once() -> tuple[int, Any]:
            status, payload = self._raw(method, path, body=body, params=params)
            if status == 401:  # token expired or the api-server restarted with another secret
                self._token = None
                status, payload = self._raw(method, path, body=body, params=params)
            return status, payload

        status, payload = Retrying(
            stop=stop_after_attempt(4 if retry else 1),
            wait=wait_incrementing(start=1.0, increment=1.0),  # 1 s, 2 s, 3 s
            retry=retry_if_result(_server_error),
            retry_error_callback=_last_answer,
        )(once)
        if status >= 300:
            raise AirflowEnvError(f"{method} {path} answered {status}: {payload}")
        return payload

    def token(self) -> str:
        if self._token is None:
            status, payload = self._raw(
                "POST",
                "/auth/token",
                body={"username": self.username, "password": self._password()},
                auth=False,
            )
            if status != 201 or not isinstance(payload, dict) or "access_token" not in payload:
                raise AirflowEnvError(f"POST /auth/token answered {status}")  # never echo the body: no secrets
            self._token = str(payload["access_token"])
        return self._token

    # --- health and DAGs -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        status, payload = self._raw("GET", "/api/v2/monitor/health", auth=False)
        if status != 200 or not isinstance(payload, dict):
            raise AirflowEnvError(f"health answered {status}")
        return payload

    def healthy(self, components: Sequence[str] = ("metadatabase", "scheduler", "triggerer", "dag_processor")) -> bool:
        health = self.health()
        return all((health.get(c) or {}).get("status") == "healthy" for c in components)

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        status, payload = self._raw("GET", f"/api/v2/dags/{_q(dag_id)}")
        if status == 404:
            return None
        if status != 200:
            raise AirflowEnvError(f"GET dag {dag_id} answered {status}: {payload}")
        return cast(dict[str, Any], payload)

    def import_errors(self) -> list[dict[str, Any]]:
        payload = self.call("GET", "/api/v2/importErrors")
        return list(payload.get("import_errors", ()))

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{_q(dag_id)}", body={"is_paused": False})

    def jobs(self, job_type: str, *, state: str | None = "running") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"job_type": job_type, "limit": 100}
        if state:
            params["job_state"] = state
        return list(self.call("GET", "/api/v2/jobs", params=params).get("jobs", ()))

    # --- runs and task instances -----------------------------------------------------------------------

    def trigger(self, dag_id: str, *, run_id: str | None = None, conf: Mapping[str, Any] | None = None) -> str:
        """Start a DAG run; return its run id. Retried safely: the run id is chosen here, a repeat answers 409."""
        run_id = run_id or f"manual__{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}_{secrets.token_hex(3)}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns"
        try:
            self.call("POST", path, body=body, idempotent=True)
        except AirflowEnvError:
            if self.dag_run(dag_id, run_id).get("dag_run_id") != run_id:  # a retry after a lost answer: 409
                raise
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def dag_runs(self, *, states: Sequence[str] = ()) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        if states:
            params["state"] = list(states)
        payload = self.call("GET", "/api/v2/dags/~/dagRuns", params=params)
        return list(payload.get("dag_runs", ()))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        payload = self.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances")
        return list(payload.get("task_instances", ()))

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return cast(dict[str, Any], self.call("GET", path))

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        return list(self.call("GET", path).get("task_instances", ()))

    def set_state(self, dag_id: str, run_id: str, task_id: str, state: str, map_index: int = -1) -> Any:
        """Mark a task instance ``failed``/``success``/... (what the UI's "Mark as" does)."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return self.call("PATCH", path, body={"new_state": state}, idempotent=True)

    def clear(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> Any:
        """Clear task instances (the UI's "Clear"); their running tries are interrupted."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": list(task_ids),
            "only_failed": False,
            "reset_dag_runs": True,
        }
        return self.call("POST", f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances", body=body)

    def state_store(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The task state store of one task instance (every key), through the public API."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/state-store"
        payload = self.call("GET", path, params={"map_index": map_index})
        return {str(e["key"]): e.get("value") for e in payload.get("task_state_store", ())}

    def wait_run_finished(self, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run.get("state") in FINISHED_RUN_STATES else None

        return cast(dict[str, Any], wait_until(f"dag run {dag_id}/{run_id} to finish", finished, timeout=timeout))

    def wait_ti_state(
        self, dag_id: str, run_id: str, task_id: str, states: Sequence[str], *, timeout: float, map_index: int = -1
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            ti = self.task_instance(dag_id, run_id, task_id, map_index)
            return ti if ti.get("state") in states else None

        return cast(
            dict[str, Any],
            wait_until(f"{dag_id}/{run_id}/{task_id} to be {'/'.join(states)}", reached, timeout=timeout),
        )


def _server_error(answer: tuple[int, Any]) -> bool:
    return answer[0] >= 500


def _last_answer(state: RetryCallState) -> tuple[int, Any]:
    """When the retries are spent: the last answer, which :meth:`AirflowApi.call` then raises as an error."""
    assert state.outcome is not None
    return cast(tuple[int, Any], state.outcome.result())


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")
