"""One measured trigger process of benchmarks/triggerer_scale.py: N jobs of one system, then a JSON line.

    python benchmarks/bench_children.py SPEC.json

Started by the harness, once per system and N, so that each figure is its own process's. The library's
systems and the floors run in the project's venv; the providers' triggers in ``build/bench-venv`` (their
packages conflict with the project's pins), which is why nothing here imports the library at module level.

Systems:

* ``durable-spark``: :class:`SparkStandaloneTrigger` against the fake master (one shared poller: one
  ``/json/`` per interval, REST only for drivers it reports ended);
* ``durable-kube``: :class:`KubernetesTrigger` on pods (one shared list+watch per namespace);
* ``durable-emr``: :class:`EmrStepTrigger` (one shared poller, ``ListSteps`` per cluster of 250 steps);
* ``durable-databricks``: :class:`DatabricksTrigger` (one shared poller, one ``runs/list?active_only=true`` walk
  of 24 runs a page per workspace, ``runs/get`` only for runs that left it);
* ``durable-glue``: :class:`GlueTrigger` (one shared poller, one ``GetJobRuns`` walk per job name of 200 runs a
  page, ``GetJobRun`` only for runs it did not list);
* ``durable-bigquery``: :class:`BigQueryTrigger` (one shared poller, one walk of the pending and running jobs,
  ``jobs.list`` of 1,000 a page per project, ``jobs.get`` only for jobs that left it);
* ``floor``: a bare coroutine per job on one shared aiohttp session, GETting its driver's REST status every
  interval until it ends: per-job polling at its cheapest;
* ``floor-batched``: one bare loop GETting the master's ``/json/`` every interval (``resp.json()``, i.e.
  ``json.loads``) and waking the job coroutines whose driver ended: the batched design with nothing around it;
* ``floor-typed``: the same loop decoding ``/json/`` with msgspec straight into ``(id, state)`` structs: the
  typed-decode floor of a batched poll (issue 12: GET + typed decode of the same document, nothing else);
* ``livy``: the apache-livy provider's ``LivyTrigger``;
* ``kube-pod``: the cncf-kubernetes provider's ``KubernetesPodTrigger``;
* ``emr-step``: the amazon provider's ``EmrStepSensorTrigger``;
* ``databricks-run``: the databricks provider's ``DatabricksExecutionTrigger`` (``runs/get`` per run and poll);
* ``glue-job``: the amazon provider's ``GlueJobCompleteTrigger`` (a ``GetJobRun`` waiter per run and poll);
* ``bigquery-job``: the google provider's ``BigQueryInsertJobTrigger`` (``jobs.get`` per job and poll, through
  google-cloud-bigquery's client in a thread).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from bench_probe import Control, System, configure_triggerer_logging, end_offsets, run_phases  # noqa: E402

Job = Callable[[int], Awaitable[str]]
TOKEN = "dj" + "0" * 20
# a /json/ of 100,000 drivers is about 26 MB: the connection's ceiling is raised, as a user with that many must
SPARK_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def control(spec: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    url = spec["urls"]["control"] + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def set_connection(conn_id: str, conn: dict[str, Any]) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)


async def first_event(trigger: Any) -> dict[str, Any]:
    """What the triggerer does with a deferred task's trigger: its first event, then cleanup."""
    gen = trigger.run()
    try:
        event = await gen.__anext__()
    finally:
        await gen.aclose()
        await trigger.cleanup()
    return dict(event.payload)


# --- the library --------------------------------------------------------------------------------------------


async def library_first_full_poll(n: int, timeout: float) -> bool:
    """Every trigger has its watch, and each poller has handed out a poll that started after the last one came.

    Reads the pollers' bookkeeping (``polls``; ``_nap`` is set while a poller sleeps between polls, so a poll
    under way at the first look may predate the last watch and does not count).
    """
    from durable_jobs.polling import active_pollers

    deadline = time.monotonic() + timeout
    while sum(len(p._watches) for p in active_pollers()) < n:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    pollers = active_pollers()
    need = {id(p): p.polls + (1 if p._nap is not None else 2) for p in pollers}
    while not all(p.polls >= need[id(p)] and p._nap is not None for p in pollers):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.1)  # the last slice of woken waiters runs
    return True


