"""moto's EMR, EMR Serverless and EMR on EKS served over real HTTP from inside the test process.

``ThreadedMotoServer`` on 127.0.0.1 gives real SigV4 signing, botocore serialisation and parsing, but no
AWS state machine: nothing moves by itself. Tests play the cluster by editing moto's backend objects
(:meth:`MotoEmr.set_step`, :meth:`set_serverless_run`, :meth:`set_eks_run`), which the next response
serialises. The small patches below make moto answer like AWS where it does not (notes/emr-moto.md):

* ``CancelSteps`` (moto: HTTP 500 NotImplemented): a PENDING step becomes CANCELLED, a RUNNING one
  CANCEL_PENDING (``SEND_INTERRUPT`` on current EMR releases), anything else is refused per step;
* ``FailureDetails`` in step statuses, from ``step.failure_details``; a ``Code`` in cluster
  ``StateChangeReason``, from ``cluster.state_change_code``;
* an unknown cluster in ``ListSteps``/``DescribeStep``/``CancelSteps`` answers AWS's
  ``InvalidRequestException: Cluster id '…' is not valid.`` (moto: HTTP 500 KeyError), and an unknown step
  in ``DescribeStep`` AWS's ``InvalidRequestException: Step id '…' is not valid.`` (moto: 200 ``{}``);
* ``ListSteps`` refuses more than 10 ``StepIds`` (AWS's documented limit; moto accepts any number);
* terminating a cluster cancels its active steps, with reason ``USER_REQUEST`` (moto leaves them running);
* job runs get their real creation time (moto truncates ``createdAt`` to midnight, which would hide them
  from a ``createdAfter`` filter);
* ``ListJobRuns`` of an EMR Serverless application without runs is an empty list (moto: ResourceNotFound).

Two switches for tests: :meth:`MotoEmr.fail` answers the next N calls of an action with an error
(``ThrottlingException``, 503, ``AccessDeniedException``...), and :meth:`dedupe_client_tokens` makes
``StartJobRun`` idempotent by ``clientToken`` as AWS is (moto starts a new run every time). Every request
is recorded as ``(service, action)`` in :attr:`MotoEmr.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from unittest import mock

import boto3
import pytest
from botocore.utils import parse_timestamp
from moto.core.responses import ActionResult, BaseResponse
from moto.emr import models as emr_models
from moto.emr.exceptions import InvalidCluster, InvalidRequestException, ValidationException
from moto.emr.responses import ElasticMapReduceResponse
from moto.emrcontainers import models as eks_models
from moto.emrserverless import models as serverless_models
from moto.server import ThreadedMotoServer

from durable_jobs.clients.base import JobClient
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.protocol import JobProtocol, ProtocolSettings
from durable_jobs.record import TaskIdentity
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness import waiting

T = TypeVar("T")

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/emr-job-role"
FOREIGN_ROLE_ARN = "arn:aws:iam::999999999999:role/not-ours"
EKS_RELEASE = "emr-7.1.0-latest"
_ACTIVE_STEP_STATES = ("PENDING", "RUNNING", "CANCEL_PENDING")


@dataclass
class Fault:
    code: str
    status: int
    message: str
    times: int
    applied: bool  # the call takes effect before the error is answered (a throttled call that landed anyway)


# --- the patches ----------------------------------------------------------------------------------------


def _cancel_steps(self: ElasticMapReduceResponse) -> ActionResult:
    cluster_id = self._get_param("ClusterId")
    step_ids = self._get_param("StepIds", [])
    cluster = self.backend.clusters.get(cluster_id)
    if cluster is None:
        raise InvalidCluster(cluster_id)
    steps = {s.id: s for s in cluster.steps}
    infos = []
    for sid in step_ids:
        step = steps.get(sid)
        if step is None:
            infos.append({"StepId": sid, "Status": "FAILED", "Reason": "Step not found"})
        elif step.state == "PENDING":
            step.state = "CANCELLED"
            infos.append({"StepId": sid, "Status": "SUBMITTED", "Reason": ""})
        elif step.state == "RUNNING":
            step.state = "CANCEL_PENDING"
            infos.append({"StepId": sid, "Status": "SUBMITTED", "Reason": ""})
        else:
            infos.append({"StepId": sid, "Status": "FAILED", "Reason": f"Step is in state {step.state}"})
    return ActionResult({"CancelStepsInfoList": infos})


def _patched_step_status(original: Any) -> property:
    def status(self: Any) -> dict[str, Any]:
        out = dict(original.fget(self))
        if getattr(self, "failure_details", None):
            out["FailureDetails"] = self.failure_details
        return out

    return property(status)


def _patched_cluster_status(original: Any) -> property:
    def status(self: Any) -> dict[str, Any]:
        out = dict(original.fget(self))
        code = getattr(self, "state_change_code", None)
        if code:
            out["StateChangeReason"] = {**(out.get("StateChangeReason") or {}), "Code": code}
        return out

    return property(status)


def _known_cluster(original: Any) -> Any:
    def wrapper(self: Any, cluster_id: str, *args: Any, **kwargs: Any) -> Any:
        if cluster_id not in self.clusters:
            raise InvalidCluster(cluster_id)
        return original(self, cluster_id, *args, **kwargs)

    return wrapper


def _known_step(original: Any) -> Any:
    def wrapper(self: Any, cluster_id: str, step_id: str) -> Any:
        step = original(self, cluster_id, step_id)
        if step is None:
            raise InvalidRequestException(f"Step id '{step_id}' is not valid.")
        return step

    return wrapper


def _list_steps_with_limit(original: Any) -> Any:
    def wrapper(self: Any, cluster_id: str, step_ids: list[str] | None = None, **kwargs: Any) -> Any:
        if step_ids and len(step_ids) > 10:
            raise ValidationException("You can specify a maximum of 10 step IDs.")
        return original(self, cluster_id, step_ids=step_ids, **kwargs)

    return wrapper


def _terminate_cancels_steps(original: Any) -> Any:
    def terminate(self: Any) -> None:
        original(self)
        self.state_change_code = getattr(self, "state_change_code", None) or "USER_REQUEST"
        for step in self.steps:
            if step.state in _ACTIVE_STEP_STATES:
                step.state = "CANCELLED"

    return terminate


def _real_created_at(original: Any) -> Any:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.created_at = datetime.now(timezone.utc).replace(tzinfo=None)
        if hasattr(self, "updated_at"):
            self.updated_at = self.created_at

    return init


def _lists_empty_applications(original: Any) -> Any:
    def list_job_runs(self: Any, application_id: str, **kwargs: Any) -> Any:
        if application_id in self.applications and application_id not in self.job_runs:
            return []
        return original(self, application_id, **kwargs)

    return list_job_runs


def aws_like_patches() -> list[Any]:
    """The patches above, not started: the in-process server and the server process (moto_emr_server) use them."""
    backend = emr_models.ElasticMapReduceBackend
    return [
        mock.patch.object(ElasticMapReduceResponse, "cancel_steps", _cancel_steps, create=True),
        mock.patch.object(emr_models.Step, "status", _patched_step_status(emr_models.Step.status)),
        mock.patch.object(emr_models.Cluster, "status", _patched_cluster_status(emr_models.Cluster.status)),
        mock.patch.object(emr_models.Cluster, "terminate", _terminate_cancels_steps(emr_models.Cluster.terminate)),
        mock.patch.object(backend, "describe_step", _known_cluster(_known_step(backend.describe_step))),
        mock.patch.object(backend, "list_steps", _known_cluster(_list_steps_with_limit(backend.list_steps))),
        mock.patch.object(serverless_models.JobRun, "__init__", _real_created_at(serverless_models.JobRun.__init__)),
        mock.patch.object(
            serverless_models.EMRServerlessBackend,
            "list_job_runs",
            _lists_empty_applications(serverless_models.EMRServerlessBackend.list_job_runs),
        ),
        mock.patch.object(eks_models.JobRun, "__init__", _real_created_at(eks_models.JobRun.__init__)),
    ]


# --- the server -----------------------------------------------------------------------------------------


class MotoClients:
    """Clients of a moto server at :attr:`endpoint` (in this process or its own), with moto's dummy credentials."""

    endpoint: str

    def boto(self, service: str, **kwargs: Any) -> Any:
        """A plain (sync) boto3 client for test set-up (``kwargs``: more ``boto3.client`` arguments, e.g. config)."""
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            **kwargs,
        )

    def config(self, **overrides: Any) -> AwsConfig:
        args: dict[str, Any] = {
            "region_name": REGION,
            "endpoint_url": self.endpoint,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "retry_budget": 5.0,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "label": "aws_moto",
        }
        args.update(overrides)
        return AwsConfig(**args)

    def connection(self, **extra: Any) -> str:
        """An ``aws`` connection (as AIRFLOW_CONN_* JSON) pointing at this server."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "region_name": REGION,
                    "endpoint_url": self.endpoint,
                    "durable_jobs": {"retry_budget": 5, "backoff_base": 0.01, "backoff_cap": 0.05},
                    **extra,
                },
            }
        )

    def create_application(self, name: str = "test-app") -> str:
        """An EMR Serverless application (``STARTED`` at once in moto)."""
        resp = self.boto("emr-serverless").create_application(name=name, releaseLabel="emr-7.1.0", type="SPARK")
        return str(resp["applicationId"])

    def create_cluster(self, name: str = "test-cluster", *, log_uri: str | None = "s3://logs/emr/") -> str:
        kwargs: dict[str, Any] = {
            "Name": name,
            "ReleaseLabel": "emr-7.1.0",
            "Instances": {"KeepJobFlowAliveWhenNoSteps": True, "InstanceCount": 1, "MasterInstanceType": "m5.xlarge"},
            "JobFlowRole": "EMR_EC2_DefaultRole",
            "ServiceRole": "EMR_DefaultRole",
        }
        if log_uri:
            kwargs["LogUri"] = log_uri
        return str(self.boto("emr").run_job_flow(**kwargs)["JobFlowId"])


class MotoEmr(MotoClients):
    """One in-process moto server (127.0.0.1, free port) with its backends in reach."""

    _shared: MotoEmr | None = None
    _users = 0
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self.requests: list[tuple[str, str]] = []
        self.faults: dict[tuple[str, str], Fault] = {}
        self._patches: list[Any] = []

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> MotoEmr:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._install_patches()
        self.server.start()
        host, port = self.server.get_host_and_port()
        assert host == "127.0.0.1"
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            for p in reversed(self._patches):
                p.stop()
            self._patches.clear()

    @classmethod
    def acquire(cls) -> MotoEmr:
        """The process's shared server, started on first use."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls().start()
            cls._users += 1
            return cls._shared

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._shared is not None:
                shared, cls._shared = cls._shared, None
                shared.stop()

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the local moto server
            assert resp.status == 200
        self.requests.clear()
        self.faults.clear()

    def _install_patches(self) -> None:
        server = self
        original_call_action = BaseResponse.call_action

        def call_action(response: BaseResponse) -> Any:
            service = str(response.service_name or "")
            action = response._get_action()
            server.requests.append((service, action))
            fault = server.faults.get((service, action))
            if fault is not None and fault.times > 0:
                fault.times -= 1
                if fault.applied:
                    original_call_action(response)
                body = json.dumps({"__type": fault.code, "message": fault.message, "Message": fault.message})
                headers = {
                    "Content-Type": "application/x-amz-json-1.1",
                    "x-amzn-ErrorType": fault.code,
                    "status": str(fault.status),
                }
                return fault.status, headers, body
            return original_call_action(response)

        patches = [mock.patch.object(BaseResponse, "call_action", call_action), *aws_like_patches()]
        for p in patches:
            p.start()
            self._patches.append(p)

    # --- switches ------------------------------------------------------------------------------------

    def fail(
        self,
        service: str,
        action: str,
        *,
        code: str = "ThrottlingException",
        status: int = 400,
        times: int = 1,
        message: str = "Rate exceeded",
        applied: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``action`` with an AWS error (after applying them, if ``applied``)."""
        self.faults[(service, action)] = Fault(code, status, message, times, applied)

    def count(self, service: str, action: str) -> int:
        return sum(1 for r in list(self.requests) if r == (service, action))

    @contextlib.contextmanager
    def dedupe_client_tokens(self) -> Iterator[None]:
        """``StartJobRun`` returns the existing run for a repeated ``clientToken``, like AWS."""
        sl_orig = serverless_models.EMRServerlessBackend.start_job_run
        eks_orig = eks_models.EMRContainersBackend.start_job_run

        def serverless_start(backend: Any, application_id: str, client_token: str, **kwargs: Any) -> Any:
            for run in backend.job_runs.get(application_id, []):
                if run.client_token == client_token:
                    return run
            return sl_orig(backend, application_id=application_id, client_token=client_token, **kwargs)

        def eks_start(backend: Any, **kwargs: Any) -> Any:
            for run in backend.job_runs.values():
                if (run.virtual_cluster_id, run.client_token) == (kwargs["virtual_cluster_id"], kwargs["client_token"]):
                    return run
            return eks_orig(backend, **kwargs)

        with (
            mock.patch.object(serverless_models.EMRServerlessBackend, "start_job_run", serverless_start),
            mock.patch.object(eks_models.EMRContainersBackend, "start_job_run", eks_start),
        ):
            yield

    # --- EMR on EC2 ----------------------------------------------------------------------------------

    @property
    def emr(self) -> Any:
        return emr_models.emr_backends[ACCOUNT][REGION]

    def cluster(self, cluster_id: str) -> Any:
        return self.emr.clusters[cluster_id]

    def steps(self, cluster_id: str) -> list[Any]:
        return list(self.emr.clusters[cluster_id].steps)

    def step(self, cluster_id: str, step_id: str) -> Any:
        for step in self.emr.clusters[cluster_id].steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def steps_with_token(self, cluster_id: str, token: str) -> list[Any]:
        return [s for s in self.steps(cluster_id) if f"[{token}]" in s.name]

    def set_step(
        self,
        cluster_id: str,
        step_id: str,
        state: str,
        *,
        reason: str | None = None,
        failure: dict[str, str] | None = None,
    ) -> None:
        step = self.step(cluster_id, step_id)
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # moto keeps naive UTC
        if state == "RUNNING" and step.start_date_time is None:
            step.start_date_time = now
        if state in ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"):
            step.start_date_time = step.start_date_time or now - timedelta(seconds=1)
            step.end_date_time = now
        if reason is not None:
            step.last_state_change_reason = reason
        if failure is not None:
            step.failure_details = failure
        step.state = state

    def set_cluster(self, cluster_id: str, state: str, *, code: str | None = None, message: str | None = None) -> None:
        cluster = self.cluster(cluster_id)
        cluster.state = state
        if code is not None:
            cluster.state_change_code = code
        if message is not None:
            cluster.last_state_change_reason = message

    def clusters_with_token(self, token: str) -> list[Any]:
        return [c for c in self.emr.clusters.values() if f"[{token}]" in c.name]

    # --- EMR Serverless ------------------------------------------------------------------------------

    @property
    def serverless(self) -> Any:
        return serverless_models.emrserverless_backends[ACCOUNT][REGION]

    def serverless_runs(self, application_id: str) -> list[Any]:
        return list(self.serverless.job_runs.get(application_id, []))

    def serverless_run(self, application_id: str, run_id: str) -> Any:
        for run in self.serverless.job_runs.get(application_id, []):
            if run.id == run_id:
                return run
        raise KeyError(run_id)

    def set_serverless_run(self, application_id: str, run_id: str, state: str, *, details: str | None = None) -> None:
        run = self.serverless_run(application_id, run_id)
        run.state = state
        if details is not None:
            run.state_details = details

    # --- EMR on EKS ----------------------------------------------------------------------------------

    @property
    def containers(self) -> Any:
        return eks_models.emrcontainers_backends[ACCOUNT][REGION]

    def create_virtual_cluster(self, name: str = "test-vc") -> str:
        namespace = f"spark-{len(self.containers.virtual_clusters)}"  # one virtual cluster per namespace
        resp = self.boto("emr-containers").create_virtual_cluster(
            name=name,
            containerProvider={"type": "EKS", "id": "eks-cluster", "info": {"eksInfo": {"namespace": namespace}}},
        )
        return str(resp["id"])

    def eks_runs(self, virtual_cluster_id: str) -> list[Any]:
        return [r for r in self.containers.job_runs.values() if r.virtual_cluster_id == virtual_cluster_id]

    def set_eks_run(
        self, run_id: str, state: str, *, failure_reason: str | None = None, details: str | None = None
    ) -> None:
        run = self.containers.job_runs[run_id]
        run.state = state
        if failure_reason is not None:
            run.failure_reason = failure_reason
        if details is not None:
            run.state_details = details


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoEmr]:
    server = MotoEmr.acquire()
    try:
        yield server
    finally:
        MotoEmr.release()


@pytest.fixture
def moto(moto_server: MotoEmr) -> MotoEmr:
    """The shared server, reset (no clusters, runs, faults or recorded requests)."""
    moto_server.reset()
    return moto_server


# --- the worker side, for protocol tests -----------------------------------------------------------------


class DictStore:
    """The task state store as a dict (the operator tests use Airflow's real accessor)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


@contextlib.contextmanager
def worker_loop() -> Iterator[Callable[[Awaitable[Any]], Any]]:
    """A private loop, like the operator's on a worker; its AWS clients are closed with it."""
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete
    finally:
        loop.run_until_complete(close_sessions())
        loop.close()


def protocol(
    client: JobClient[Any], store: DictStore, spec: Any, run: Callable[[Awaitable[Any]], Any], try_number: int = 1
) -> JobProtocol:
    return JobProtocol(
        client=client,
        store=store,
        identity=TaskIdentity("emr_dag", "run1", "task", -1, try_number),
        spec=lambda _record: spec,
        run=run,
        settings=ProtocolSettings(confirm_delay=0.0, lost_confirmations=2),
        sleep=lambda s: None,
    )


async def watch_until(watch: Any, predicate: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """Wait (with a deadline) until the poller shows ``watch`` a status satisfying ``predicate``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if watch.latest is not None and predicate(watch.latest):
            return watch.latest
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no matching status within {timeout}s; last seen {watch.latest}")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(watch.next(), remaining)


async def eventually(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait (with a deadline) until ``predicate()`` holds, checking every 10 ms."""
    await waiting.eventually(predicate, timeout=timeout, what=what, interval=0.01)


# --- a fake EMR speaking the wire protocols, for hostile answers and big listings --------------------------

_REAL_TIME = time.time  # the fake's clock is the real one, however a test skews the worker's
_KEY_ID_RE = re.compile(r"Credential=([^/,\s]+)/")


@dataclass
class Call:
    """One request the fake received: the service, the API action, its parameters and the signer's key id."""

    service: str
    action: str
    params: dict[str, Any]
    key_id: str
    headers: dict[str, str]


Hostile = Callable[[Call, Any], Awaitable[Any]]


class FakeEmr:
    """EMR (``ElasticMapReduce.*`` over awsJson1_1), EMR Serverless and EMR on EKS (REST-JSON) on 127.0.0.1.

    It keeps real state (clusters with steps, applications and virtual clusters with runs), pages like AWS
    (50 per page, steps newest first), dedupes ``StartJobRun`` by ``clientToken`` and answers AWS's errors
    for unknown ids. Tests make it hostile: :attr:`hostile` is awaited for every request and may answer
    instead (wrong types, truncated, huge, redirects, hangs: see the helpers below); :attr:`accepted_keys`
    makes it refuse other SigV4 access key ids like AWS (``UnrecognizedClientException``);
    :attr:`clock_skew` moves its clock (creation times, filters and the ``Date`` header).
    """

    PAGE = 50

    def __init__(self) -> None:
        self.endpoint = ""
        self.clusters: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, list[dict[str, Any]]] = {}  # cluster id -> steps, oldest first
        self.serverless: dict[str, list[dict[str, Any]]] = {}  # application id -> runs, oldest first
        self.eks: dict[str, list[dict[str, Any]]] = {}  # virtual cluster id -> runs, oldest first
        self.calls: list[Call] = []
        self.hostile: Hostile | None = None
        self.accepted_keys: set[str] | None = None
        self.clock_skew = 0.0
        self.release = asyncio.Event()  # set on stop: hanging handlers end
        self._runner: Any = None
        self._ids = 0

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> FakeEmr:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, bound = self._runner.addresses[0][:2]
        self.endpoint = f"http://{host}:{bound}"
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def now(self) -> float:
        return _REAL_TIME() + self.clock_skew

    def count(self, action: str, service: str | None = None) -> int:
        return sum(1 for c in self.calls if c.action == action and (service is None or c.service == service))

    def config(self, **overrides: Any) -> AwsConfig:
        args: dict[str, Any] = {
            "region_name": REGION,
            "endpoint_url": self.endpoint,
            "aws_access_key_id": "AKIAFAKEOLDKEY000001",
            "aws_secret_access_key": "fake-secret-old-0123456789abcdefghijklmn",
            "connect_timeout": 2.0,
            "read_timeout": 1.0,
            "retry_budget": 0.0,
            "backoff_base": 0.01,
            "backoff_cap": 0.02,
            "label": "aws_fake",
        }
        args.update(overrides)
        return AwsConfig(**args)

    def _id(self, prefix: str, upper: bool = True) -> str:
        self._ids += 1
        text = f"{self._ids:013d}{int(_REAL_TIME() * 1000) % 10**6:06d}"[-13:]
        return f"{prefix}{text}" if upper else f"{prefix}{text}".lower()

    # --- state (tests set it up directly) ---------------------------------------------------------------

    def add_cluster(self, name: str = "fake-cluster", *, state: str = "WAITING", created: float | None = None) -> str:
        cid = self._id("j-ABC")
        self.clusters[cid] = {
            "Id": cid,
            "Name": name,
            "Status": {
                "State": state,
                "StateChangeReason": {},
                "Timeline": {"CreationDateTime": self.now() if created is None else created},
            },
            "LogUri": "s3://fake-logs/emr/",
        }
        self.steps[cid] = []
        return cid

    def add_step(
        self, cluster_id: str, name: str = "step", *, state: str = "RUNNING", created: float | None = None
    ) -> str:
        sid = self._id("s-ABC")
        self.steps[cluster_id].append(
            {
                "Id": sid,
                "Name": name,
                "Config": {"Jar": "command-runner.jar", "Args": []},
                "ActionOnFailure": "CONTINUE",
                "Status": {
                    "State": state,
                    "StateChangeReason": {},
                    "Timeline": {"CreationDateTime": self.now() if created is None else created},
                },
            }
        )
        return sid

    def step(self, cluster_id: str, step_id: str) -> dict[str, Any]:
        return next(s for s in self.steps[cluster_id] if s["Id"] == step_id)

    def set_step(self, cluster_id: str, step_id: str, state: str) -> None:
        self.step(cluster_id, step_id)["Status"]["State"] = state

    def add_application(self) -> str:
        app = self._id("00app", upper=False)
        self.serverless[app] = []
        return app

    def add_virtual_cluster(self) -> str:
        vc = self._id("vc", upper=False)
        self.eks[vc] = []
        return vc

    def add_run(
        self,
        container: str,
        *,
        name: str = "run",
        state: str = "RUNNING",
        client_token: str | None = None,
        tags: dict[str, str] | None = None,
        created: float | None = None,
    ) -> str:
        rid = self._id("00run", upper=False)
        created = self.now() if created is None else created
        if container in self.serverless:
            self.serverless[container].append(
                {
                    "applicationId": container,
                    "id": rid,
                    "name": name,
                    "arn": f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications/{container}/jobruns/{rid}",
                    "createdBy": "arn:aws:iam::123456789012:user/airflow",
                    "createdAt": created,
                    "updatedAt": created,
                    "executionRole": ROLE_ARN,
                    "state": state,
                    "stateDetails": "",
                    "releaseLabel": "emr-7.1.0",
                    "type": "Spark",
                    "clientToken": client_token,
                    "tags": dict(tags or {}),
                }
            )
        else:
            self.eks[container].append(
                {
                    "id": rid,
                    "name": name,
                    "virtualClusterId": container,
                    "arn": f"arn:aws:emr-containers:{REGION}:{ACCOUNT}:/virtualclusters/{container}/jobruns/{rid}",
                    "state": state,
                    "clientToken": client_token,
                    "executionRoleArn": ROLE_ARN,
                    "releaseLabel": EKS_RELEASE,
                    "createdAt": created,
                    "createdBy": "arn:aws:iam::123456789012:user/airflow",
                    "tags": dict(tags or {}),
                }
            )
        return rid

    def run(self, container: str, run_id: str) -> dict[str, Any]:
        runs = self.serverless.get(container) or self.eks.get(container) or []
        return next(r for r in runs if r["id"] == run_id)

    # --- the wire ----------------------------------------------------------------------------------------

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        auth = request.headers.get("Authorization", "")
        match = _KEY_ID_RE.search(auth)
        key_id = match.group(1) if match else ""
        target = request.headers.get("X-Amz-Target", "")
        if target.startswith("ElasticMapReduce."):
            service, action = "emr", target.split(".", 1)[1]
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                params = {}
        else:
            service, action, params = self._rest_call(request, body)
        call = Call(service, action, params, key_id, {k: v for k, v in request.headers.items()})
        self.calls.append(call)
        if self.accepted_keys is not None and key_id not in self.accepted_keys:
            return self._error(
                service, "UnrecognizedClientException", "The security token included in the request is invalid.", 403
            )
        if self.hostile is not None:
            answer = await self.hostile(call, request)
            if answer is not None:
                return answer
        try:
            result = self._answer(service, action, params)
        except _FakeError as exc:
            return self._error(service, exc.code, exc.message, exc.status)
        headers = {"Date": email.utils.formatdate(self.now(), usegmt=True), "x-amzn-RequestId": "fake"}
        content_type = "application/x-amz-json-1.1" if service == "emr" else "application/json"
        return web.Response(body=json.dumps(result).encode(), content_type=content_type, headers=headers)

    def _rest_call(self, request: Any, body: bytes) -> tuple[str, str, dict[str, Any]]:
        parts = [p for p in request.path.split("/") if p]
        service = "emr-serverless" if parts[:1] == ["applications"] else "emr-containers"
        params: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            params.update(json.loads(body or b"{}"))
        for key in set(request.query.keys()):
            values = request.query.getall(key)
            params[key] = values if key == "states" else values[0]
        if len(parts) >= 2:
            params["container"] = parts[1]
        if len(parts) >= 4:
            params["runId"] = parts[3]
        method = request.method
        if len(parts) == 3 and method == "POST":
            action = "StartJobRun"
        elif len(parts) == 3:
            action = "ListJobRuns"
        elif method == "DELETE":
            action = "CancelJobRun"
        else:
            action = "GetJobRun" if service == "emr-serverless" else "DescribeJobRun"
        return service, action, params

    def _error(self, service: str, code: str, message: str, status: int) -> Any:
        from aiohttp import web

        if service == "emr":
            return web.Response(
                status=status,
                body=json.dumps({"__type": code, "Message": message}).encode(),
                content_type="application/x-amz-json-1.1",
            )
        return web.Response(
            status=status,
            body=json.dumps({"message": message}).encode(),
            content_type="application/json",
            headers={"x-amzn-ErrorType": code},
        )

    # --- the API -----------------------------------------------------------------------------------------

    def answer(self, call: Call) -> dict[str, Any] | None:
        """What the fake would answer (and do) for ``call``; None for an error answer. For hostile hooks."""
        try:
            return self._answer(call.service, call.action, dict(call.params))
        except _FakeError:
            return None

    def _answer(self, service: str, action: str, p: dict[str, Any]) -> dict[str, Any]:
        if service == "emr":
            return getattr(self, f"_emr_{action}")(p)  # type: ignore[no-any-return]
        return self._runs(service, action, p)

    def _cluster(self, cluster_id: Any) -> dict[str, Any]:
        cluster = self.clusters.get(cluster_id) if isinstance(cluster_id, str) else None
        if cluster is None:
            raise _FakeError("InvalidRequestException", f"Cluster id '{cluster_id}' is not valid.")
        return cluster

    def _cluster_id(self, cluster_id: Any) -> str:
        """``cluster_id`` once it is known to name a cluster."""
        return str(self._cluster(cluster_id)["Id"])

    def _emr_DescribeCluster(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Cluster": self._cluster(p.get("ClusterId"))}

    def _emr_ListClusters(self, p: dict[str, Any]) -> dict[str, Any]:
        after = float(p.get("CreatedAfter") or 0)
        states = p.get("ClusterStates")
        found = [
            c
            for c in reversed(list(self.clusters.values()))
            if c["Status"]["Timeline"]["CreationDateTime"] >= after and (not states or c["Status"]["State"] in states)
        ]
        return self._page(found, p.get("Marker"), "Clusters", "Marker")

    def _emr_RunJobFlow(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self.add_cluster(p.get("Name", ""), state="STARTING")
        return {"JobFlowId": cid, "ClusterArn": f"arn:aws:elasticmapreduce:{REGION}:{ACCOUNT}:cluster/{cid}"}

    def _emr_TerminateJobFlows(self, p: dict[str, Any]) -> dict[str, Any]:
        for cid in p.get("JobFlowIds") or ():
            self._cluster(cid)["Status"]["State"] = "TERMINATED"
        return {}

    def _emr_AddJobFlowSteps(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._cluster_id(p.get("JobFlowId"))
        ids = [self.add_step(cid, s.get("Name", ""), state="PENDING") for s in p.get("Steps") or ()]
        return {"StepIds": ids}

    def _emr_DescribeStep(self, p: dict[str, Any]) -> dict[str, Any]:
        cid, sid = self._cluster_id(p.get("ClusterId")), p.get("StepId")
        for step in self.steps[cid]:
            if step["Id"] == sid:
                return {"Step": step}
        raise _FakeError("InvalidRequestException", f"Step id '{sid}' is not valid.")

    def _emr_ListSteps(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._cluster_id(p.get("ClusterId"))
        ids, states = p.get("StepIds"), p.get("StepStates")
        if ids and len(ids) > 10:
            raise _FakeError("ValidationException", "You can specify a maximum of 10 step IDs.")
        steps = self.steps[cid]
        if not ids and not states:
            return self._page(steps, p.get("Marker"), "Steps", "Marker", newest_first=True)
        found = [
            s for s in reversed(steps) if (not ids or s["Id"] in ids) and (not states or s["Status"]["State"] in states)
        ]
        return self._page(found, p.get("Marker"), "Steps", "Marker")

    def _emr_CancelSteps(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = self._cluster_id(p.get("ClusterId"))
        infos = []
        for sid in p.get("StepIds") or ():
            step = next((s for s in self.steps[cid] if s["Id"] == sid), None)
            if step is None or step["Status"]["State"] not in ("PENDING", "RUNNING"):
                infos.append({"StepId": sid, "Status": "FAILED", "Reason": "not cancellable"})
            else:
                step["Status"]["State"] = "CANCELLED" if step["Status"]["State"] == "PENDING" else "CANCEL_PENDING"
                infos.append({"StepId": sid, "Status": "SUBMITTED", "Reason": ""})
        return {"CancelStepsInfoList": infos}

    def _page(
        self, items: list[Any], marker: Any, key: str, marker_key: str, *, newest_first: bool = False, size: int = 0
    ) -> dict[str, Any]:
        size = size or self.PAGE
        start = int(marker) if isinstance(marker, str) and marker.isdigit() else 0
        if newest_first:  # items oldest first: slice from the end without copying the whole list
            end = len(items) - start
            chunk = list(reversed(items[max(0, end - size) : max(0, end)]))
        else:
            chunk = items[start : start + size]
        out: dict[str, Any] = {key: chunk}
        if start + size < len(items):
            out[marker_key] = str(start + size)
        return out

    def _runs(self, service: str, action: str, p: dict[str, Any]) -> dict[str, Any]:
        serverless = service == "emr-serverless"
        store = self.serverless if serverless else self.eks
        container = p.get("container")
        what = "Application" if serverless else "Virtual cluster"
        if container not in store:
            code = "ResourceNotFoundException" if serverless or action != "ListJobRuns" else "ValidationException"
            raise _FakeError(code, f"{what} {container} doesn't exist.", 404 if code.startswith("Resource") else 400)
        runs = store[container]
        if action == "StartJobRun":
            token = p.get("clientToken")
            same = next((r for r in runs if token and r.get("clientToken") == token), None)
            if same is not None:
                rid = same["id"]
            else:
                state = "SUBMITTED" if serverless else "PENDING"
                rid = self.add_run(
                    container, name=p.get("name", ""), state=state, client_token=token, tags=p.get("tags")
                )
            if serverless:
                return {"applicationId": container, "jobRunId": rid, "arn": "arn:fake"}
            return {"id": rid, "name": p.get("name", ""), "arn": "arn:fake", "virtualClusterId": container}
        if action == "ListJobRuns":
            after_key = "createdAtAfter" if serverless else "createdAfter"
            after = parse_timestamp(p[after_key]).timestamp() if p.get(after_key) else 0.0
            states = p.get("states")
            found = [r for r in reversed(runs) if r["createdAt"] >= after and (not states or r["state"] in states)]
            size = min(int(p.get("maxResults") or self.PAGE), self.PAGE)
            page = self._page(found, p.get("nextToken"), "jobRuns", "nextToken", size=size)
            if serverless:
                page["jobRuns"] = [
                    {k: v for k, v in r.items() if k not in ("tags", "clientToken")} for r in page["jobRuns"]
                ]
            return page
        run = next((r for r in runs if r["id"] == p.get("runId")), None)
        if run is None:
            raise _FakeError("ResourceNotFoundException", f"Job run {p.get('runId')} doesn't exist.", 404)
        if action == "CancelJobRun":
            run["state"] = "CANCELLED"
            return {"applicationId": container, "jobRunId": run["id"]} if serverless else {"id": run["id"]}
        if serverless:
            whole = {k: v for k, v in run.items() if k != "id"}
            return {"jobRun": {**whole, "jobRunId": run["id"]}}
        return {"jobRun": run}


class _FakeError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# --- hostile answers (for FakeEmr.hostile) -----------------------------------------------------------------


def answer_json(value: Any, *, status: int = 200, service: str = "emr") -> Any:
    from aiohttp import web

    content_type = "application/x-amz-json-1.1" if service == "emr" else "application/json"
    return web.Response(status=status, body=json.dumps(value).encode(), content_type=content_type)


def answer_raw(
    body: bytes, *, status: int = 200, content_type: str = "application/x-amz-json-1.1", **headers: str
) -> Any:
    from aiohttp import web

    return web.Response(status=status, body=body, content_type=content_type, headers=headers)


async def answer_truncated(request: Any, body: bytes, declared: int) -> Any:
    """Headers promising ``declared`` bytes, then ``body``, then the connection closes (a reset mid-answer)."""
    from aiohttp import web

    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Content-Length": str(declared)}
    )
    await response.prepare(request)
    await response.write(body)
    request.transport.close()
    return response


async def answer_streamed(request: Any, chunk: bytes, times: int) -> Any:
    """A chunked body (no Content-Length) of ``times`` chunks: a huge answer that does not say its size."""
    from aiohttp import web

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for _ in range(times):
            await response.write(chunk)
    except (ConnectionError, RuntimeError):
        return response
    await response.write_eof()
    return response


async def answer_never(fake: FakeEmr) -> Any:
    """A hang: no answer until the fake stops."""
    await fake.release.wait()
    return answer_raw(b"{}")


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth
