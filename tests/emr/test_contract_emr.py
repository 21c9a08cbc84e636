"""The EMR clients pass the JobClient contract suite, against moto (EMR on EC2 steps and clusters, EMR Serverless,
EMR on EKS).

The moto server is shared by the session, so "unreachable" is a TCP relay in front of it that stops listening and
drops its connections (connections refused), then listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar
from unittest import mock

import moto.emr.models as emr_models
import moto.emrserverless.exceptions as serverless_errors
import moto.emrserverless.models as serverless_models
import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.emr import (
    EmrCluster,
    EmrClusterClient,
    EmrEksClient,
    EmrEksJob,
    EmrServerlessClient,
    EmrServerlessJob,
    EmrStep,
    EmrStepClient,
)
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract, endpoint_down
from durable_jobs_harness.moto_emr import EKS_RELEASE, ROLE_ARN, MotoEmr, moto, moto_server  # noqa: F401

STEP_STATES = {JobState.SUCCEEDED: "COMPLETED", JobState.FAILED: "FAILED"}
JOB_FLOW = {
    "ReleaseLabel": "emr-7.1.0",
    "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge"},
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
}


class Relay:
    """127.0.0.1:<port> -> ``target``, byte for byte, until :meth:`close`; :meth:`open` listens on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


class AwsContract(JobClientContract):
    """What the EMR suites share: moto behind a relay that can refuse connections."""

    settle_timeout = 10.0

    @pytest.fixture(autouse=True)
    async def _aws(self, moto: MotoEmr) -> AsyncIterator[None]:  # noqa: F811
        self.moto = moto
        self.relay = Relay(int(moto.endpoint.rsplit(":", 1)[1]))
        await self.relay.open()
        try:
            yield
        finally:
            await self.relay.close()

    def aws_config(self) -> Any:
        return self.moto.config(endpoint_url=self.relay.url, retry_budget=0.5, connect_timeout=2.0, read_timeout=5.0)

    def unreachable(self) -> AbstractAsyncContextManager[None]:
        return endpoint_down(self.relay.close, self.relay.open)


class TestEmrStepContract(AwsContract):
    @pytest.fixture(autouse=True)
    async def _cluster(self, _aws: None) -> AsyncIterator[None]:
        self.cluster_id = self.moto.create_cluster("contract")
        # EMR moves a cancelled running step from CANCEL_PENDING to CANCELLED; moto leaves it pending
        task = asyncio.get_running_loop().create_task(self._emr_cancels())
        try:
            yield
        finally:
            task.cancel()

    async def _emr_cancels(self) -> None:
        while True:
            for step in self.moto.steps(self.cluster_id):
                if step.state == "CANCEL_PENDING":
                    self.moto.set_step(self.cluster_id, step.id, "CANCELLED")
            await asyncio.sleep(0.1)

    async def make_client(self) -> JobClient[Any]:
        return EmrStepClient(self.aws_config())

    def make_spec(self) -> EmrStep:
        return EmrStep(cluster_id=self.cluster_id, name="contract", args=["sleep", "600"])

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.moto.set_step(locator["cluster_id"], locator["step_id"], STEP_STATES[state])

    async def vanish(self, locator: Locator) -> None:
        cluster = self.moto.cluster(locator["cluster_id"])
        cluster.steps = [s for s in cluster.steps if s.id != locator["step_id"]]


class TestEmrClusterContract(AwsContract):
    """A cluster's job succeeds once the cluster is up (``WAITING``/``RUNNING``), and cancel terminates it: a success
    is a live resource that cancel releases, ending ``TERMINATED`` by ``USER_REQUEST`` (cancelled)."""

    cancel_ends_success_as = (JobState.CANCELLED,)
    ended: ClassVar[dict[JobState, tuple[str, str]]] = {
        JobState.SUCCEEDED: ("WAITING", ""),
        JobState.FAILED: ("TERMINATED_WITH_ERRORS", "BOOTSTRAP_FAILURE"),
    }

    @pytest.fixture(autouse=True)
    async def _like_aws(self, _aws: None) -> AsyncIterator[None]:
        """Three gaps of moto's EMR closed as AWS behaves: a new cluster is ``STARTING`` (moto: ``WAITING`` at once),
        terminating it goes through ``TERMINATING`` (moto: ``TERMINATED`` at once; a task here ends it, as EMR
        does), and terminating a cluster that has already terminated changes nothing (moto terminates it again)."""
        cluster = emr_models.Cluster
        terminated = cluster.terminate  # the harness's: TERMINATED by USER_REQUEST, its steps cancelled

        def terminating(self: Any) -> None:
            if self.state not in ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"):
                self.state = "TERMINATING"

        async def emr_terminates() -> None:
            while True:
                for c in list(self.moto.emr.clusters.values()):
                    if c.state == "TERMINATING":
                        terminated(c)
                await asyncio.sleep(0.1)

        with (
            mock.patch.object(cluster, "run_bootstrap_actions", lambda self: None),
            mock.patch.object(cluster, "terminate", terminating),
        ):
            task = asyncio.get_running_loop().create_task(emr_terminates())
            try:
                yield
            finally:
                task.cancel()

    async def make_client(self) -> JobClient[Any]:
        return EmrClusterClient(self.aws_config())

    def make_spec(self) -> EmrCluster:
        return EmrCluster(name="contract", job_flow=JOB_FLOW)

    async def end_job(self, locator: Locator, state: JobState) -> None:
        raw, code = self.ended[state]
        self.moto.set_cluster(locator["cluster_id"], raw, code=code)

    async def vanish(self, locator: Locator) -> None:
        del self.moto.emr.clusters[locator["cluster_id"]]


