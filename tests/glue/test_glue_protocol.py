"""The submit-once protocol over the Glue client, against moto's Glue: a crash at each protocol point, then a
retry, leaves exactly one run per generation, and the retry ends with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from durable_jobs import failpoints
from durable_jobs.clients.glue import GlueClient, GlueJobRunSpec
from durable_jobs.protocol import Defer, Finished, RetryLater
from durable_jobs.record import STATE_KEY, Outcome, TaskIdentity
from durable_jobs_harness.moto_emr import DictStore, protocol, worker_loop
from durable_jobs_harness.moto_glue import GlueMoto

JOB = "protocol-etl"
SPEC = GlueJobRunSpec(job_name=JOB, arguments={"--day": "2026-12-03"})
POINTS = [failpoints.AFTER_INTENT, failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST, failpoints.BEFORE_OUTCOME]


def finish(glue: GlueMoto, loc: Mapping[str, Any] | None, state: str = "SUCCEEDED") -> None:
    assert loc is not None
    glue.set_run(loc["job_name"], loc["run_id"], state)


@pytest.mark.parametrize("point", POINTS)
def test_glue_crash_at_each_point_then_retry_gives_exactly_one_run(glue: GlueMoto, point: str) -> None:
    glue.create_job(JOB)
    client = GlueClient(glue.moto.config())
    store = DictStore()
    with worker_loop() as run:
        failpoints.configure(f"{point}=raise")
        with pytest.raises(failpoints.SimulatedCrash):
            first = protocol(client, store, SPEC, run).start()
            assert isinstance(first, Defer) and point == failpoints.BEFORE_OUTCOME
            finish(glue, first.record.job)  # the run succeeds; recording the outcome crashes
            protocol(client, store, SPEC, run).complete({"status": "succeeded", "job": first.record.job})
        failpoints.configure("")
        assert len(glue.runs(JOB)) == (0 if point == failpoints.AFTER_INTENT else 1)

        retry = protocol(GlueClient(glue.moto.config()), store, SPEC, run, try_number=2)
        decision = retry.start()
        if point == failpoints.AFTER_SUBMIT:
            assert isinstance(decision, (Defer, Finished)) and store.data[STATE_KEY]["job"] is not None
        if isinstance(decision, Defer):
            assert decision.adopted is (point == failpoints.AFTER_SUBMIT)
            finish(glue, decision.record.job)
            decision = retry.complete({"status": "succeeded", "job": decision.record.job})
        assert isinstance(decision, Finished) and decision.record.outcome is Outcome.SUCCEEDED
        assert decision.record.generation == 0
    runs = glue.runs(JOB)
    assert len(runs) == 1 and runs[0].arguments["--durable_jobs_token"] == decision.record.token


def test_glue_confirmed_failure_starts_the_next_generation_with_a_new_token(glue: GlueMoto) -> None:
    glue.create_job(JOB)
    client = GlueClient(glue.moto.config())
    store = DictStore()
    with worker_loop() as run:
        first = protocol(client, store, SPEC, run).start()
        assert isinstance(first, Defer)
        finish(glue, first.record.job, "FAILED")
        with pytest.raises(Exception, match="ended FAILED"):
            protocol(client, store, SPEC, run).complete({"status": "failed", "job": first.record.job, "message": "x"})
        second = protocol(client, store, SPEC, run, try_number=2).start()
    assert isinstance(second, (Defer, Finished)) and second.record.generation == 1
    assert second.record.token != first.record.token and second.record.job != first.record.job
    tokens = sorted(r.arguments["--durable_jobs_token"] for r in glue.runs(JOB))
    assert tokens == sorted([first.record.token, second.record.token])
    assert TaskIdentity("emr_dag", "run1", "task").token(1) == second.record.token


def test_glue_a_busy_job_defers_the_submit_and_never_fails_the_try(glue: GlueMoto) -> None:
    glue.create_job(JOB, max_concurrent_runs=1)
    client = GlueClient(glue.moto.config(retry_budget=0.2))
    store = DictStore()
    with worker_loop() as run:
        blocker = run(client.submit(GlueJobRunSpec(job_name=JOB), "someone-else"))
        with pytest.raises(RetryLater, match="ConcurrentRunsExceededException"):
            protocol(client, store, SPEC, run).start()
        assert store.data[STATE_KEY]["outcome"] is None and store.data[STATE_KEY]["job"] is None
        finish(glue, blocker)
        retry = protocol(client, store, SPEC, run, try_number=2).start()
    assert isinstance(retry, Defer)
    assert len(glue.runs(JOB)) == 2  # the blocker and exactly one of ours
