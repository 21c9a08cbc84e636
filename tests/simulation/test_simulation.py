"""The simulated protocol under random schedules: at least 10,000 per CI run (``make simulate`` runs more).

Two kinds of system: one that can look a token up and takes a token as an idempotency key (Kubernetes, EMR
job runs, Databricks), and one that can do neither without a record (Spark standalone); and the first again
with ``rerun_on_clear``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from .machine import SimulatedRun

pytestmark = [
    pytest.mark.timeout(1800),  # ten thousand schedules take a few minutes on a loaded CI host
    # a failure message asks the client for links under asyncio.wait_for, which the loop-less simulation refuses
    pytest.mark.filterwarnings("ignore:coroutine 'JobClient.links' was never awaited:RuntimeWarning"),
]

#: schedules per machine; the three together run 12,000 in CI
EXAMPLES = int(os.environ.get("DURABLE_JOBS_SIM_EXAMPLES", "4000"))
#: the same schedules every CI run (a failure reproduces); DURABLE_JOBS_SIM_RANDOM=1 explores new ones
SIM = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=os.environ.get("DURABLE_JOBS_SIM_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
)


class LookupSystem(SimulatedRun):
    idempotent = True
    lookup = True


class ListingSystem(SimulatedRun):
    """No lookup without a record and no idempotent submit: no zombie overlap (see docs/simulation.md)."""

    idempotent = False
    lookup = False
    zombies = False


class RerunOnClear(LookupSystem):
    """``rerun_on_clear=True``: a clear of the task asks for a rerun even of a succeeded job (of that task only)."""

    rerun_on_clear = True


TestLookupSystem = LookupSystem.TestCase
TestLookupSystem.settings = SIM
TestListingSystem = ListingSystem.TestCase
TestListingSystem.settings = SIM
TestRerunOnClear = RerunOnClear.TestCase
TestRerunOnClear.settings = SIM
