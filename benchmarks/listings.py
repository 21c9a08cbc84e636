"""How long each system's calls hold the event loop on a huge listing: the four listing benchmarks, one table.

Runs ``measure()`` of ``listing_spark.py`` (100,000 drivers), ``listing_yarn.py``, ``listing_kubernetes.py`` and
``listing_emr.py`` (10,000 applications, pods, steps and runs), each in a process of its own as when run alone (one
benchmark's heap, imports and collections do not weigh on the next), then prints one row per call: the longest
loop block (wall clock: the probe's lateness) and the most CPU the loop's thread spent between two probe wake-ups,
and the requests the call sent where the benchmark counts them ("-": not measured by that benchmark).

    python benchmarks/listings.py                  # all four, a few minutes; writes build/bench/listings.json
    python benchmarks/listings.py --only yarn emr
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from loop_probe import print_rows, write_report  # noqa: E402

OUT = HERE.parent / "build" / "bench" / "listings.json"
SYSTEMS = {  # system: (benchmark module, n)
    "spark": ("listing_spark", 100_000),
    "yarn": ("listing_yarn", 10_000),
    "kubernetes": ("listing_kubernetes", 10_000),
    "emr": ("listing_emr", 10_000),
}
KEYS = ("system", "call", "max_loop_block_ms", "max_loop_block_cpu_ms", "requests")  # a row of the table


def run(system: str) -> dict[str, Any]:
    """The figures of one system's ``measure(n)``, measured in a child process."""
    with tempfile.TemporaryDirectory(prefix="listings-") as tmp:
        into = Path(tmp) / f"{system}.json"
        subprocess.run([sys.executable, __file__, "--measure", system, "--into", str(into)], check=True)
        figures: dict[str, Any] = json.loads(into.read_text())
        return figures


def rows(system: str, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per call, in the benchmark's order; ``None`` where it does not measure that figure."""

    def row(call: str, wall: float, cpu: float | None, requests: int | None) -> dict[str, Any]:
        return dict(zip(KEYS, (system, call, wall, cpu, requests), strict=True))

    if system == "yarn":  # lag: wall clock; held: the loop thread's CPU time
        return [row(op, r["max_loop_lag_ms"], r["max_loop_held_ms"], None) for op, r in figures["operations"].items()]
    if system == "emr":  # a wall-clock probe only, and the requests botocore sent
        return [row(r["call"], r["max_lag_ms"], None, r["requests"]) for r in figures["calls"]]
    return [row(name, c["max_loop_block_ms"], c["max_loop_block_cpu_ms"], None) for name, c in figures["calls"].items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--measure", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the child: one benchmark
        module, n = SYSTEMS[args.measure]
        args.into.write_text(json.dumps(importlib.import_module(module).measure(n)))
        return 0

    systems: dict[str, Any] = {}
    table: list[dict[str, Any]] = []
    for system in args.only:
        print(f"measuring {system} ({SYSTEMS[system][1]:,})...", flush=True)
        try:
            systems[system] = run(system)
        except subprocess.CalledProcessError as exc:
            systems[system] = {"error": f"the benchmark exited with {exc.returncode}"}
            continue
        table += rows(system, systems[system])

    def cell(value: Any) -> Any:
        return "-" if value is None else value

    columns = [("system", "<10"), ("call", "<44"), ("block ms", ">9"), ("cpu ms", ">7"), ("requests", ">8")]
    print_rows(columns, [[cell(r[k]) for k in KEYS] for r in table])
    for system, figures in systems.items():
        verdict = figures.get("error") or ("within budget" if figures["within_budget"] else "OVER BUDGET")
        print(f"{system}: {verdict}")
    write_report(
        args.out,
        {
            "rows": table,
            "systems": systems,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        },
    )
    return 1 if any("error" in f for f in systems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
