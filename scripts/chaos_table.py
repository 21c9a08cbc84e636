#!/usr/bin/env python
"""Render ``build/chaos-report.json`` (written by ``make chaos`` and the CI smoke) as the README's "Chaos campaign
(latest run)" section.

    python scripts/chaos_table.py build/chaos-report.json                      # print it
    python scripts/chaos_table.py build/chaos-report.json --update README.md   # replace it between the markers

Exit code 1 when the report shows a violated invariant (a duplicate, an orphan, a lost job, a task not terminal
or a re-run of a succeeded job).
"""

from __future__ import annotations

import sys
from typing import Any

from e2e_table import REPO, table_main  # scripts/ is on the path of a script run from it

START = "<!-- chaos-table:start -->"
END = "<!-- chaos-table:end -->"
INVARIANTS = {
    "duplicates": "duplicates",
    "orphans": "orphans",
    "lost_jobs": "lost jobs",
    "not_terminal": "tasks not terminal",
    "reruns_after_success": "re-runs of succeeded jobs",
}


def counts(figures: dict[str, Any]) -> str:
    """``120 (success 101, failed 19)`` from ``{"total": 120, "success": 101, "failed": 19}``."""
    rest = ", ".join(f"{k} {v}" for k, v in figures.items() if k != "total")
    return f"{figures.get('total', 0)}" + (f" ({rest})" if rest else "")


def render(report: dict[str, Any]) -> str:
    faults = report["faults"]
    kinds = ", ".join(f"{kind} {n}" for kind, n in faults["by_kind"].items() if n)
    systems = sorted(report.get("tasks", {}))
    lines = [
        f"Seed **{report['seed']}**, {float(report['minutes']):g} minutes of faults, {report['waves']} waves, "
        f"Airflow {report.get('airflow')} on {report.get('database')}, two triggerers; generated "
        f"{report.get('generated_at')}.",
        "",
        "| | value |",
        "|---|---|",
        f"| faults applied | {faults['applied']} ({faults['skipped']} found no target) |",
        f"| faults by kind | {kinds} |",
        *(f"| {s} tasks (final state) | {counts(report['tasks'][s])} |" for s in systems),
        *(
            [f"| failed tasks the nemesis marked failed | {marked} of {len(report.get('failed_tasks', ()))} |"]
            if (marked := report.get("failed_tasks_marked_failed")) is not None
            else []
        ),
        *(f"| {s} jobs (end state) | {counts(report['jobs'].get(s, {}))} |" for s in systems),
        *(f"| {label} | **{report['invariants'][key]}** |" for key, label in INVARIANTS.items()),
        f"| jobs no record owns (informational) | {report.get('unowned', 0)} |",
    ]
    return "\n".join(lines)


def problems(report: dict[str, Any]) -> str:
    bad = [label for key, label in INVARIANTS.items() if report["invariants"].get(key)]
    return f"violated: {', '.join(bad)}" if bad else ""


def main(argv: list[str] | None = None) -> int:
    default = REPO / "build" / "chaos-report.json"
    return table_main(argv, doc=__doc__, default=default, render=render, problems=problems, start=START, end=END)


if __name__ == "__main__":
    sys.exit(main())
