"""An in-memory task state store behind Airflow's real ``TaskStateStoreAccessor``.

Only the supervisor channel is faked (the technique Airflow's provider tests use), so the accessor's
own code, its value rules and its scoping run for real, without a metadata database. One dict per
``(dag_id, run_id, task_id, map_index)``; a retry is the same dict with a new ``ti_id``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from durable_jobs.airflow_compat import SUPERVISOR_COMMS_TARGET, supervisor_messages, task_state_store_accessor


@dataclass
class InMemoryStateStore:
    rows: dict[tuple[str, str, str, int], dict[str, Any]] = field(default_factory=dict)
    scope_of: dict[uuid.UUID, tuple[str, str, str, int]] = field(default_factory=dict)
    writes: list[tuple[str, Any]] = field(default_factory=list)
    fail_next_get: bool = False

    def accessor(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        """A real accessor for a new try of this task instance."""
        ti_id = uuid.uuid4()
        scope = (dag_id, run_id, task_id, map_index)
        self.scope_of[ti_id] = scope
        self.rows.setdefault(scope, {})
        return task_state_store_accessor(ti_id, dag_id, run_id, task_id, map_index)

    def send(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import ErrorType

        comms = supervisor_messages()
        name = type(msg).__name__
        if name in ("GetTaskStateStore", "SetTaskStateStore", "DeleteTaskStateStore", "ClearTaskStateStore"):
            row = self.rows[self.scope_of[msg.ti_id]]
        if name == "GetTaskStateStore":
            if self.fail_next_get:
                self.fail_next_get = False
                return comms.ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": 500})
            if msg.key in row:
                return comms.TaskStateStoreResult(value=json.loads(json.dumps(row[msg.key])))
            return comms.ErrorResponse(error=ErrorType.TASK_STORE_NOT_FOUND, detail={"key": msg.key})
        if name == "SetTaskStateStore":
            row[msg.key] = json.loads(json.dumps(msg.value))  # JSON round trip, like the real store
            self.writes.append((msg.key, row[msg.key]))
            return comms.OKResponse(ok=True)
        if name == "DeleteTaskStateStore":
            row.pop(msg.key, None)
            return comms.OKResponse(ok=True)
        if name == "ClearTaskStateStore":
            row.clear()
            return comms.OKResponse(ok=True)
        raise NotImplementedError(f"in-memory supervisor does not handle {name}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[InMemoryStateStore]:
        """Patch the task runner's supervisor channel so accessors talk to this store."""
        comms_mock = mock.Mock(spec=["send"])
        comms_mock.send.side_effect = self.send
        with mock.patch(SUPERVISOR_COMMS_TARGET, comms_mock, create=True):
            yield self