def durable(
    trigger_class: Any,
    conn_id: str,
    locator: Callable[[int], dict[str, Any]],
    interval: float,
    token: Callable[[int], str] = lambda i: TOKEN,
) -> System:
    """Job i: a library trigger on ``locator(i)``, as the operator defers it (with an hour's deadline)."""

    async def job(i: int) -> str:
        trigger = trigger_class(
            job=locator(i),
            conn_id=conn_id,
            token=token(i),
            generation=0,
            poll_interval=interval,
            deadline=time.time() + 3600,
        )
        return str((await first_event(trigger))["status"])

    return System(job, library_first_full_poll)


async def warm_transport() -> None:
    """aiohttp, which the library imports at its first request (in a thread): once per triggerer process, as the
    providers' modules import it when they load, outside the windows."""
    from durable_jobs.transport.http import DEFAULT_TRANSPORT

    await DEFAULT_TRANSPORT.load()


async def durable_spark(spec: dict[str, Any]) -> System:
    from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
    from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger

    url = spec["urls"]["spark"]
    port = int(url.rsplit(":", 1)[1])
    set_connection(
        "bench_spark",
        {
            "conn_type": "spark_standalone_rest",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"master_ui_urls": url, "max_response_bytes": SPARK_MAX_RESPONSE_BYTES},
        },
    )
    await SparkStandaloneHook.aget_client("bench_spark")  # a long-running triggerer has it cached
    await warm_transport()
    ids = spec["setup"]["ids"]
    return durable(SparkStandaloneTrigger, "bench_spark", lambda i: {"driver_id": ids[i]}, spec["interval"])


async def durable_kube(spec: dict[str, Any]) -> System:
    from durable_jobs.hooks.kubernetes import KubernetesHook
    from durable_jobs.triggers.kubernetes import KubernetesTrigger

    setup = spec["setup"]
    namespace = setup["namespace"]
    set_connection(
        "bench_kube_durable",
        {
            "conn_type": "kubernetes_durable",
            "extra": {"kube_config_path": spec["urls"]["kubeconfig"], "namespace": namespace, "watch": True},
        },
    )
    client = await KubernetesHook.aget_client("bench_kube_durable")
    await client.version()  # type: ignore[attr-defined]  # connected once: TLS context, kubeconfig

    def pod(i: int) -> dict[str, Any]:
        return {"kind": "Pod", "namespace": namespace, "name": setup["ids"][i], "uid": setup["uids"][i]}

    return durable(KubernetesTrigger, "bench_kube_durable", pod, spec["interval"], token=lambda i: f"dj{i:020x}")


async def durable_emr(spec: dict[str, Any]) -> System:
    from durable_jobs.hooks.emr import EmrStepHook
    from durable_jobs.triggers.emr import EmrStepTrigger

    setup = spec["setup"]
    set_connection("bench_aws_durable", aws_connection(spec))
    client = await EmrStepHook.aget_client("bench_aws_durable")
    # one call first, as for the provider: botocore's endpoints and service model are process-wide caches
    await client.status({"cluster_id": setup["cluster_ids"][0], "step_id": setup["ids"][0]})

    def step(i: int) -> dict[str, Any]:
        return {"cluster_id": setup["cluster_ids"][i], "step_id": setup["ids"][i]}

    return durable(EmrStepTrigger, "bench_aws_durable", step, spec["interval"])


async def durable_databricks(spec: dict[str, Any]) -> System:
    from durable_jobs.triggers.databricks import DatabricksTrigger

    ids = spec["setup"]["ids"]
    set_connection("bench_databricks_durable", databricks_connection(spec, "databricks_durable", list_limit=24))
    client = await DatabricksTrigger.hook_class.aget_client("bench_databricks_durable")
    await client.status({"run_id": ids[0]})  # one call first, as for the provider: connected once
    return durable(DatabricksTrigger, "bench_databricks_durable", lambda i: {"run_id": ids[i]}, spec["interval"])


def databricks_connection(spec: dict[str, Any], conn_type: str, **extra: Any) -> dict[str, Any]:
    """The stub workspace, its PAT in the password (login empty), as both connection types read it."""
    port = int(spec["urls"]["databricks"].rsplit(":", 1)[1])
    conn = {"conn_type": conn_type, "host": "127.0.0.1", "schema": "http", "port": port}
    return {**conn, "password": spec["setup"]["pat"], "extra": extra}


