"""What release 0.1.0 stored must still load: its trigger classpaths and kwargs, its records, its system names.

Airflow keeps a deferred task's trigger (classpath and kwargs) in its trigger table, and the task state
store keeps our record, across an upgrade of the library. The literals below are what 0.1.0 (commit
3360ef2) wrote: ``DurableJobTrigger.serialize()`` and ``JobRecord.to_json()`` of that release.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string

from durable_jobs.record import STATE_KEY, JobRecord, Outcome, Phase, TaskIdentity, make_token
from durable_jobs.triggers.base import DurableJobTrigger

# every trigger classpath 0.1.0 could store (src/durable_jobs/triggers/ of 3360ef2)
CLASSPATHS_010 = [
    "durable_jobs.triggers.emr.EmrStepTrigger",
    "durable_jobs.triggers.emr.EmrClusterTrigger",
    "durable_jobs.triggers.emr.EmrServerlessTrigger",
    "durable_jobs.triggers.emr.EmrEksTrigger",
    "durable_jobs.triggers.kubernetes.KubernetesTrigger",
    "durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger",
    "durable_jobs.triggers.yarn.YarnTrigger",
]

# the kwargs 0.1.0's serialize() returned, as JSON text: the same eight for every trigger (building one
# does not check the locator)
KWARGS_010: dict[str, Any] = json.loads(
    '{"job": {"driver_id": "driver-20261121100236-0001"}, "conn_id": "spark_default", '
    '"token": "dj69dd851e78a3d8528623", "generation": 0, "poll_interval": 30.0, "deadline": 1795000000.0, '
    '"unknown_budget": 1800.0, "lost_confirmations": 3}'
)

# the system strings 0.1.0 wrote into records, by the client class that writes them today
SYSTEMS_010 = {
    "durable_jobs.clients.emr.EmrStepClient": "emr-step",
    "durable_jobs.clients.emr.EmrClusterClient": "emr-cluster",
    "durable_jobs.clients.emr.EmrServerlessClient": "emr-serverless",
    "durable_jobs.clients.emr.EmrEksClient": "emr-eks",
    "durable_jobs.clients.kubernetes.KubernetesClient": "kubernetes",
    "durable_jobs.clients.spark_standalone.SparkStandaloneClient": "spark-standalone",
    "durable_jobs.clients.yarn.YarnClient": "yarn",
}

IDENTITY = TaskIdentity(dag_id="etl", run_id="scheduled__2026-11-20T00:00:00+00:00", task_id="aggregate")

# a record as 0.1.0's JobRecord.to_json() wrote it: generation 1, finished, one earlier generation
RECORD_010: dict[str, Any] = {
    "v": 1,
    "system": "emr-step",
    "phase": "finished",
    "generation": 1,
    "token": "dj2822fe8a30f114f31e8e",
    "intent_at": 1_795_000_100.25,
    "deadline": 1_795_086_500.25,
    "job": {"cluster_id": "j-2AXXXXXXGAPLF", "step_id": "s-1000000000002"},
    "outcome": "succeeded",
    "message": "COMPLETED",
    "clear_number": 0,
    "submitted_try": 2,
    "history": [
        {
            "generation": 0,
            "token": "dj69dd851e78a3d8528623",
            "job": {"cluster_id": "j-2AXXXXXXGAPLF", "step_id": "s-1000000000001"},
            "outcome": "failed",
            "message": "Step failed: exit code 1",
        }
    ],
}


def test_the_state_key_and_the_tokens_are_the_ones_0_1_0_wrote():
    assert STATE_KEY == "durable_jobs.job"
    assert make_token(IDENTITY.dag_id, IDENTITY.run_id, IDENTITY.task_id, -1, 0) == "dj69dd851e78a3d8528623"
    assert IDENTITY.token(1) == "dj2822fe8a30f114f31e8e"
    assert make_token("etl", "manual__2026-11-21T10:00:00+00:00", "load", 3, 0) == "djfe3bcc62e31febf6e565"


@pytest.mark.parametrize("classpath", CLASSPATHS_010)
def test_a_stored_0_1_0_trigger_is_rebuilt_from_its_classpath_and_kwargs(classpath):
    cls = import_string(classpath)
    assert issubclass(cls, DurableJobTrigger)
    trigger = cls(**KWARGS_010)
    assert trigger.serialize() == (classpath, KWARGS_010)


@pytest.mark.parametrize(("client", "system"), sorted(SYSTEMS_010.items()))
def test_the_system_names_are_the_ones_0_1_0_wrote(client, system):
    assert import_string(client).system == system


def test_a_0_1_0_record_loads_with_every_field():
    rec = JobRecord.from_json(RECORD_010, system="emr-step", identity=IDENTITY)
    assert rec.v == 1 and rec.system == "emr-step"
    assert rec.phase is Phase.FINISHED and rec.outcome is Outcome.SUCCEEDED
    assert (rec.generation, rec.token) == (1, "dj2822fe8a30f114f31e8e")
    assert (rec.intent_at, rec.deadline) == (1_795_000_100.25, 1_795_086_500.25)
    assert rec.job == {"cluster_id": "j-2AXXXXXXGAPLF", "step_id": "s-1000000000002"}
    assert (rec.message, rec.clear_number, rec.submitted_try) == ("COMPLETED", 0, 2)
    assert rec.history == tuple(RECORD_010["history"])
    assert rec.to_json() == RECORD_010  # and written back in the same shape


def test_a_0_1_0_intent_without_a_job_loads():
    """Phase ``submitting`` before any reservation: ``job``, ``deadline`` and ``outcome`` are null."""
    intent = {
        **RECORD_010,
        "system": "spark-standalone",
        "phase": "submitting",
        "generation": 0,
        "token": "dj69dd851e78a3d8528623",
        "deadline": None,
        "job": None,
        "outcome": None,
        "message": "",
        "submitted_try": 1,
        "history": [],
    }
    rec = JobRecord.from_json(intent, system="spark-standalone", identity=IDENTITY)
    assert rec.phase is Phase.SUBMITTING and rec.job is None and rec.deadline is None and rec.outcome is None
    assert rec.to_json() == intent
