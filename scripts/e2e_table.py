#!/usr/bin/env python
"""Render ``build/e2e-report.json`` (written by ``make e2e``) as the markdown table of ``docs/e2e.md``.

    python scripts/e2e_table.py                          # print the table
    python scripts/e2e_table.py --update docs/e2e.md     # replace the table between its markers

Exit code 1 when a row shows a duplicate, an unowned or an orphaned driver, so that a stale or bad
report cannot be pasted silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START = "<!-- e2e-table:start -->"
END = "<!-- e2e-table:end -->"

# what each scenario does to the deployment, in the order of the issue
SCENARIOS = {
    "crash_before_intent": "worker killed before the intent is written",
    "crash_after_intent": "worker killed after the intent, before submit",
    "crash_after_submit": "worker killed after submit, before the driver id is saved",
    "crash_after_persist": "worker killed after the driver id is saved, before defer",
    "crash_before_outcome": "worker killed after the trigger's event, before the outcome is saved",
    "triggerer_sigkill": "triggerer SIGKILLed while deferred; a new triggerer started",
    "triggerer_sigterm": "triggerer SIGTERMed while deferred; a new triggerer started",
    "two_triggerers": "two triggerers, the one running the triggers SIGKILLed (2 tasks)",
    "clear_deferred": "task cleared while deferred",
    "mark_failed": "task marked failed while deferred",
    "deadline": "deadline (job_timeout 20 s) passes while the driver runs",
    "job_fails": "generation 0 fails (exit code 3)",
    "master_unreachable": "Spark master paused (SIGSTOP) while deferred",
}
COLUMNS = (
    "scenario",
    "submissions",
    "duplicates",
    "orphans",
    "tries",
    "final state",
    "driver end state",
    "events",
    "seconds",
)


def render(report: dict[str, Any]) -> str:
    order = {name: i for i, name in enumerate(SCENARIOS)}
    rows = sorted(report.get("rows", ()), key=lambda r: order.get(r["scenario"], len(order)))
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c == "scenario" else "---:" for c in COLUMNS) + "|",
    ]
    for r in rows:
        what = SCENARIOS.get(r["scenario"], r.get("notes") or r["scenario"])
        cells = [
            f"{what} (`{r['scenario']}`)",
            str(r["submissions"]),
            str(r["duplicates"]),
            str(r["orphans"]),
            str(r["tries"]),
            str(r["final_state"]),
            ", ".join(str(d.get("state")) for d in r.get("drivers", ())) or "-",
            str(r["events"]),
            f"{float(r['seconds']):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Airflow {report.get('airflow')}, pyspark {report.get('pyspark')}, metadata DB {report.get('database')}; "
        f"generated {report.get('generated_at')}; whole suite {float(report.get('suite_seconds', 0)):.0f} s."
    )
    return "\n".join(lines)


def bad_rows(report: dict[str, Any]) -> list[str]:
    return [
        r["scenario"] for r in report.get("rows", ()) if r.get("duplicates") or r.get("orphans") or r.get("unowned")
    ]


def update(doc: Path, table: str) -> None:
    text = doc.read_text("utf-8")
    try:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{doc} has no {START} ... {END} markers") from None
    doc.write_text(f"{head}{START}\n{table}\n{END}{tail}", "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("report", nargs="?", type=Path, default=REPO / "build" / "e2e-report.json")
    parser.add_argument("--update", type=Path, metavar="DOC", help="replace the table between the markers in DOC")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text("utf-8"))
    table = render(report)
    if args.update:
        update(args.update, table)
    else:
        print(table)
    bad = bad_rows(report)
    if bad:
        print(f"duplicates or orphans in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