async def durable_glue(spec: dict[str, Any]) -> System:
    from durable_jobs.hooks.glue import GlueHook
    from durable_jobs.triggers.glue import GlueTrigger

    setup = spec["setup"]
    set_connection("bench_glue_durable", aws_connection(spec, "glue"))

    def run(i: int) -> dict[str, Any]:
        return {"job_name": setup["job_names"][i], "run_id": setup["ids"][i]}

    client = await GlueHook.aget_client("bench_glue_durable")
    # one call first, as for the provider: botocore's endpoints and service model are process-wide caches
    await client.status(run(0))
    return durable(GlueTrigger, "bench_glue_durable", run, spec["interval"])


async def durable_bigquery(spec: dict[str, Any]) -> System:
    from durable_jobs.triggers.bigquery import BigQueryTrigger

    setup = spec["setup"]
    set_connection(
        "bench_bigquery_durable", bigquery_connection(spec, "bigquery_durable", base_url=spec["urls"]["bigquery"])
    )

    def job(i: int) -> dict[str, Any]:
        return {"project": setup["project"], "location": setup["location"], "job_id": setup["ids"][i]}

    client = await BigQueryTrigger.hook_class.aget_client("bench_bigquery_durable")
    await client.status(job(0))  # one call first, as for the provider: a token fetched, connected once
    return durable(BigQueryTrigger, "bench_bigquery_durable", job, spec["interval"], token=lambda i: f"dj{i:020x}")


def bigquery_connection(spec: dict[str, Any], conn_type: str, **extra: Any) -> dict[str, Any]:
    """The fake's project and its service-account key (whose token_uri is the fake's), as both types read them."""
    setup = spec["setup"]
    return {"conn_type": conn_type, "extra": {"project": setup["project"], "keyfile_dict": setup["key"], **extra}}


def aws_connection(spec: dict[str, Any], service: str = "emr") -> dict[str, Any]:
    return {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": spec["urls"][service]},
    }


# --- the floors ---------------------------------------------------------------------------------------------


async def floor(spec: dict[str, Any]) -> System:
    import aiohttp

    base, ids, interval = spec["urls"]["spark"], spec["setup"]["ids"], spec["interval"]
    session: aiohttp.ClientSession | None = None
    ended = {"FINISHED", "FAILED", "ERROR", "KILLED"}

    async def job(i: int) -> str:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession()
        url = f"{base}/v1/submissions/status/{ids[i]}"
        while True:
            try:
                async with session.get(url) as resp:
                    state = (await resp.json()).get("driverState")
                if state in ended:
                    return "succeeded" if state == "FINISHED" else "failed"
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(interval)

    return System(job)


