"""The fault soak of issue 11 at CI length: 50 waiting triggers outlast a master that is down, then answers
503, then 429, then resets connections (15 s each), then recovers; the jobs finish.

It runs benchmarks/soak.py (the harness behind `make soak`) in-process, against the fault-injecting fake
master of durable_jobs_harness.fault_master on real sockets, and asserts on its report: no failure event, no
second submission, every event within one interval + 1 s of the later of the recovery and the job's end,
a bounded number of requests per poll interval while the master is sick, and a new try during the outage
that defers to the recorded job instead of submitting.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = 50
INTERVAL = 5.0
PHASE_SECONDS = 15.0


def _harness() -> ModuleType:
    name = "durable_jobs_soak_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
async def test_fault_soak_no_failure_no_resubmission_prompt_recovery_bounded_load(tmp_path: Path) -> None:
    soak = _harness()
    cfg = soak.SoakConfig(jobs=JOBS, phase_seconds=PHASE_SECONDS, interval=INTERVAL, out=tmp_path / "soak.json")
    report = await soak.run_soak(cfg)
    line = soak.summary_line(report)
    print(line)
    assert (tmp_path / "soak.json").exists()
    assert re.fullmatch(
        rf"soak: jobs={JOBS} phases=down,503,429,reset phase_seconds=15 failures=0 resubmissions=0 late_events=0 "
        r"max_requests_per_interval=\d+",
        line,
    ), (line, report["problems"], report["failed_jobs"][:3], report["events"]["late"][:5])

    # every job: exactly one event, succeeded, recorded as Finished; one submission each
    assert report["events"]["count"] == JOBS and report["events"]["statuses"] == {"succeeded": JOBS}
    assert report["failures"] == 0, report["failed_jobs"]
    assert report["creates"] == JOBS and report["resubmissions"] == 0
    # prompt recovery: within one interval + 1 s of the later of the recovery and the job's end
    latency = report["events"]["latency_after_recovery_s"]
    assert report["late_events"] == 0 and latency["max"] <= INTERVAL + 1.0, report["events"]["late"]

    # a new try during each outage phase re-checked, deferred to the recorded job, submitted nothing
    assert set(report["rechecks"]) == {"down", "503", "429", "reset"}
    for phase, rows in report["rechecks"].items():
        assert rows and all(r["decision"] == "Defer" and r["same_job"] and r["creates"] == 0 for r in rows), (
            phase,
            rows,
        )

    # the faults really happened, as each phase says, and the load on the sick master stayed bounded
    bound = report["config"]["bound_requests_per_interval"]
    assert bound == 1 + report["config"]["status_concurrency"] + 2 < JOBS
    expected_outcome = {"down": "refused", "503": "503", "429": "429", "reset": "no answer"}
    for phase, outcome in expected_outcome.items():
        ph = report["phases"][phase]
        client = ph["client"]
        assert set(client["outcomes"]) == {outcome}, (phase, client["outcomes"])
        assert client["polls"] >= 2, (phase, client)  # one poll per interval, not fewer
        assert client["requests_per_interval_max"] <= bound, (phase, client["requests_per_interval"])
        assert client["poll_gap_min_s"] >= 0.95 * INTERVAL, (phase, client["poll_gap_min_s"])
    assert report["phases"]["down"]["server"]["requests"] == 0  # sockets closed: nothing reached the server
    for phase in ("503", "429", "reset"):
        assert report["phases"][phase]["server"]["requests"] > 0, phase
    assert report["max_requests_per_interval"] <= bound
    assert report["ok"], report["problems"]
