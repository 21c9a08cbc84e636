#!/usr/bin/env python
"""Render ``build/chaos-report.json`` (written by ``make chaos`` and the CI smoke) as the README's "Chaos campaign
(latest run)" section.

    python scripts/chaos_table.py build/chaos-report.json                      # print it
    python scripts/chaos_table.py build/chaos-report.json --update README.md   # replace it between the markers

Exit code 1 when the report shows a violated invariant (a duplicate, an orphan, a lost job, a task not terminal
or a re-run of a succeeded job).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from e2e_table import update  # scripts/ is on the path of a script run from it

REPO = Path(__file__).resolve().parent.parent
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
        *(f"| {s} jobs (end state) | {counts(report['jobs'].get(s, {}))} |" for s in systems),
        *(f"| {label} | **{report['invariants'][key]}** |" for key, label in INVARIANTS.items()),
        f"| jobs no record owns (informational) | {report.get('unowned', 0)} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("report", nargs="?", type=Path, default=REPO / "build" / "chaos-report.json")
    parser.add_argument("--update", type=Path, metavar="DOC", help="replace the section between the markers in DOC")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text("utf-8"))
    text = render(report)
    if args.update:
        update(args.update, text, START, END)
    else:
        print(text)
    bad = [label for key, label in INVARIANTS.items() if report["invariants"].get(key)]
    if bad:
        print(f"violated: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