def _batched_floor(spec: dict[str, Any], fetch: Callable[[Any, str], Awaitable[list[tuple[str, str]]]]) -> System:
    """One bare loop GETting ``/json/`` every interval; ``fetch`` returns the completed drivers' (id, state)."""
    import aiohttp

    base, ids, interval = spec["urls"]["spark"], spec["setup"]["ids"], spec["interval"]
    waiting: dict[str, asyncio.Future[str]] = {}
    state = {"polls": 0, "polling": False}
    poller: asyncio.Task[None] | None = None

    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            while waiting:
                state["polling"] = True
                try:
                    for driver, driver_state in await fetch(session, f"{base}/json/"):
                        fut = waiting.pop(driver, None)
                        if fut is not None and not fut.done():
                            fut.set_result("succeeded" if driver_state == "FINISHED" else "failed")
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                state["polls"] += 1
                state["polling"] = False
                await asyncio.sleep(interval)

    async def job(i: int) -> str:
        nonlocal poller
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiting[ids[i]] = fut
        if poller is None:
            poller = asyncio.get_running_loop().create_task(poll())
        return await fut

    async def first_full_poll(n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(waiting) < n:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        need = state["polls"] + (2 if state["polling"] else 1)
        while state["polls"] < need:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    return System(job, first_full_poll)


async def floor_batched(spec: dict[str, Any]) -> System:
    async def fetch(session: Any, url: str) -> list[tuple[str, str]]:
        async with session.get(url) as resp:
            doc = await resp.json()
        return [(d["id"], d["state"]) for d in doc["completeddrivers"]]

    return _batched_floor(spec, fetch)


async def floor_typed(spec: dict[str, Any]) -> System:
    import msgspec

    driver = msgspec.defstruct("Driver", [("id", str), ("state", str)], gc=False)
    listing_type = msgspec.defstruct(
        "Listing", [("activedrivers", list[driver]), ("completeddrivers", list[driver])], gc=False
    )
    decoder = msgspec.json.Decoder(listing_type)

    async def fetch(session: Any, url: str) -> list[tuple[str, str]]:
        async with session.get(url) as resp:
            body = await resp.read()
        listing = decoder.decode(body)
        return [(d.id, d.state) for d in listing.completeddrivers]

    return _batched_floor(spec, fetch)


# --- the providers (build/bench-venv) -----------------------------------------------------------------------


async def livy(spec: dict[str, Any]) -> System:
    from airflow.providers.apache.livy.triggers.livy import LivyTrigger

    port = int(spec["urls"]["livy"].rsplit(":", 1)[1])
    set_connection("bench_livy", {"conn_type": "livy", "host": "127.0.0.1", "port": port, "schema": "http"})
    ids, interval = spec["setup"]["ids"], int(spec["interval"])

    async def job(i: int) -> str:
        trigger = LivyTrigger(batch_id=ids[i], spark_params={}, livy_conn_id="bench_livy", polling_interval=interval)
        return str((await first_event(trigger))["status"])

    return System(job)


async def kube_pod(spec: dict[str, Any]) -> System:
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

    setup, interval = spec["setup"], spec["interval"]
    set_connection("bench_kube", {"conn_type": "kubernetes", "extra": {"kube_config_path": spec["urls"]["kubeconfig"]}})

    async def job(i: int) -> str:
        trigger = KubernetesPodTrigger(
            pod_name=setup["ids"][i],
            pod_namespace=setup["namespace"],
            trigger_start_time=datetime.datetime.now(datetime.timezone.utc),
            base_container_name="base",
            kubernetes_conn_id="bench_kube",
            poll_interval=interval,
            on_finish_action="keep_pod",  # the operator deletes it after the event, not the trigger
            log_events_on_startup=False,  # the fake serves no events API; the pods are running already
        )
        return str((await first_event(trigger))["status"])

    return System(job)


async def amazon_waiters(
    spec: dict[str, Any],
    service: str,
    hook_class: Any,
    warm: Callable[[Any], Awaitable[Any]],
    trigger: Callable[[int], Any],
) -> System:
    """The amazon provider's waiter trigger ``trigger(i)`` per job, on ``service``'s fake endpoint."""
    set_connection("bench_aws", aws_connection(spec, service))
    # one client made and closed first: botocore's loaders and models are process-wide caches
    async with await hook_class(aws_conn_id="bench_aws").get_async_conn() as client:
        await warm(client)

    async def job(i: int) -> str:
        return str((await first_event(trigger(i)))["status"])

    return System(job)


async def emr_step(spec: dict[str, Any]) -> System:
    from airflow.providers.amazon.aws.hooks.emr import EmrHook
    from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger

    setup, interval = spec["setup"], int(spec["interval"])
    return await amazon_waiters(
        spec,
        "emr",
        EmrHook,
        lambda client: client.describe_step(ClusterId=setup["cluster_ids"][0], StepId=setup["ids"][0]),
        lambda i: EmrStepSensorTrigger(
            job_flow_id=setup["cluster_ids"][i],
            step_id=setup["ids"][i],
            waiter_delay=interval,
            waiter_max_attempts=100_000,
            aws_conn_id="bench_aws",
        ),
    )


async def databricks_run(spec: dict[str, Any]) -> System:
    from airflow.providers.databricks.hooks.databricks import DatabricksHook
    from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger

    ids, interval = spec["setup"]["ids"], int(spec["interval"])
    set_connection("bench_databricks", databricks_connection(spec, "databricks"))
    # one call first: the providers manager (the hook's user agent) is a process-wide cache
    async with DatabricksHook("bench_databricks") as hook:
        await hook.a_get_run_state(ids[0])

    async def job(i: int) -> str:
        trigger = DatabricksExecutionTrigger(
            run_id=ids[i], databricks_conn_id="bench_databricks", polling_period_seconds=interval
        )
        return str(json.loads((await first_event(trigger))["run_state"])["result_state"])

    return System(job)


async def glue_job(spec: dict[str, Any]) -> System:
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook
    from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger

    setup, interval = spec["setup"], int(spec["interval"])
    return await amazon_waiters(
        spec,
        "glue",
        GlueJobHook,
        lambda client: client.get_job_run(JobName=setup["job_names"][0], RunId=setup["ids"][0]),
        lambda i: GlueJobCompleteTrigger(
            job_name=setup["job_names"][i],
            run_id=setup["ids"][i],
            verbose=False,
            waiter_delay=interval,
            waiter_max_attempts=100_000,
            aws_conn_id="bench_aws",
        ),
    )


async def bigquery_job(spec: dict[str, Any]) -> System:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryAsyncHook
    from airflow.providers.google.cloud.triggers.bigquery import BigQueryInsertJobTrigger

    setup, interval = spec["setup"], float(spec["interval"])
    # google-cloud-bigquery's client (what the provider's get_job_status runs in a thread) takes its API root
    # from here; the key's token_uri sends google-auth's token request to the fake
    os.environ["BIGQUERY_EMULATOR_HOST"] = spec["urls"]["bigquery"]
    set_connection("bench_gcp", bigquery_connection(spec, "google_cloud_platform"))
    # one call first: the sync hook, its credentials (a token) and the providers manager are process-wide
    await BigQueryAsyncHook(gcp_conn_id="bench_gcp").get_job_status(
        job_id=setup["ids"][0], project_id=setup["project"], location=setup["location"]
    )

    async def job(i: int) -> str:
        trigger = BigQueryInsertJobTrigger(
            conn_id="bench_gcp",
            job_id=setup["ids"][i],
            project_id=setup["project"],
            location=setup["location"],
            poll_interval=interval,
        )
        return str((await first_event(trigger))["status"])

    return System(job)


SYSTEMS: dict[str, Callable[[dict[str, Any]], Awaitable[System]]] = {
    "durable-spark": durable_spark,
    "durable-kube": durable_kube,
    "durable-emr": durable_emr,
    "durable-databricks": durable_databricks,
    "durable-glue": durable_glue,
    "durable-bigquery": durable_bigquery,
    "floor": floor,
    "floor-batched": floor_batched,
    "floor-typed": floor_typed,
    "livy": livy,
    "kube-pod": kube_pod,
    "emr-step": emr_step,
    "databricks-run": databricks_run,
    "glue-job": glue_job,
    "bigquery-job": bigquery_job,
}
FAKE_OF = {
    "durable-spark": "spark",
    "floor": "spark",
    "floor-batched": "spark",
    "floor-typed": "spark",
    "durable-kube": "kube",
    "kube-pod": "kube",
    "durable-emr": "emr",
    "emr-step": "emr",
    "livy": "livy",
    "durable-databricks": "databricks",
    "databricks-run": "databricks",
    "durable-glue": "glue",
    "glue-job": "glue",
    "durable-bigquery": "bigquery",
    "bigquery-job": "bigquery",
}


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    system, n = spec["system"], int(spec["n"])
    fake = FAKE_OF[system]
    configure_triggerer_logging(spec.get("log_level", "INFO"))
    runner = await SYSTEMS[system](spec)
    result = await run_phases(
        runner,
        n=n,
        interval=spec["interval"],
        steady_intervals=spec["steady_intervals"],
        ends=end_offsets(n, spec["first"], spec["last"], spec["fraction"]),
        events_seconds=spec["events_seconds"],
        pickup_per_second=spec.get("pickup_per_second", 0.0),
        gc_freeze=bool(spec.get("gc_freeze")),
        control=Control(
            reset=lambda: control(spec, "/_reset", {"system": fake}),
            start=lambda: float(control(spec, "/_start", {"system": fake})["t0"]),
        ),
    )
    stats = control(spec, "/_windows", {"system": fake, "windows": result["windows"]})
    return {"system": system, "fake": fake, **result, "server": stats}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec.get("loop") == "uvloop":
        import uvloop

        uvloop.install()
    try:
        result = asyncio.run(measure(spec))
    except BaseException:
        # Airflow's logging set-up routes stderr to the (discarded) log: report on the real one
        traceback.print_exc(file=sys.__stderr__)
        raise SystemExit(1) from None
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
