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
  ``InvalidRequestException: Cluster id '…' is not valid.`` (moto: HTTP 500 KeyError);
* ``ListSteps`` refuses more than 10 ``StepIds`` (AWS's documented limit; moto accepts any number);
* terminating a cluster cancels its active steps, with reason ``USER_REQUEST`` (moto leaves them running);
* job runs get their real creation time (moto truncates ``createdAt`` to midnight, which would hide them
  from a ``createdAfter`` filter).

Two switches for tests: :meth:`MotoEmr.fail` answers the next N calls of an action with an error
(``ThrottlingException``, 503, ``AccessDeniedException``...), and :meth:`dedupe_client_tokens` makes
``StartJobRun`` idempotent by ``clientToken`` as AWS is (moto starts a new run every time). Every request
is recorded as ``(service, action)`` in :attr:`MotoEmr.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from unittest import mock

import boto3
import pytest
from moto.core.responses import ActionResult, BaseResponse
from moto.emr import models as emr_models
from moto.emr.exceptions import InvalidCluster, ValidationException
from moto.emr.responses import ElasticMapReduceResponse
from moto.emrcontainers import models as eks_models
from moto.emrserverless import models as serverless_models
from moto.server import ThreadedMotoServer

from durable_jobs.clients.aws import AwsConfig
from durable_jobs.clients.base import JobClient
from durable_jobs.protocol import JobProtocol, ProtocolSettings
from durable_jobs.record import TaskIdentity
from durable_jobs.transport.http import close_sessions

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


# --- the server -----------------------------------------------------------------------------------------


class MotoEmr:
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
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:
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

        backend = emr_models.ElasticMapReduceBackend
        patches = [
            mock.patch.object(BaseResponse, "call_action", call_action),
            mock.patch.object(ElasticMapReduceResponse, "cancel_steps", _cancel_steps, create=True),
            mock.patch.object(emr_models.Step, "status", _patched_step_status(emr_models.Step.status)),
            mock.patch.object(emr_models.Cluster, "status", _patched_cluster_status(emr_models.Cluster.status)),
            mock.patch.object(emr_models.Cluster, "terminate", _terminate_cancels_steps(emr_models.Cluster.terminate)),
            mock.patch.object(backend, "describe_step", _known_cluster(backend.describe_step)),
            mock.patch.object(backend, "list_steps", _known_cluster(_list_steps_with_limit(backend.list_steps))),
            mock.patch.object(
                serverless_models.JobRun, "__init__", _real_created_at(serverless_models.JobRun.__init__)
            ),
            mock.patch.object(eks_models.JobRun, "__init__", _real_created_at(eks_models.JobRun.__init__)),
        ]
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

    # --- clients and configs -------------------------------------------------------------------------

    def boto(self, service: str) -> Any:
        """A plain (sync) boto3 client for test set-up."""
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
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

    # --- EMR on EC2 ----------------------------------------------------------------------------------

    @property
    def emr(self) -> Any:
        return emr_models.emr_backends[ACCOUNT][REGION]

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

    def create_application(self, name: str = "test-app") -> str:
        resp = self.boto("emr-serverless").create_application(name=name, releaseLabel="emr-7.1.0", type="SPARK")
        return str(resp["applicationId"])

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
        spec=lambda: spec,
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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.01)
