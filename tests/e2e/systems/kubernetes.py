"""Kubernetes: the TLS contract fake apiserver in its own process, running batch/v1 Jobs at real speed.

The fake (``python -m durable_jobs_harness.fake_kube serve DIR --time-scale 1``) writes a kubeconfig (its CA,
a bearer token) that the connection names; its kubelet runs each Job's ``sh -c "sleep N; exit C"``.
Submissions are counted from the apiserver's own REST API: the Jobs that exist, and the Jobs its Job
controller wrote a ``SuccessfulCreate`` Event about (Events outlive a deleted Job, so a Job cancelled by a
delete still counts, as ``Deleted``). A Job's name ends with its token. Pausing SIGSTOPs the fake's process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import yaml

from durable_jobs_harness.logs import tail

from . import E2ESystem, Job, tokens_of

NAMESPACE = "durable"
NAME_TOKEN_RE = re.compile(r"(dj[0-9a-f]{20})$")
# what a Job that no longer exists ended as, from its controller's Events
ENDED_BY_EVENT = {"Completed": "Complete", "BackoffLimitExceeded": "Failed", "DeadlineExceeded": "Failed"}


class KubernetesSystem(E2ESystem):
    name = "kubernetes"
    conn_id = "kubernetes_e2e"
    job_noun = "Job"
    extra_scenarios = ("overload",)
    after_crash: ClassVar[dict[str, str]] = {
        "crash_before_intent": "No job recorded for",
        "crash_after_intent": "No job carries token",
        "crash_after_submit": f"Adopted Job {NAMESPACE}/",
        "crash_after_persist": f"Found Job {NAMESPACE}/",
        "crash_before_outcome": f"Found Job {NAMESPACE}/",
    }

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path()
        self.url = ""
        self.kubeconfig = Path()
        self._token = ""
        self._ssl: ssl.SSLContext | None = None
        self._log: IO[bytes] | None = None
        self._paused = False

    @property
    def log_file(self) -> Path:
        return self.dir / "fake-kube.log"

    def start(self, root: Path) -> None:
        self.dir = root / "kubernetes"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "wb")  # noqa: SIM115 - closed in stop()
        args = [sys.executable, "-m", "durable_jobs_harness.fake_kube", "serve", str(self.dir), "--time-scale", "1"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the fake prints {"url", "kubeconfig"} once it listens
        if not line:
            code = self.proc.wait(30)
            raise RuntimeError(f"the fake apiserver exited with code {code}\n{tail(self.log_file, 40)}")
        started = json.loads(line)
        self.url, self.kubeconfig = str(started["url"]), Path(started["kubeconfig"])
        config = yaml.safe_load(self.kubeconfig.read_text("utf-8"))
        self._token = str(config["users"][0]["user"]["token"])
        self._ssl = ssl.create_default_context(cafile=str(self.dir / "tls" / "ca.crt"))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if self._paused:
                os.kill(proc.pid, signal.SIGCONT)
                self._paused = False
            if proc.stdin is not None:
                proc.stdin.close()  # the fake stops when its stdin closes
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def airflow_env(self) -> dict[str, str]:
        conn = {
            "conn_type": "kubernetes_durable",
            # a short request timeout: a paused apiserver shows up as failed calls within seconds
            "extra": {"kube_config_path": str(self.kubeconfig), "namespace": NAMESPACE, "timeout": 5},
        }
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(conn)}

    def _get(self, path: str, **query: str) -> dict[str, Any]:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(request, timeout=15, context=self._ssl) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        return body

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        tokens = tokens_of(dag_id, run_id, task_keys)
        live = {
            str(j["metadata"]["uid"]): j
            for j in self._get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs").get("items") or ()
        }
        events = self._get(f"/api/v1/namespaces/{NAMESPACE}/events", fieldSelector="involvedObject.kind=Job")
        created: dict[str, str] = {}  # uid -> name, of every Job the controller started (also deleted ones)
        ended: dict[str, str] = {}  # uid -> end state by event
        for e in events.get("items") or ():
            obj = e.get("involvedObject") or {}
            uid, reason = str(obj.get("uid")), str(e.get("reason"))
            if reason == "SuccessfulCreate":
                created[uid] = str(obj.get("name"))
            elif reason in ENDED_BY_EVENT:
                ended[uid] = ENDED_BY_EVENT[reason]
        for uid, job in live.items():
            created.setdefault(uid, str(job["metadata"]["name"]))
        out: list[Job] = []
        for uid, name in created.items():
            match = NAME_TOKEN_RE.search(name)
            if not match or match[1] not in tokens:
                continue
            task_id, map_index, gen = tokens[match[1]]
            if uid in live:
                state = _job_state(live[uid])
                active, cancelled = state == "Active", False
            else:  # deleted: by a cancel unless its controller saw it end first
                state = ended.get(uid, "Deleted")
                active, cancelled = False, state == "Deleted"
            out.append(Job(name, state, task_id, map_index, gen, active, cancelled))
        return sorted(out, key=lambda j: (j.task_id, j.map_index, j.generation, j.id))

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("the fake apiserver is not running")
        os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self._paused = False

    def logs_tail(self, lines: int = 30) -> str:
        return f"--- fake apiserver ({self.log_file}) ---\n{tail(self.log_file, lines)}" if self.dir.name else ""


def _job_state(job: dict[str, Any]) -> str:
    """``Complete``/``Failed`` from a Job's true conditions, else ``Active``."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
    return "Active"


SYSTEM = KubernetesSystem
