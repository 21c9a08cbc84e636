"""`make bench-triggerer` must keep working: the real-triggerer benchmark, small (``--quick``).

A real Airflow 3.3 metadata DB (SQLite in WAL mode here, to stay within a few minutes; `make bench-triggerer`
uses a private PostgreSQL), N = 60 deferred task instances seeded with our operator's exact trigger kwargs, a
real ``airflow triggerer``, our trigger beside Airflow's DateTimeTrigger (the floor), then the restart storm
and two triggerers sharing the jobs. The providers' rows need ``build/bench-venv`` and are left to the full
run. Nothing here skips, and the figures are not asserted as performance: only the accounting (every job
seeded, picked up, ended and measured; one connection fetch; the windows separated; the JSON and the doc).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
N = 60


@pytest.mark.timeout(960)  # about 200 s alone; the run's own limit is 900 s, on a loaded machine much more than 300
def test_the_real_triggerer_benchmark_accounts_for_every_trigger(tmp_path: Path) -> None:
    out = tmp_path / "real_triggerer.json"
    doc = tmp_path / "performance-triggerer.md"
    doc.write_text("# hand-written part\n\n<!-- real_triggerer: begin -->\nold\n<!-- real_triggerer: end -->\n\ntail\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "real_triggerer.py"),
            "--quick",
            *("--db", "sqlite", "--jobs", str(N), "--systems", "durable-spark", "floor"),
            *("--storm-jobs", str(N), "--ha-jobs", str(N), "--ha-k", "1", "2"),
            *("--out", str(out), "--doc", str(doc)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    results = {r["system"]: r for r in report["results"]}
    assert set(results) == {"durable-spark", "floor"}, [r.get("failed") for r in report["results"]]
    for system, r in results.items():
        assert "failed" not in r, (system, r.get("failed"))
        assert r["jobs"] == N and r["seed"]["deferred"] == N, system
        assert r["pickup_complete"] and r["logs"]["files"] == N, (system, r.get("pickup_progress"))
        # the windows are apart and each was measured
        for window in ("startup", "steady", "events_window") if r["ending_jobs"] else ("startup", "steady"):
            assert r[window]["seconds"] > 0 and r[window]["cpu_s"] >= 0, (system, window, r[window])
        assert r["startup"]["cpu_supervisor_s"] > 0 and r["startup"]["cpu_runner_s"] > 0, system
        assert r["rss_mb_steady"] > 0 and r["fds_supervisor_peak"] >= N, system  # one open log file per trigger
        assert r["blocked_warnings"] == len(r["blocked_seconds"]) or r["blocked_warnings"] > 50, system
    ours, floor = results["durable-spark"], results["floor"]
    # the seeded rows are what the operator defers with
    sample = ours["seed"]["trigger_kwargs_sample"]
    assert sample["classpath"] == "durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger"
    assert set(sample["kwargs"]) >= {"job", "conn_id", "token", "generation", "poll_interval", "deadline"}
    assert sample["next_kwargs"] == {"generation": 0, "token": sample["kwargs"]["token"]}
    # every job that ended got its event in the DB, with a latency; the floor's never end
    assert ours["ending_jobs"] == N // 10 and ours["events"] == ours["ending_jobs"], ours
    assert ours["latency_db_p99_s"] is not None and ours["latency_db_p99_s"] >= 0
    assert floor["ending_jobs"] == 0 and floor["events"] == 0
    # one connection fetch through the supervisor for all N triggers, one client, one session; the floor none
    assert ours["probe"]["connection_fetches_supervisor"] == 1, ours["probe"]
    assert ours["probe"]["library_client_creations"] == 1 and ours["probe"]["aiohttp_sessions_runner"] >= 1
    assert floor["probe"]["connection_fetches_supervisor"] == 0
    assert not ours["probe"]["probe_patch_failures"], ours["probe"]
    # the trigger module was imported on the runner's loop and timed; the client module off it, in a thread
    on_loop = ours["probe"]["library_import_on_loop_max_s"]
    assert on_loop is not None and on_loop > 0, ours["probe"]["library_imports_runner_s"]
    assert "durable_jobs.triggers.spark_standalone@MainThread" in ours["probe"]["library_imports_runner_s"]
    assert not any(
        k.startswith("durable_jobs.clients.") and k.endswith("@MainThread")
        for k in ours["probe"]["library_imports_runner_s"]
    ), ours["probe"]["library_imports_runner_s"]
    # one batched poll per interval at the endpoint, not one per job
    assert 0 < ours["requests_per_interval_steady"] <= ours["requests_per_poll_floor"] + 1, ours["requests"]
    assert ours["logs"]["lines_library_per_trigger_max"] >= 1  # the library's lines are found and counted
    assert "startup_cpu_ms_per_trigger_over_floor" in ours and "rss_kb_per_trigger_over_floor" in ours
    # the restart storm: one fetch and one client again, the outage answered 503 and counted
    storm = report["storm"]
    assert storm["jobs"] == N and storm["pickup_s"] > 0 and storm["probe"]["connection_fetches_supervisor"] == 1
    assert storm["max_requests_per_interval"] >= 1 and storm["all_polling_s"] is not None
    # HA: K triggerers share the jobs; every row ran, the queue recipe included
    ha = report["ha"]
    assert [(h["triggerers"], h["queue_recipe"]) for h in ha] == [(1, False), (2, False), (2, True)]
    for h in ha:
        assert "failed" not in h, h
        assert sum(h["triggers_per_triggerer"]) == N and sum(h["requests_per_interval"]) > 0, h
    assert ha[2]["triggers_per_triggerer"] == [N]  # the queue keeps them on one triggerer
    text = doc.read_text()
    assert text.startswith("# hand-written part") and text.rstrip().endswith("tail") and "\nold\n" not in text
    assert f"| durable-spark | {N} |" in text
