"""YARN: the contract fake ResourceManager behind SPNEGO against a real MIT KDC, each its own process.

:class:`~durable_jobs_harness.yarn_process.KerberizedYarn` starts ``krb5kdc`` (a realm in ``root``) and
``python -m durable_jobs_harness.fake_yarn serve`` (the RM's ``HTTP/localhost`` keytab as ``KRB5_KTNAME``, a
timed lifecycle: an application whose AM command is ``sleep N; exit C`` is ACCEPTED for a few seconds, as
while its AM container launches, RUNNING for N seconds, then FINISHED/SUCCEEDED or FAILED). Every Airflow
component logs in as ``airflow@EXAMPLE.TEST`` from a keytab the connection names (a path; no secret in the
environment or in trigger kwargs) and gets the realm's ``KRB5_CONFIG``.

Submissions are counted from the RM's own state, read from its unauthenticated admin listener (the RM's
``/ws/v1/cluster/apps`` JSON, never through our client): each application carries its token as a YARN tag.
Pausing the endpoint SIGSTOPs the RM process (the KDC keeps running).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from durable_jobs_harness.yarn_process import KerberizedYarn

from . import E2ESystem, Job, tokens_of

TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
# how long an application stays ACCEPTED: a real RM launches the AM container first (seconds); it also keeps a
# job from ending before the worker that deferred it has exited (apache/airflow#72716, see docs/e2e.md)
ACCEPT_SECONDS = 5.0


class YarnSystem(E2ESystem):
    name = "yarn"
    conn_id = "yarn_e2e"
    job_noun = "YARN application"
    failure_detail = "ResourceManager page: http"
    after_crash: ClassVar[dict[str, str]] = {
        "crash_before_intent": "No job recorded for",
        # the intent is written before new-application: no id recorded, the tag finds nothing
        "crash_after_intent": "No job carries token",
        # the id was recorded before the submission: the GET of that id adopts the application
        "crash_after_submit": "Adopted YARN application application_",
        "crash_after_persist": "Found YARN application application_",
        "crash_before_outcome": "Found YARN application application_",
    }

    def __init__(self) -> None:
        self.endpoint: KerberizedYarn | None = None

    def start(self, root: Path) -> None:
        self.endpoint = KerberizedYarn(root / "yarn", accept_seconds=ACCEPT_SECONDS).start()

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()

    def _endpoint(self) -> KerberizedYarn:
        if self.endpoint is None:
            raise RuntimeError("the YARN endpoint is not started")
        return self.endpoint

    def airflow_env(self) -> dict[str, str]:
        endpoint = self._endpoint()
        conn = endpoint.connection(timeout=3)  # a paused RM shows up as failed polls within seconds
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(conn), **endpoint.client_env()}

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        tokens = tokens_of(dag_id, run_id, task_keys)
        out: list[Job] = []
        for app in self._endpoint().rm.apps():
            ours = [tokens[t] for t in str(app.get("applicationTags") or "").split(",") if t in tokens]
            if not ours:
                continue
            task_id, map_index, gen = ours[0]
            state, final = str(app["state"]), str(app.get("finalStatus"))
            cancelled = state == "KILLED" or final == "KILLED"
            out.append(Job(str(app["id"]), state, task_id, map_index, gen, state not in TERMINAL, cancelled))
        return sorted(out, key=lambda j: j.id)

    def pause(self) -> None:
        self._endpoint().rm.pause()

    def resume(self) -> None:
        self._endpoint().rm.resume()

    def logs_tail(self, lines: int = 30) -> str:
        return self.endpoint.logs_tail(lines) if self.endpoint is not None else ""


SYSTEM = YarnSystem
