"""``build/chaos-report.json``: the seed, the duration, the fault histogram and log, the tasks, the jobs and the
invariants of one campaign (``scripts/chaos_table.py`` renders it for the README)."""

from __future__ import annotations

import importlib.metadata
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checker import Findings
from .nemesis import Fault, histogram


def marked_failed(faults: Sequence[Fault]) -> set[str]:
    """The task instances (``dag/run/task[map index]``) the nemesis marked failed."""
    return {f.target.split(" ", 1)[0] for f in faults if f.kind == "api_mark_failed" and f.target}


def write(
    path: Path,
    *,
    seed: int,
    minutes: float,
    database: str,
    waves: int,
    faults: Sequence[Fault],
    findings: Findings,
    timings: dict[str, float],
    settings: dict[str, Any],
) -> dict[str, Any]:
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": seed,
        "minutes": minutes,
        "airflow": importlib.metadata.version("apache-airflow"),
        "pyspark": importlib.metadata.version("pyspark"),
        "database": database,
        "waves": waves,
        "settings": settings,
        "faults": {
            "applied": sum(histogram(faults).values()),
            "fired": len(faults),
            "skipped": sum(1 for f in faults if f.skipped),
            "by_kind": histogram(faults),
        },
        **findings.to_json(),
        "failed_tasks_marked_failed": len(marked_failed(faults) & {line.split(" ", 1)[0] for line in findings.failed}),
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "fault_log": [f.to_json() for f in sorted(faults, key=lambda f: f.index)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    return doc
