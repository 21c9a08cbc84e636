"""`make bench` must keep working: the triggerer benchmark, small, for the library's systems and the floors.

The providers' rows need `build/bench-venv` (their pins conflict with ours), so they are left to `make bench`;
everything else runs here as it does there: the endpoint process, one measured process per system, the JSON.
The figures are not asserted as performance (tests are not benchmarks), only as correct accounting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ["durable-spark", "durable-kube", "durable-emr", "floor", "floor-batched"]


def test_the_triggerer_benchmark_runs_and_accounts_for_every_job(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    doc = tmp_path / "performance.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "triggerer_scale.py"),
            *("--jobs", "40", "--systems", *SYSTEMS),
            *("--interval", "0.5", "--run-seconds", "6", "--first-end", "2", "--last-end", "3.5", "--ending", "0.25"),
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
        assert r["rss_kb_per_job"] > 0 and r["cpu_seconds"] > 0, system
    # the batched designs ask per endpoint, not per job; per-job polling asks for every job every interval
    assert results["floor"]["requests_per_interval"] > 30
    for system in ("durable-spark", "floor-batched"):
        assert results[system]["requests_per_interval"] <= results[system]["target_requests_per_interval"], system
    assert results["durable-kube"]["requests_per_interval"] < 5  # answered from the watch
    assert "| durable-spark | 40 |" in doc.read_text()