class RunContract(AwsContract):
    """EMR Serverless and EMR on EKS: job runs in a container (an application, a virtual cluster)."""

    ended: ClassVar[dict[JobState, str]]

    @pytest.fixture(autouse=True)
    def _container(self, _aws: None, _like_aws: None) -> Iterator[None]:
        self.container = self.new_container()
        with self.moto.dedupe_client_tokens():  # StartJobRun returns the run of a repeated clientToken, as AWS does
            yield

    @pytest.fixture
    def _like_aws(self) -> None:
        """Where moto differs from AWS in a way the suite sees, a subclass closes the gap (before the token dedupe)."""

    def new_container(self) -> str:
        raise NotImplementedError

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.set_state(locator, self.ended[state])

    def set_state(self, locator: Locator, state: str) -> None:
        raise NotImplementedError


class TestEmrServerlessContract(RunContract):
    ended = {JobState.SUCCEEDED: "SUCCESS", JobState.FAILED: "FAILED"}

    @pytest.fixture
    def _like_aws(self) -> Iterator[None]:
        """Two gaps of moto's EMR Serverless closed as AWS behaves: a run starts SUBMITTED (moto: SUCCESS at
        once), and a run that has ended cannot be cancelled (moto makes it CANCELLED)."""
        backend = serverless_models.EMRServerlessBackend
        start, cancel = backend.start_job_run, backend.cancel_job_run

        def submitted(self: Any, **kwargs: Any) -> Any:
            run = start(self, **kwargs)
            run.state = "SUBMITTED"
            return run

        def refuse_ended(self: Any, application_id: str, job_run_id: str) -> Any:
            for run in self.job_runs.get(application_id, []):
                if run.id == job_run_id and run.state in ("SUCCESS", "FAILED", "CANCELLED"):
                    raise serverless_errors.ValidationException("Job run is not cancellable")
            return cancel(self, application_id, job_run_id)

        with (
            mock.patch.object(backend, "start_job_run", submitted),
            mock.patch.object(backend, "cancel_job_run", refuse_ended),
        ):
            yield

    def new_container(self) -> str:
        return self.moto.create_application("contract")

    async def make_client(self) -> JobClient[Any]:
        return EmrServerlessClient(self.aws_config())

    def make_spec(self) -> EmrServerlessJob:
        driver = {"sparkSubmit": {"entryPoint": "s3://b/etl.py"}}
        return EmrServerlessJob(application_id=self.container, execution_role_arn=ROLE_ARN, job_driver=driver, name="c")

    def set_state(self, locator: Locator, state: str) -> None:
        self.moto.set_serverless_run(locator["application_id"], locator["job_run_id"], state)

    async def vanish(self, locator: Locator) -> None:
        runs = self.moto.serverless.job_runs[locator["application_id"]]
        runs[:] = [r for r in runs if r.id != locator["job_run_id"]]


class TestEmrEksContract(RunContract):
    ended = {JobState.SUCCEEDED: "COMPLETED", JobState.FAILED: "FAILED"}

    def new_container(self) -> str:
        return self.moto.create_virtual_cluster("contract")

    async def make_client(self) -> JobClient[Any]:
        return EmrEksClient(self.aws_config())

    def make_spec(self) -> EmrEksJob:
        driver = {"sparkSubmitJobDriver": {"entryPoint": "s3://b/etl.py"}}
        return EmrEksJob(
            virtual_cluster_id=self.container,
            name="c",
            execution_role_arn=ROLE_ARN,
            release_label=EKS_RELEASE,
            job_driver=driver,
        )

    def set_state(self, locator: Locator, state: str) -> None:
        self.moto.set_eks_run(locator["job_run_id"], state)

    async def vanish(self, locator: Locator) -> None:
        del self.moto.containers.job_runs[locator["job_run_id"]]
