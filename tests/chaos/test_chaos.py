"""The random fault campaign on real Airflow (issue 16): ``make chaos`` runs it for 30 minutes; CI runs this 5-minute
smoke (48 mapped tasks) in ``make test``. It fails on any duplicate, orphan, lost job, task left not terminal or
re-run of a succeeded job; ``build/chaos-report.json`` holds the seed, the faults and the findings (docs/chaos.md).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from .campaign import Settings, run

SETTINGS = Settings.from_env()
# Airflow's start, the fault window, the settle, the checker's grace and the stops, with room to spare
pytestmark = [pytest.mark.airflow, pytest.mark.timeout(int(SETTINGS.seconds + SETTINGS.settle + 900))]


def test_random_fault_campaign() -> None:
    print(f"\nchaos seed {SETTINGS.seed} (DURABLE_JOBS_CHAOS_SEED={SETTINGS.seed} replays its schedule)")
    doc = run(SETTINGS)
    print(f"chaos report: {SETTINGS.report}")
    print(json.dumps({k: doc[k] for k in ("seed", "faults", "invariants", "tasks", "jobs")}, indent=1))
    assert doc["passed"], json.dumps(doc["violations"], indent=1)
    if not os.environ.get("DURABLE_JOBS_CHAOS_KEEP"):  # kept when the campaign failed, or when asked
        shutil.rmtree(doc["settings"]["root"], ignore_errors=True)
