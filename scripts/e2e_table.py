#!/usr/bin/env python
"""Render ``build/e2e-report.json`` (written by ``make e2e``) as the markdown tables of ``docs/e2e.md``: one per system.

    python scripts/e2e_table.py                          # print the tables
    python scripts/e2e_table.py --update docs/e2e.md     # replace the tables between their markers
    python scripts/e2e_table.py --update README.md       # the same block in the README

Exit code 1 when a row shows a duplicate, an unowned or an orphaned job, so that a stale or bad report cannot
be pasted silently (and ``make test`` fails on it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START = "<!-- e2e-table:start -->"
END = "<!-- e2e-table:end -->"

# what each scenario does to the deployment, in the order of the issue; other rows show their notes
SCENARIOS = {
    "crash_before_intent": "worker killed before the intent is written",
    "crash_after_intent": "worker killed after the intent, before submit",
    "crash_after_submit": "worker killed after submit, before the job id is saved",
    "crash_after_persist": "worker killed after the job id is saved, before defer",
    "crash_before_outcome": "worker killed after the trigger's event, before the outcome is saved",
    "triggerer_sigkill": "triggerer SIGKILLed while deferred; a new triggerer started",
    "triggerer_sigterm": "triggerer SIGTERMed while deferred; a new triggerer started",
    "two_triggerers": "two triggerers, the one running the triggers SIGKILLed (2 tasks)",
    "clear_deferred": "task cleared while deferred",
    "mark_failed": "task marked failed while deferred",
    "deadline": "deadline (job_timeout 20 s) passes while the job runs",
    "job_fails": "generation 0 fails (exit code 3)",
    "endpoint_unreachable": "endpoint paused (SIGSTOP) while deferred",
    "overload": "50 mapped tasks deferred at once; 5 workers killed after submit; a triggerer SIGKILLed",
}
COLUMNS = (
    "scenario",
    "submissions",
    "duplicates",
    "orphans",
    "tries",
    "final state",
    "job end state",
    "events",
    "seconds",
)
# the report's phase timings, as the footnote names them
PHASES = {
    "airflow_start": "Airflow start",
    "batch": "side-by-side batch",
    "overload": "overload",
}


def end_states(jobs: list[dict[str, Any]]) -> str:
    """The jobs' end states; many alike are counted (``50 Complete``)."""
    states = [str(j.get("state")) for j in jobs]
    if len(states) <= 4:
        return ", ".join(states) or "-"
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def table(rows: list[dict[str, Any]]) -> list[str]:
    order = {name: i for i, name in enumerate(SCENARIOS)}
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c == "scenario" else "---:" for c in COLUMNS) + "|",
    ]
    for r in sorted(rows, key=lambda r: order.get(r["scenario"], len(order))):
        what = SCENARIOS.get(r["scenario"], r.get("notes") or r["scenario"])
        cells = [
            f"{what} (`{r['scenario']}`)",
            str(r["submissions"]),
            str(r["duplicates"]),
            str(r["orphans"]),
            str(r["tries"]),
            str(r["final_state"]),
            end_states(r.get("jobs", ())),
            str(r["events"]),
            f"{float(r['seconds']):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(report: dict[str, Any]) -> str:
    rows = report.get("rows", ())
    systems = list(report.get("systems") or ())
    systems += sorted({r["system"] for r in rows} - set(systems))
    lines: list[str] = []
    for system in systems:
        mine = [r for r in rows if r["system"] == system]
        if mine:
            lines += [f"**{system}** ({len(mine)} rows)", "", *table(mine), ""]
    timings = report.get("timings") or {}
    phases = [f"{label} {float(timings[key]):.0f} s" for key, label in PHASES.items() if key in timings]
    isolated = sum(float(v) for k, v in timings.items() if k.startswith("isolated_"))
    if isolated:
        phases.append(f"one-at-a-time scenarios {isolated:.0f} s")
    lines.append(
        f"Airflow {report.get('airflow')}, pyspark {report.get('pyspark')}, metadata DB {report.get('database')}; "
        f"generated {report.get('generated_at')}; whole suite {float(report.get('suite_seconds', 0)):.0f} s"
        + (f" ({', '.join(phases)})." if phases else ".")
    )
    return "\n".join(lines)


def bad_rows(report: dict[str, Any]) -> list[str]:
    return [
        f"{r['system']}/{r['scenario']}"
        for r in report.get("rows", ())
        if r.get("duplicates") or r.get("orphans") or r.get("unowned")
    ]


def update(doc: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace what lies between the ``start`` and ``end`` markers of ``doc`` (also used by chaos_table.py)."""
    content = doc.read_text("utf-8")
    try:
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
    except ValueError:
        raise SystemExit(f"{doc} has no {start} ... {end} markers") from None
    doc.write_text(f"{head}{start}\n{text}\n{end}{tail}", "utf-8")


def table_main(
    argv: list[str] | None,
    *,
    doc: str | None,
    default: Path,
    render: Callable[[dict[str, Any]], str],
    problems: Callable[[dict[str, Any]], str],
    start: str = START,
    end: str = END,
) -> int:
    """The command line of a report script: print the rendering or ``--update DOC`` between the markers; exit code 1
    with ``problems``' message on stderr when it has one (also used by chaos_table.py)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0] if doc else None)
    parser.add_argument("report", nargs="?", type=Path, default=default)
    parser.add_argument("--update", type=Path, metavar="DOC", help="replace the text between the markers in DOC")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text("utf-8"))
    text = render(report)
    if args.update:
        update(args.update, text, start, end)
    else:
        print(text)
    problem = problems(report)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    def problems(report: dict[str, Any]) -> str:
        bad = bad_rows(report)
        return f"duplicates or orphans in: {', '.join(bad)}" if bad else ""

    return table_main(argv, doc=__doc__, default=REPO / "build" / "e2e-report.json", render=render, problems=problems)


if __name__ == "__main__":
    sys.exit(main())
