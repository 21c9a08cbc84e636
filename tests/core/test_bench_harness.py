"""`make bench` must keep working: the triggerer benchmark, small, for the library's systems and the floors.

The providers' rows need `build/bench-venv` (their pins conflict with ours), so they are left to `make bench`;
everything else runs here as it does there: the endpoint process, one measured process per system, the JSON and
the markdown. The figures are not asserted as performance (tests are not benchmarks), only as correct
accounting: every window measured, every ended job's event and no other, requests counted per window, the
harness's own costs kept apart, ratios only at equal N.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = [
    *("durable-spark", "durable-kube", "durable-emr", "durable-glue", "durable-bigquery"),
    *("floor", "floor-batched", "floor-typed"),
]


def test_the_triggerer_benchmark_runs_and_accounts_for_every_job(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    doc = tmp_path / "performance.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "triggerer_scale.py"),
            *("--jobs", "40", "--systems", *SYSTEMS),
            *("--interval", "0.5", "--steady-seconds", "1", "--spread", "1", "--ending", "0.25"),
            *("--pod-bytes", "5000", "20000", "--unwatched", "1"),
            *("--out", str(out), "--doc", str(doc)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    results = {r["system"]: r for r in report["results"]}
    assert set(results) == set(SYSTEMS), [r.get("failed") for r in report["results"]]
    for system, r in results.items():
        assert "failed" not in r, (system, r.get("failed"))
        assert r["jobs"] == 40 and r["ending_jobs"] == 10, system
        # every job that ended got its event, no running job got one, and nothing raised
        assert r["events"] == 10 and not r["missed"] and not r["wrong_events"] and not r["errors"], (system, r)
        assert sum(r["outcomes"].values()) == 10 and "raised" not in r["outcomes"], (system, r["outcomes"])
        # three windows, in order, each measured: start-up saw the first full poll with every trigger waiting
        assert r["startup_full_poll_seen"] and r["waiting_after_startup"] == 40, system
        assert r["startup_cpu_seconds"] > 0 and r["steady_cpu_seconds"] >= 0 and r["events_cpu_seconds"] > 0, system
        assert r["steady_seconds"] >= 1.0 and r["steady_cpu_us_per_job_poll"] is not None, system
        steady, events = r["windows"]["steady"], r["windows"]["events"]
        assert steady[0] < steady[1] <= events[0] < events[1], system
        # the harness's own costs were measured, so that they could be taken out
        assert r["harness"]["loop_turns"] > 40 and r["harness"]["paused_seconds"] > 0, system
        assert r["rss_kb_per_job"] > 0 and r["hwm_kb_per_job"] >= r["rss_kb_per_job"] - 1, system
        assert r["lag_max_s"] >= r["steady_lag_max_s"], system
    # the batched designs ask per endpoint, not per job; per-job polling asks for every job every interval
    assert results["floor"]["steady_requests_per_interval"] > 30
    for system in ("durable-spark", "floor-batched", "floor-typed", "durable-emr", "durable-glue", "durable-bigquery"):
        r = results[system]
        assert r["steady_requests_per_interval"] <= r["steady_target_requests"] * 1.5, system
        assert r["server"]["steady"]["by_kind"], system
    assert results["durable-kube"]["steady_requests_per_interval"] < 5  # answered from the watch
    assert results["durable-kube"]["fake_pod_bytes_mean"] >= 5000 and results["durable-kube"]["fake_unwatched"] == 40
    # ratios only at equal N: the floors ran at 40, the providers did not
    spark = results["durable-spark"]
    assert spark["ratios"]["steady"]["floor-typed"] is not None and spark["ratios"]["steady"]["best_provider"] is None
    text = doc.read_text()
    assert "| durable-spark | 0.5 s interval, 25% end | 40 |" in text
    assert "Providers were **not run** at N = 40" in text and "performance-triggerer.md" in text
