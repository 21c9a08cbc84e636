"""The endpoints benchmarks/triggerer_scale.py polls, in a process of their own so that their CPU and memory
are not the trigger process's.

One process serves every system, each on its own 127.0.0.1 port, and a control app:

* **spark**: the project's fake Spark master (``durable_jobs_harness.fake_spark.FakeSparkMaster``: REST status and
  ``/json/``), its ``/json/`` shaped like a real master's;
* **livy**: a fake Livy with the two calls ``LivyTrigger`` makes (``GET /batches/{id}/state`` every poll and
  ``GET /batches/{id}/log`` once at the end);
* **kube**: the project's contract fake kube-apiserver (TLS, bearer token, list+watch), with pods whose phase
  the script sets, so both a polling trigger and a watching one see the same pods;
* **emr**: ``DescribeStep`` and ``ListSteps`` in the AWS JSON 1.1 protocol, what the amazon provider's step
  waiter and our batched step poller call (moto serves the same calls, but an O(steps) ``DescribeStep`` at
  10,000 steps would measure moto, not the triggers), the steps spread over clusters of ``steps_per_cluster``
  (set-up; default 250, as AWS allows 256 active steps per cluster; 1 is a cluster per job);
* **glue**: on the same AWS JSON endpoint (routed by ``X-Amz-Target``, counted apart), ``GetJobRun`` (what the
  amazon provider's waiter asks per run and poll) and ``GetJobRuns`` of a job newest first in pages of at most
  200 (what our batched poller walks once per job name and poll), the runs spread over job names of
  ``runs_per_job`` (set-up; default 100; 1 is a job per run, as ``MaxConcurrentRuns`` = 1 has it);
* **databricks**: the Jobs API 2.2 reads that wait for runs, bearer PAT required: ``runs/get`` (what the
  databricks provider's trigger asks per run and poll) and ``runs/list?active_only=true`` in pages of at most 24
  runs with ``page_token`` (what our batched poller walks once per poll);
* **bigquery**: ``jobs.get`` (what the google provider's trigger asks per job and poll) and ``jobs.list`` of the
  pending and running jobs in pages of at most 1,000 (what our batched poller walks once per poll), behind the
  project's contract fake's token endpoint: a bearer token it issued for a service-account key's assertion;

Kubernetes pods are realistic in size (``pod_min_bytes``..``pod_max_bytes`` of JSON each, default 5-20 KB: the
managed fields, env and last-applied configuration real pods carry), and the namespace also holds
``unwatched`` pods the library does not manage (no ``durable-jobs.io/managed`` label), as a shared namespace
does. The Spark master's ``/json/`` is rendered once per change of its drivers (100,000 drivers are 26 MB).

Every job runs from set-up until its scripted end, ``t0 + end_offsets(...)[i]`` (most never end during a run);
``t0`` is fixed when the measured process calls ``POST /_start``, after its start-up and steady windows.
Every request is counted per system with its time, kind and client socket: ``POST /_reset`` starts the count,
``POST /_windows`` answers it per window of time. The process stops when its stdin closes.

    python benchmarks/bench_servers.py DIR      # prints {"control": URL, "spark": URL, ...} on one line
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from bench_probe import end_offsets

from durable_jobs.clients.bigquery.auth import GOOGLE_TOKEN_URI
from durable_jobs_harness.fake_bigquery import ApiError, FakeBigQuery
from durable_jobs_harness.fake_bigquery import error as bigquery_error
from durable_jobs_harness.fake_kube import (
    MANUAL,
    FakeKubeApiServer,
    TlsMaterial,
    kubeconfig_dict,
    realistic_pod,
    write_kubeconfig,
)
from durable_jobs_harness.fake_spark import FakeSparkMaster, free_port

SPARK_SUBMIT_DATE = "Sat Nov 21 10:02:36 UTC 2026"
MANAGED_LABEL = "durable-jobs.io/managed"  # what the library's pod watch selects on


class Tally:
    """Requests one system received: when, what, from which client socket."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.kinds: Counter[str] = Counter()
        self.kind_times: dict[str, list[float]] = {}
        self.peers: set[tuple[str, int]] = set()

    def hit(self, request: web.Request, kind: str) -> None:
        now = time.time()
        self.times.append(now)
        self.kinds[kind] += 1
        self.kind_times.setdefault(kind, []).append(now)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((str(peer[0]), int(peer[1])))

    def report(self, t0: float, interval: float, run_seconds: float) -> dict[str, Any]:
        buckets = max(1, int(run_seconds // interval) + 1)
        per_interval = [0] * buckets
        in_window = 0
        for t in self.times:
            k = int((t - t0) // interval)
            if 0 <= k < buckets and t <= t0 + run_seconds:
                per_interval[k] += 1
                in_window += 1
        kinds_in_window = {
            kind: sum(1 for t in ts if t0 <= t <= t0 + run_seconds) for kind, ts in self.kind_times.items()
        }
        return {
            "requests": in_window,
            "requests_total": len(self.times),
            "requests_per_interval": per_interval,
            "requests_by_kind": kinds_in_window,
            "client_sockets": len(self.peers),
        }

    def windows(self, spans: dict[str, list[float]]) -> dict[str, Any]:
        """Requests per window (``{name: [start, end]}``, epoch seconds), in all and by kind."""
        out: dict[str, Any] = {}
        for name, (start, end) in spans.items():
            by_kind = {kind: sum(1 for t in ts if start <= t <= end) for kind, ts in self.kind_times.items()}
            by_kind = {k: v for k, v in by_kind.items() if v}
            out[name] = {"requests": sum(by_kind.values()), "by_kind": by_kind, "seconds": end - start}
        out["requests_total"] = len(self.times)
        out["client_sockets"] = len(self.peers)
        return out


class Script:
    """One system's jobs: ids, scripted ends, and what finishing one means for that fake."""

    def __init__(
        self, system: str, ids: list[Any], first: float, last: float, fraction: float, finish: Callable[[int], None]
    ):
        self.system = system
        self.ids = ids
        self.offsets = end_offsets(len(ids), first, last, fraction)
        self.finish = finish
        self.t0: float | None = None
        self.finished = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> float:
        self.t0 = time.time()
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self.t0

    async def _run(self) -> None:
        assert self.t0 is not None
        ending = (i for i in range(len(self.ids)) if math.isfinite(self.offsets[i]))
        order = sorted(ending, key=self.offsets.__getitem__)
        k = 0
        while k < len(order):
            due = self.t0 + self.offsets[order[k]]
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.time()
            while k < len(order) and self.t0 + self.offsets[order[k]] <= now:
                self.finish(order[k])
                self.finished += 1
                k += 1

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def counting(tally: Callable[[], Tally], classify: Callable[[web.Request], str]) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_"):
            tally().hit(request, classify(request))
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


# --- spark ------------------------------------------------------------------------------------------------


class Drivers(dict[str, str]):
    """The master's drivers (id -> state), counting its changes: ``/json/`` is rendered once per change."""

    version = 0

    def __setitem__(self, key: str, value: str) -> None:
        self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.version += 1
        super().__delitem__(key)


class BenchSparkMaster(FakeSparkMaster):
    """The fake master, counting requests, with ``/json/`` entries shaped like Spark 4's (every field a
    real master sends for a driver), so that parsing it costs what a real answer costs."""

    tally: Tally
    _rendered: tuple[int, int, bytes] | None = None  # (id of the drivers dict, its version, the body)

    async def _json(self, request: web.Request) -> web.Response:
        drivers = self.drivers
        stamp = (id(drivers), getattr(drivers, "version", -1))
        if self._rendered is None or self._rendered[:2] != stamp or not isinstance(drivers, Drivers):
            self._rendered = (*stamp, await asyncio.to_thread(self._render))
        return web.Response(body=self._rendered[2], content_type="application/json")

    def _render(self) -> bytes:
        def entry(d: str, s: str) -> dict[str, Any]:
            return {
                "id": d,
                "starttime": "1795255356000",
                "state": s,
                "cores": 1,
                "memory": 1024,
                "submitdate": SPARK_SUBMIT_DATE,
                "worker": "worker-20261121100200-127.0.0.1-40000",
                "mainclass": "demo.SleepExit",
            }

        drivers = list(self.drivers.items())
        active = [entry(d, s) for d, s in drivers if s in ("RUNNING", "SUBMITTED")]
        done = [entry(d, s) for d, s in drivers if s not in ("RUNNING", "SUBMITTED")]
        worker = {
            "id": "worker-20261121100200-127.0.0.1-40000",
            "host": "127.0.0.1",
            "port": 40000,
            "webuiaddress": "http://127.0.0.1:8081",
            "cores": 64,
            "coresused": len(active),
            "coresfree": 64,
            "memory": 262144,
            "memoryused": 1024 * len(active),
            "memoryfree": 0,
            "resources": {},
            "resourcesused": {},
            "resourcesfree": {},
            "state": "ALIVE",
            "lastheartbeat": int(time.time() * 1000),
        }
        return json.dumps(
            {
                "url": "spark://127.0.0.1:7077",
                "workers": [worker],
                "aliveworkers": 1,
                "cores": 64,
                "coresused": len(active),
                "memory": 262144,
                "memoryused": 1024 * len(active),
                "resources": [],
                "resourcesused": [],
                "activeapps": [],
                "completedapps": [],
                "activedrivers": active,
                "completeddrivers": done,
                "status": "ALIVE",
            }
        ).encode()

    async def start(self) -> BenchSparkMaster:
        app = web.Application(middlewares=[counting(lambda: self.tally, _spark_kind)])
        app.router.add_get("/v1/submissions/status/{id}", self._status)
        app.router.add_get("/json/", self._json)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=4096).start()
        return self


def _spark_kind(request: web.Request) -> str:
    return "json" if request.path == "/json/" else "status"


# --- livy -------------------------------------------------------------------------------------------------


class FakeLivy:
    """``GET /batches/{id}/state`` and ``/batches/{id}/log`` as Livy 0.8 answers them."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.tally = Tally()

    async def _state(self, request: web.Request) -> web.Response:
        i = int(request.match_info["id"])
        if not 0 <= i < len(self.states):
            return web.json_response({"msg": f"Session '{i}' not found."}, status=404)
        return web.json_response({"id": i, "state": self.states[i]})

    async def _log(self, request: web.Request) -> web.Response:
        i = int(request.match_info["id"])
        lines = [f"26/11/21 10:02:{k:02d} INFO SparkContext: bench line {k} of batch {i}" for k in range(20)]
        return web.json_response({"id": i, "from": 0, "total": len(lines), "log": lines})

    async def start(self, port: int) -> None:
        app = web.Application(middlewares=[counting(lambda: self.tally, lambda r: r.path.rsplit("/", 1)[-1])])
        app.router.add_get("/batches/{id}/state", self._state)
        app.router.add_get("/batches/{id}/log", self._log)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        self.runner = runner


# --- aws: emr and glue ------------------------------------------------------------------------------------


class FakeEmr:
    """The EMR JSON API for steps: ``DescribeStep`` and ``ListSteps`` (pages of 50, like AWS).

    AWS allows at most 256 ``PENDING`` + ``RUNNING`` steps per cluster, so N active steps live on
    ``ceil(N / 250)`` clusters, as they would in a real account.
    """

    PAGE = 50
    STEPS_PER_CLUSTER = 250  # the default layout: under AWS's 256 active steps per cluster

    def __init__(self) -> None:
        self.clusters: dict[str, list[str]] = {}  # cluster id -> its step ids, oldest first
        self.steps: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.cluster_of: list[str] = []  # cluster id of each step in order
        self.tally = Tally()

    def reset(self, n: int, steps_per_cluster: int = STEPS_PER_CLUSTER) -> list[str]:
        created = time.time()
        self.order = [f"s-BENCH{i:08d}" for i in range(n)]
        self.cluster_of = [f"j-BENCH{i // steps_per_cluster:06d}" for i in range(n)]
        self.clusters = {}
        for sid, cid in zip(self.order, self.cluster_of, strict=True):
            self.clusters.setdefault(cid, []).append(sid)
        self.steps = {
            sid: {
                "Id": sid,
                "Name": f"bench-{i} [dj{i:020x}]",
                "Config": {"Jar": "command-runner.jar", "Properties": {}, "Args": ["spark-submit", "job.py"]},
                "ActionOnFailure": "CONTINUE",
                "Status": {
                    "State": "RUNNING",
                    "StateChangeReason": {},
                    "Timeline": {"CreationDateTime": created, "StartDateTime": created},
                },
            }
            for i, sid in enumerate(self.order)
        }
        return self.order

    def finish(self, i: int) -> None:
        step = self.steps[self.order[i]]
        step["Status"]["State"] = "COMPLETED"
        step["Status"]["Timeline"]["EndDateTime"] = time.time()

    def answer(self, action: str, body: dict[str, Any]) -> web.Response:
        cluster = self.clusters.get(str(body.get("ClusterId", "")))
        if cluster is None:
            return _aws_error("InvalidRequestException", f"Cluster id '{body.get('ClusterId')}' is not valid.")
        if action == "DescribeStep":
            sid = body.get("StepId", "")
            step = self.steps.get(sid) if sid in cluster else None
            if step is None:
                return _aws_error("InvalidRequestException", "Step id is not valid.")
            return _aws_json({"Step": step})
        if action == "ListSteps":
            wanted = body.get("StepIds") or None
            states = set(body.get("StepStates") or ())
            ids = [s for s in wanted if s in cluster] if wanted else list(reversed(cluster))  # newest first
            picked = [self.steps[s] for s in ids]
            if states:
                picked = [s for s in picked if s["Status"]["State"] in states]
            start = int(body.get("Marker") or 0)
            page = picked[start : start + self.PAGE]
            out: dict[str, Any] = {"Steps": page}
            if start + self.PAGE < len(picked):
                out["Marker"] = str(start + self.PAGE)
            return _aws_json(out)
        return _unknown_action(action)


class FakeGlue:
    """AWS Glue's reads of job runs: ``GetJobRun`` (what the amazon provider's waiter asks per run and poll) and
    ``GetJobRuns`` of a job, newest first, ``MaxResults`` 1..200 with a ``NextToken`` (what our poller walks
    once per job name and poll).

    N runs are spread over job names of ``runs_per_job`` runs each (set-up; default 100: a job started with
    different arguments by many tasks, its ``MaxConcurrentRuns`` raised to allow it; 1 is a job per run, as
    ``MaxConcurrentRuns`` = 1 has it).
    """

    MAX_RESULTS = 200
    RUNS_PER_JOB = 100

    def __init__(self) -> None:
        self.jobs: dict[str, list[dict[str, Any]]] = {}  # job name -> its runs, newest first
        self.runs: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # run ids, job i's at i
        self.job_of: list[str] = []  # job name of each run in order
        self.tally = Tally()

    def reset(self, n: int, runs_per_job: int = RUNS_PER_JOB) -> list[str]:
        started = time.time()
        self.order = ["jr_" + hashlib.sha256(f"bench-glue-{i}".encode()).hexdigest() for i in range(n)]
        self.job_of = [f"bench-glue-job-{i // runs_per_job:05d}" for i in range(n)]
        self.runs = {rid: self._run(i, rid, started) for i, rid in enumerate(self.order)}
        self.jobs = {}
        for rid, name in zip(self.order, self.job_of, strict=True):
            self.jobs.setdefault(name, []).insert(0, self.runs[rid])
        return self.order

    def _run(self, i: int, rid: str, started: float) -> dict[str, Any]:
        """A running Glue ETL run as GetJobRun shows it (the fields a real answer carries)."""
        return {
            "Id": rid,
            "Attempt": 0,
            "JobName": self.job_of[i],
            "JobMode": "SCRIPT",
            "JobRunQueuingEnabled": False,
            "StartedOn": started,
            "LastModifiedOn": started,
            "JobRunState": "RUNNING",
            "Arguments": {"--durable_jobs_token": bench_token(i), "--day": "2026-11-21"},
            "PredecessorRuns": [],
            "AllocatedCapacity": 10,
            "ExecutionTime": 0,
            "Timeout": 2880,
            "MaxCapacity": 10.0,
            "WorkerType": "G.1X",
            "NumberOfWorkers": 10,
            "LogGroupName": "/aws-glue/jobs",
            "GlueVersion": "4.0",
            "ExecutionClass": "STANDARD",
        }

    def finish(self, i: int) -> None:
        run, now = self.runs[self.order[i]], time.time()
        run.update(JobRunState="SUCCEEDED", CompletedOn=now, LastModifiedOn=now)
        run["ExecutionTime"] = int(now - run["StartedOn"])

    def answer(self, action: str, body: dict[str, Any]) -> web.Response:
        runs = self.jobs.get(str(body.get("JobName", "")))
        if runs is None:
            return _aws_error("EntityNotFoundException", f"Job with name: {body.get('JobName')} not found.")
        if action == "GetJobRun":
            run = self.runs.get(body.get("RunId", ""))
            if run is None or run["JobName"] != body["JobName"]:
                return _aws_error("EntityNotFoundException", f"Job Run with id: {body.get('RunId')} not found.")
            return _aws_json({"JobRun": run})
        if action == "GetJobRuns":
            limit = int(body.get("MaxResults") or self.MAX_RESULTS)
            if not 1 <= limit <= self.MAX_RESULTS:
                return _aws_error("InvalidInputException", f"MaxResults must be 1..{self.MAX_RESULTS}")
            start = int(body.get("NextToken") or 0)
            out: dict[str, Any] = {"JobRuns": runs[start : start + limit]}
            if start + limit < len(runs):
                out["NextToken"] = str(start + limit)
            return _aws_json(out)
        return _unknown_action(action)


class FakeAws:
    """One AWS JSON 1.1 endpoint (``POST /``) for the AWS services the benchmark fakes, routed by the
    ``X-Amz-Target`` prefix (``ElasticMapReduce``, ``AWSGlue``), each counted on its own service's tally."""

    def __init__(self, services: dict[str, Any]) -> None:
        self.services = services  # target prefix -> a fake with .answer(action, body) and .tally
        self.url = ""

    def _route(self, request: web.Request) -> tuple[Any, str]:
        prefix, _, action = request.headers.get("X-Amz-Target", "").rpartition(".")
        return self.services.get(prefix), action

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        service, action = self._route(request)
        if service is not None:
            service.tally.hit(request, action)
        response: web.StreamResponse = await handler(request)
        return response

    async def _dispatch(self, request: web.Request) -> web.Response:
        service, action = self._route(request)
        if service is None:
            return _unknown_action(request.headers.get("X-Amz-Target", ""))
        body = await request.json(loads=json.loads) if request.can_read_body else {}
        answer: web.Response = service.answer(action, body)
        return answer

    async def start(self, port: int) -> None:
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/", self._dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        self.url = f"http://127.0.0.1:{port}"
        self.runner = runner


def _aws_json(data: dict[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/x-amz-json-1.1")


def _unknown_action(action: str) -> web.Response:
    return _aws_error("UnknownOperationException", f"{action} is not served by the benchmark's fake")


def _aws_error(code: str, message: str) -> web.Response:
    return web.Response(
        status=400,
        text=json.dumps({"__type": code, "message": message}),
        content_type="application/x-amz-json-1.1",
        headers={"x-amzn-ErrorType": code},
    )


# --- databricks -------------------------------------------------------------------------------------------


class FakeDatabricks:
    """A workspace's Jobs API 2.2 for waiting on submit runs: ``runs/get`` and ``runs/list``, bearer PAT.

    ``runs/get`` takes the run id from the query or, as the provider's async hook sends its GETs, from a JSON
    body. ``runs/list`` lists newest first (``active_only``, ``run_type`` and ``expand_tasks`` applied; other
    filters accepted and not applied), ``limit`` 1..24 (default 20, above 24 refused as 2.2 does), and its
    ``page_token`` is a cursor (the last run id given), so runs ending during a walk shift no page.
    """

    PAT = "dapi-bench-0123456789abcdef"
    MAX_LIMIT = 24
    FIRST_RUN_ID = 580_000_000_000_000  # run ids are large in real workspaces

    def __init__(self) -> None:
        self.runs: dict[int, dict[str, Any]] = {}
        self.order: list[int] = []  # run ids of the set-up, job i's at i
        self.active: list[int] = []  # the active runs' ids, ascending
        self.url = ""
        self.tally = Tally()

    def reset(self, n: int) -> list[int]:
        started = int(time.time() * 1000)
        self.order = [self.FIRST_RUN_ID + 10 * i for i in range(n)]
        self.active = list(self.order)
        self.runs = {rid: self._run(i, rid, started) for i, rid in enumerate(self.order)}
        return self.order

    def _run(self, i: int, rid: int, started: int) -> dict[str, Any]:
        """A multi-task submit run as runs/get shows it, running (the fields a real answer carries)."""
        page = f"{self.url}/?o=1234567890123456#job/{rid + 1}/run/{rid}"
        running = {"life_cycle_state": "RUNNING", "state_message": "", "user_cancelled_or_timedout": False}
        task = {
            "run_id": rid + 2,
            "task_key": "main",
            "state": dict(running),
            "status": {"state": "RUNNING"},
            "spark_python_task": {"python_file": "dbfs:/jobs/job.py", "parameters": ["--day", "2026-11-21"]},
            "new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2},
            "cluster_instance": {"cluster_id": f"1121-100236-bench{i:05d}", "spark_context_id": str(rid)},
            "start_time": started,
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "end_time": 0,
            "attempt_number": 0,
            "run_page_url": page,
        }
        return {
            "job_id": rid + 1,
            "run_id": rid,
            "number_in_job": rid,
            "original_attempt_run_id": rid,
            "creator_user_name": "airflow@example.com",
            "run_name": f"airflow-durable-bench.job_{i} [{bench_token(i)}]",
            "run_type": "SUBMIT_RUN",
            "format": "MULTI_TASK",
            "state": running,
            "status": {"state": "RUNNING"},
            "start_time": started,
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "end_time": 0,
            "run_page_url": page,
            "tasks": [task],
        }

    def finish(self, i: int) -> None:
        rid = self.order[i]
        run, now = self.runs[rid], int(time.time() * 1000)
        for r in (run, *run["tasks"]):
            r["state"] = {
                "life_cycle_state": "TERMINATED",
                "result_state": "SUCCESS",
                "state_message": "",
                "user_cancelled_or_timedout": False,
            }
            r["status"] = {"state": "TERMINATED", "termination_details": {"code": "SUCCESS", "type": "SUCCESS"}}
            r["end_time"] = now
        k = bisect.bisect_left(self.active, rid)
        if k < len(self.active) and self.active[k] == rid:
            del self.active[k]

    async def _get(self, request: web.Request) -> web.Response:
        raw: Any = request.query.get("run_id")
        if raw is None and request.can_read_body:
            try:
                raw = (await request.json()).get("run_id")
            except (ValueError, AttributeError):
                raw = None
        try:
            rid = int(raw)
        except (TypeError, ValueError):
            return _databricks_error(400, "INVALID_PARAMETER_VALUE", "Missing required field: run_id")
        run = self.runs.get(rid)
        if run is None:
            return _databricks_error(404, "RESOURCE_DOES_NOT_EXIST", f"Run {rid} does not exist.")
        return web.json_response(run)

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "20"))
            cursor = int(q["page_token"]) if q.get("page_token") else None
        except ValueError:
            return _databricks_error(400, "INVALID_PARAMETER_VALUE", "Invalid limit or page_token")
        if not 1 <= limit <= self.MAX_LIMIT:
            return _databricks_error(
                400, "INVALID_PARAMETER_VALUE", f"Limit must be between 1 and {self.MAX_LIMIT}, got {limit}"
            )
        ids = self.active if q.get("active_only", "").lower() == "true" else self.order
        if q.get("run_type", "SUBMIT_RUN") != "SUBMIT_RUN":
            ids = []
        end = len(ids) if cursor is None else bisect.bisect_left(ids, cursor)
        start = max(0, end - limit)
        tasks = q.get("expand_tasks", "").lower() == "true"
        page = [self.runs[rid] for rid in reversed(ids[start:end])]
        out: dict[str, Any] = {"has_more": start > 0}
        if page:
            out["runs"] = page if tasks else [{k: v for k, v in r.items() if k != "tasks"} for r in page]
        if start > 0:
            out["next_page_token"] = str(ids[start])
        return web.json_response(out)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.PAT}":
            return _databricks_error(401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type")
        response: web.StreamResponse = await handler(request)
        return response

    async def start(self, port: int) -> None:
        app = web.Application(middlewares=[counting(lambda: self.tally, _databricks_kind), self._auth])
        app.router.add_get("/api/2.2/jobs/runs/get", self._get)
        app.router.add_get("/api/2.2/jobs/runs/list", self._list)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        self.url = f"http://127.0.0.1:{port}"
        self.runner = runner


def _databricks_kind(request: web.Request) -> str:
    return request.path.removeprefix("/api/2.2/jobs/")


def _databricks_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error_code": code, "message": message}, status=status)


# --- bigquery -------------------------------------------------------------------------------------------


class BenchBigQuery(FakeBigQuery):
    """One project's BigQuery: the project's contract fake's token endpoint and bearer check (a token it issued,
    for a JWT its service-account key signed), and the two reads that wait for jobs, served from jobs rendered
    once: ``jobs.get`` (what the google provider's trigger asks per job and poll) and ``jobs.list`` of the
    pending and running jobs, newest first, ``maxResults`` up to 1,000 with a cursor ``pageToken`` (what our
    batched poller walks once per poll).

    Google's own client libraries sign their token requests for Google's token URI whatever ``token_uri`` they
    post to, as Google accepts: that audience is accepted too.
    """

    PROJECT = "bench-project"
    LOCATION = "US"
    MAX_RESULTS = 1000

    def __init__(self) -> None:
        super().__init__(self.PROJECT)
        self.full: dict[str, dict[str, Any]] = {}  # job id -> jobs.get's answer
        self.order: list[str] = []  # job ids, job i's at i
        self.active: list[int] = []  # indices of the pending and running jobs, ascending (oldest first)
        self.tally = Tally()

    @property
    def token_audiences(self) -> list[str]:
        return [self.token_uri, GOOGLE_TOKEN_URI]

    def reset(self, n: int) -> list[str]:
        created = int(time.time() * 1000)
        self.order = [f"airflow_bench_{bench_token(i)}" for i in range(n)]
        self.full = {job_id: self._job(i, job_id, created) for i, job_id in enumerate(self.order)}
        self.active = list(range(n))
        return self.order

    def _job(self, i: int, job_id: str, created: int) -> dict[str, Any]:
        """A running query job as jobs.get shows it (the fields a real answer carries)."""
        ref = {"projectId": self.PROJECT, "jobId": job_id, "location": self.LOCATION}
        return {
            "kind": "bigquery#job",
            "etag": f"bench{i:08d}==",
            "id": f"{self.PROJECT}:{self.LOCATION}.{job_id}",
            "selfLink": f"{self.url}/bigquery/v2/projects/{self.PROJECT}/jobs/{job_id}?location={self.LOCATION}",
            "user_email": self.client_email,
            "principal_subject": f"serviceAccount:{self.client_email}",
            "jobReference": ref,
            "configuration": {
                "query": {
                    "query": f"SELECT day, COUNT(*) FROM `bench.events` WHERE part = {i} GROUP BY day",
                    "destinationTable": {"projectId": self.PROJECT, "datasetId": "bench", "tableId": f"daily_{i}"},
                    "writeDisposition": "WRITE_TRUNCATE",
                    "priority": "INTERACTIVE",
                    "useLegacySql": False,
                },
                "labels": {"durable_jobs_token": bench_token(i), "airflow-dag": "bench"},
                "jobType": "QUERY",
            },
            "statistics": {"creationTime": str(created), "startTime": str(created + 40), "query": {}},
            "status": {"state": "RUNNING"},
            "jobCreationReason": {"code": "REQUESTED"},
        }

    def end(self, i: int) -> None:
        """Job i is done (succeeded): jobs.get says so, jobs.list no longer lists it."""
        job, now = self.full[self.order[i]], str(int(time.time() * 1000))
        job["status"] = {"state": "DONE"}
        job["statistics"].update(endTime=now, totalBytesProcessed="10485760", totalSlotMs="4321")
        job["statistics"]["query"] = {"totalBytesProcessed": "10485760", "totalSlotMs": "4321"}
        k = bisect.bisect_left(self.active, i)
        if k < len(self.active) and self.active[k] == i:
            del self.active[k]

    async def _get(self, request: web.Request) -> web.Response:
        self._project(request)
        job_id, location = request.match_info["job_id"], request.query.get("location")
        job = self.full.get(job_id)
        if job is None or location not in (None, self.LOCATION):
            raise ApiError(404, "notFound", f"Not found: Job {self.PROJECT}:{location or 'US'}.{job_id[:200]}")
        return web.json_response(job)

    async def _list(self, request: web.Request) -> web.Response:
        self._project(request)
        q = request.query
        if {s.lower() for s in q.getall("stateFilter", [])} != {"pending", "running"}:
            raise ApiError(400, "invalid", "the benchmark's fake lists pending and running jobs only")
        try:
            limit = min(int(q.get("maxResults", "1000")) or self.MAX_RESULTS, self.MAX_RESULTS)
            end = int(q["pageToken"]) if "pageToken" in q else len(self.order)
        except ValueError:
            raise ApiError(400, "invalid", "Invalid value for maxResults or pageToken") from None
        stop = bisect.bisect_left(self.active, end)  # the cursor: jobs older than the last one given
        start = max(0, stop - limit)
        out: dict[str, Any] = {"kind": "bigquery#jobList", "etag": "bench"}
        if stop > start:
            out["jobs"] = [self._listed(self.full[self.order[k]]) for k in reversed(self.active[start:stop])]
        if start > 0:
            out["nextPageToken"] = str(self.active[start])
        return web.json_response(out)

    @staticmethod
    def _listed(job: dict[str, Any]) -> dict[str, Any]:
        """A jobs.list entry of projection=minimal: no configuration, the state beside the status."""
        keys = ("id", "kind", "jobReference", "statistics", "status", "user_email", "principal_subject")
        return {**{k: job[k] for k in keys}, "state": job["status"]["state"]}

    @web.middleware
    async def _bench_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/bigquery/") and not self._authorized(request):
            return bigquery_error(401, "unauthorized", "Request had invalid authentication credentials.")
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as exc:
            return bigquery_error(exc.status, exc.reason, exc.message)
        return response

    async def start(self) -> BenchBigQuery:
        app = web.Application(middlewares=[counting(lambda: self.tally, _bigquery_kind), self._bench_auth])
        app.router.add_post("/token", self._token)
        jobs = "/bigquery/v2/projects/{project}/jobs"
        app.router.add_get(jobs, self._list)
        app.router.add_get(jobs + "/{job_id}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=4096).start()
        return self


def _bigquery_kind(request: web.Request) -> str:
    if request.path == "/token":
        return "token"
    return "jobs.list" if request.path.endswith("/jobs") else "jobs.get"


# --- kube -------------------------------------------------------------------------------------------------


class BenchKube(FakeKubeApiServer):
    tally: Tally

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/fake/stats":
            self.tally.hit(request, _kube_kind(request))
        response: web.StreamResponse = await super()._middleware(request, handler)
        return response


def _kube_kind(request: web.Request) -> str:
    """``GET pod``, ``LIST pods``, ``WATCH pods``, ...: the verb and the resource."""
    parts = request.path.strip("/").split("/")
    for plural in ("pods", "jobs", "events"):
        if plural in parts:
            named = len(parts) > parts.index(plural) + 1
            if request.method == "GET" and not named:
                watch = request.query.get("watch", "").lower() in ("1", "true")
                return f"{'WATCH' if watch else 'LIST'} {plural}"
            return f"{request.method} {plural[:-1] if named else plural}"
    return f"{request.method} {request.path}"


def bench_token(i: int) -> str:
    """Job i's durable_jobs token (the Kubernetes names carry it, as the library's do)."""
    return f"dj{i:020x}"


def pod_size(i: int, low: int, high: int) -> int:
    """Pod i's size in bytes of JSON, spread evenly over [low, high]."""
    return low + (high - low) * ((i * 7919) % 1000) // 999


def _pod(name: str, i: int, size: int, *, managed: bool = True) -> dict[str, Any]:
    """A pod as a user's workload creates it: ``size`` bytes of JSON all told (``fake_kube.realistic_pod``)."""
    pod = realistic_pod(name, "", size, managed=managed, seed=i)
    pod["metadata"].pop("namespace", None)
    pod.pop("status", None)  # the fake's kubelet sets it (below, by hand: MANUAL)
    for c in pod["spec"]["containers"]:
        c["name"] = "base"  # the container KubernetesPodTrigger watches (base_container_name)
    if managed:
        pod["metadata"]["labels"][MANAGED_LABEL] = "true"
    pod["metadata"]["annotations"][MANUAL] = "manual"
    return pod


def _container_status(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "base",
            "ready": "running" in state,
            "restartCount": 0,
            "image": "busybox:1.36",
            "imageID": "docker.io/library/busybox@sha256:0",
            "containerID": "containerd://0",
            "started": "running" in state,
            "state": state,
        }
    ]


def paged_groups(groups: dict[str, Any], page: int, largest: str) -> dict[str, int]:
    """What one poll must send when each group of jobs (a cluster's steps, a job's runs) is listed on its own in
    pages of ``page``: its endpoints, a request per page per group, and the largest group (as ``largest``)."""
    return {
        "endpoints": len(groups),
        "requests_per_poll_floor": sum(math.ceil(len(g) / page) for g in groups.values()),
        largest: max((len(g) for g in groups.values()), default=0),
    }


# --- the process ------------------------------------------------------------------------------------------


class Servers:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scripts: dict[str, Script] = {}
        systems = ("spark", "livy", "kube", "emr", "glue", "databricks", "bigquery")
        self.tallies: dict[str, Tally] = {s: Tally() for s in systems}
        self.kube_namespaces = 0

    async def start(self) -> dict[str, str]:
        self.spark = BenchSparkMaster()
        self.spark.tally = self.tallies["spark"]
        await self.spark.start()
        self.livy = FakeLivy()
        self.livy.tally = self.tallies["livy"]
        await self.livy.start(livy_port := free_port())
        self.emr, self.glue = FakeEmr(), FakeGlue()
        self.emr.tally, self.glue.tally = self.tallies["emr"], self.tallies["glue"]
        self.aws = FakeAws({"ElasticMapReduce": self.emr, "AWSGlue": self.glue})
        await self.aws.start(free_port())
        self.databricks = FakeDatabricks()
        self.databricks.tally = self.tallies["databricks"]
        await self.databricks.start(free_port())
        self.bigquery = BenchBigQuery()
        self.bigquery.tally = self.tallies["bigquery"]
        await self.bigquery.start()
        tls = TlsMaterial.generate(self.directory / "tls")
        self.kube = BenchKube(tls, time_scale=1.0)
        self.kube.tally = self.tallies["kube"]
        await self.kube.start()
        kubeconfig = write_kubeconfig(
            self.directory / "kubeconfig", kubeconfig_dict(self.kube.url, tls.ca_pem, token=self.kube.token)
        )
        app = web.Application()
        app.router.add_post("/_setup", self._setup)
        app.router.add_post("/_start", self._start)
        app.router.add_post("/_reset", self._reset)
        app.router.add_post("/_windows", self._windows)
        app.router.add_get("/_stats", self._stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", control_port := free_port()).start()
        return {
            "control": f"http://127.0.0.1:{control_port}",
            "spark": self.spark.url,
            "livy": f"http://127.0.0.1:{livy_port}",
            "emr": self.aws.url,
            "glue": self.aws.url,
            "databricks": self.databricks.url,
            "bigquery": self.bigquery.url,
            "kube": self.kube.url,
            "kubeconfig": str(kubeconfig),
        }

    def reset_tally(self, system: str) -> None:
        tally = self.tallies[system] = Tally()
        fakes: dict[str, Any] = {
            "spark": self.spark,
            "livy": self.livy,
            "kube": self.kube,
            "emr": self.emr,
            "glue": self.glue,
            "databricks": self.databricks,
            "bigquery": self.bigquery,
        }
        fakes[system].tally = tally

    async def _setup(self, request: web.Request) -> web.Response:
        """``{"system", "n", "first", "last", "fraction"}``: fresh jobs, all running; returns what locates them."""
        spec = await request.json()
        system, n = spec["system"], int(spec["n"])
        old = self.scripts.pop(system, None)
        if old is not None:
            old.stop()
        out: dict[str, Any] = {}
        ids: list[Any]
        if system == "spark":
            ids = [f"driver-20261121100236-{i:05d}" for i in range(n)]
            self.spark.drivers = Drivers(dict.fromkeys(ids, "RUNNING"))

            def finish(i: int) -> None:
                self.spark.drivers[ids[i]] = "FINISHED"

            out["ids"] = ids
        elif system == "livy":
            ids = list(range(n))
            self.livy.states = ["running"] * n

            def finish(i: int) -> None:
                self.livy.states[i] = "success"

            out["ids"] = ids
        elif system == "emr":
            ids = self.emr.reset(n, int(spec.get("steps_per_cluster") or FakeEmr.STEPS_PER_CLUSTER))
            finish = self.emr.finish
            # each step's own cluster; one ListSteps per page of active steps per cluster and poll
            out.update(ids=ids, cluster_ids=self.emr.cluster_of)
            out.update(paged_groups(self.emr.clusters, FakeEmr.PAGE, "steps_per_cluster"))
        elif system == "glue":
            ids = self.glue.reset(n, int(spec.get("runs_per_job") or FakeGlue.RUNS_PER_JOB))
            finish = self.glue.finish
            # each run's own job; one GetJobRuns page (200 runs) per job name and poll
            out.update(ids=ids, job_names=self.glue.job_of)
            out.update(paged_groups(self.glue.jobs, FakeGlue.MAX_RESULTS, "runs_per_job"))
        elif system == "bigquery":
            ids = self.bigquery.reset(n)
            finish = self.bigquery.end
            out["ids"] = ids
            out["project"], out["location"] = BenchBigQuery.PROJECT, BenchBigQuery.LOCATION
            out["key"] = self.bigquery.service_account_info()  # its token_uri is the fake's
            # one project; one poll walks every pending and running job: a jobs.list page per 1,000
            out["endpoints"] = 1
            out["requests_per_poll_floor"] = max(1, math.ceil(n / BenchBigQuery.MAX_RESULTS))
        elif system == "databricks":
            ids = self.databricks.reset(n)
            finish = self.databricks.finish
            out["ids"] = ids
            out["pat"] = FakeDatabricks.PAT
            # one workspace; one poll walks every active run: a runs/list page per 24
            out["endpoints"] = 1
            out["requests_per_poll_floor"] = max(1, math.ceil(n / FakeDatabricks.MAX_LIMIT))
        elif system == "kube":
            # the previous run's namespace goes (its pods are hundreds of MB at 10,000 realistic ones)
            gone = f"bench-{self.kube_namespaces}"
            for key in [k for k in self.kube.objects if k[1] == gone]:
                del self.kube.objects[key]
            self.kube_namespaces += 1
            namespace = f"bench-{self.kube_namespaces}"
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            # named as the library names what it creates: <prefix>-<token>, so each locator carries its token
            names = [f"bench-{bench_token(i)}" for i in range(n)]
            low, high = int(spec.get("pod_min_bytes", 5000)), int(spec.get("pod_max_bytes", 20000))
            bodies = [_pod(name, i, pod_size(i, low, high)) for i, name in enumerate(names)]
            objs = self.kube.create_many("pods", namespace, bodies)
            del bodies
            for name in names:
                self.kube.set_phase(
                    namespace,
                    name,
                    "Running",
                    startTime=created,
                    hostIP="10.0.0.1",
                    podIP="10.1.0.1",
                    qosClass="Guaranteed",
                    conditions=[
                        {"type": t, "status": "True", "lastTransitionTime": created}
                        for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                    ],
                    containerStatuses=_container_status({"running": {"startedAt": created}}),
                )
            unwatched = int(spec.get("unwatched", 0))
            if unwatched:  # other workloads' pods in the same namespace, which the library's watch selects out
                self.kube.seed_pods(namespace, unwatched, low, high, managed=False)
            sample = [self.kube.get("pods", namespace, names[i]) for i in range(0, n, max(1, n // 50))]
            out["pod_bytes_mean"] = round(sum(len(json.dumps(p)) for p in sample) / max(1, len(sample)))
            out["unwatched"] = unwatched
            self.kube.compact()  # the set-up's events are not kept: the trigger process lists afresh

            def finish(i: int) -> None:
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                terminated = {"exitCode": 0, "reason": "Completed", "startedAt": created, "finishedAt": now}
                self.kube.set_phase(
                    namespace, names[i], "Succeeded", containerStatuses=_container_status({"terminated": terminated})
                )

            ids = names
            out["ids"] = names
            out["uids"] = [o["metadata"]["uid"] for o in objs]
            out["namespace"] = namespace
        else:
            return web.json_response({"error": f"unknown system {system}"}, status=400)
        self.reset_tally(system)  # set-up requests are not the run's
        first, last, fraction = float(spec["first"]), float(spec["last"]), float(spec["fraction"])
        self.scripts[system] = Script(system, ids, first, last, fraction, finish)
        return web.json_response(out)

    async def _start(self, request: web.Request) -> web.Response:
        """The jobs' schedule starts now (the request count goes on: ``/_reset`` starts it)."""
        system = (await request.json())["system"]
        return web.json_response({"t0": self.scripts[system].start()})

    async def _reset(self, request: web.Request) -> web.Response:
        """Count this system's requests from now on (set-up requests are not the run's)."""
        self.reset_tally((await request.json())["system"])
        return web.json_response({"reset": time.time()})

    async def _windows(self, request: web.Request) -> web.Response:
        """``{"system", "windows": {name: [start, end]}}``: the requests of each window, by kind."""
        spec = await request.json()
        system = spec["system"]
        report = self.tallies[system].windows(spec["windows"])
        script = self.scripts.get(system)
        report["finished_by_script"] = script.finished if script else 0
        if system == "kube":
            report["fake"] = {"watches_opened": dict(self.kube.watches_opened), "open_watches": len(self.kube.watchers)}
        return web.json_response(report)

    async def _stats(self, request: web.Request) -> web.Response:
        q = request.query
        system = q["system"]
        script = self.scripts.get(system)
        if script is None or script.t0 is None:
            return web.json_response({"error": "not started"}, status=400)
        report = self.tallies[system].report(script.t0, float(q["interval"]), float(q["run_seconds"]))
        report["finished_by_script"] = script.finished
        if system == "kube":
            report["fake"] = {"watches_opened": dict(self.kube.watches_opened), "open_watches": len(self.kube.watchers)}
        return web.json_response(report)


def main(directory: Path) -> None:
    async def run() -> None:
        servers = Servers(directory)
        info = await servers.start()
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await servers.kube.stop()
        await servers.bigquery.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
