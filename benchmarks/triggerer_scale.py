"""Triggerer performance in one process: the library's triggers beside the providers' triggers and three
floors, against the same local endpoints, in one run; start-up, steady polling and events measured apart.

    python benchmarks/triggerer_scale.py                  # the full matrix (make bench; about 30 minutes)
    python benchmarks/triggerer_scale.py --jobs 1000 --systems durable-spark floor-typed livy --no-doc
    python benchmarks/triggerer_scale.py --jobs 100000 --systems durable-spark floor-typed --no-doc
    python benchmarks/triggerer_scale.py --render build/bench/triggerer_scale.json   # only rewrite the doc

Each row is a fresh process (``bench_children.py``) that runs N real trigger instances on one event loop as
the triggerer's runner does (created one per loop turn, one task per ``trigger.run()``, its first event
awaited) and measures three windows apart (``bench_probe.py``): **start-up** (creation until the first poll
covering every trigger is handed out), **steady** (every trigger waiting, nothing ending) and **events** (a
fraction of the jobs end). The harness's own work (its collection and RSS mark, its sampler thread, its lag
probe) is kept out of every CPU figure. The endpoints live in another process (``bench_servers.py``), which
counts every request per window. The providers' triggers run in ``build/bench-venv`` (created on first use
and kept: the amazon provider pins boto3/botocore below the project's aiobotocore; the databricks provider
adds its SQL connector, the google provider google-cloud-bigquery and gcloud-aio).

Ratios are only taken between rows of the same N, interval, share of ending jobs and log level: a provider
not run at an N gives no ratio there.

Writes ``build/bench/triggerer_scale.json``, prints a table and writes ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "build" / "bench" / "triggerer_scale.json"
DOC = ROOT / "docs" / "performance.md"
BENCH_VENV = ROOT / "build" / "bench-venv"
PROVIDER_REQUIREMENTS = [
    "apache-airflow==3.3.2",
    "apache-airflow-providers-apache-livy==4.6.4",
    "apache-airflow-providers-cncf-kubernetes==10.25.0",
    "apache-airflow-providers-amazon[aiobotocore]==9.39.0",
    "apache-airflow-providers-databricks==7.23.0",
    "apache-airflow-providers-google==22.8.0",
]
OURS = ["durable-spark", "durable-kube", "durable-emr", "durable-databricks", "durable-glue", "durable-bigquery"]
FLOORS = ["floor", "floor-batched", "floor-typed"]
PROVIDERS = ["livy", "kube-pod", "emr-step", "databricks-run", "glue-job", "bigquery-job"]
# who is compared with whom: the library's trigger, the provider trigger on the same kind of endpoint
PEER = {
    "durable-spark": "livy",
    "durable-kube": "kube-pod",
    "durable-emr": "emr-step",
    "durable-databricks": "databricks-run",
    "durable-glue": "glue-job",
    "durable-bigquery": "bigquery-job",
}
# endpoints one poll asks, where the endpoint process does not say (it does for EMR: clusters and their pages;
# for Databricks: one workspace, a runs/list page per 24 active runs; for Glue: a GetJobRuns page per 200 runs
# of each job name; for BigQuery: one project, a jobs.list page per 1,000 pending and running jobs)
ENDPOINTS = {"durable-spark": 1, "floor-batched": 1, "floor-typed": 1, "durable-kube": 1}
LABEL = {
    "durable-spark": "durable_jobs Spark standalone",
    "durable-kube": "durable_jobs Kubernetes (pods)",
    "durable-emr": "durable_jobs EMR steps",
    "durable-databricks": "durable_jobs Databricks runs",
    "durable-glue": "durable_jobs Glue job runs",
    "durable-bigquery": "durable_jobs BigQuery jobs",
    "floor": "floor: per-job GET, shared session",
    "floor-batched": "floor: one /json/ loop, json.loads",
    "floor-typed": "floor: one /json/ loop, msgspec into (id, state) structs",
    "livy": "LivyTrigger (livy 4.6.4)",
    "kube-pod": "KubernetesPodTrigger (cncf-k8s 10.25.0)",
    "emr-step": "EmrStepSensorTrigger (amazon 9.39.0)",
    "databricks-run": "DatabricksExecutionTrigger (databricks 7.23.0)",
    "glue-job": "GlueJobCompleteTrigger (amazon 9.39.0)",
    "bigquery-job": "BigQueryInsertJobTrigger (google 22.8.0)",
}
EVERYONE = OURS + FLOORS + PROVIDERS
MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One row: a system at N jobs, and what its run varies from the default."""

    system: str
    n: int
    group: str = "main"
    interval: float = 2.0
    ending: float = 0.2
    log_level: str = "INFO"
    steps_per_cluster: int = 250  # EMR only: AWS allows 256 active steps per cluster
    runs_per_job: int = 100  # Glue only: runs of one job name (MaxConcurrentRuns raised to allow them)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def variant(self) -> str:
        parts = []
        if self.interval != 2.0:
            parts.append(f"{self.interval:g} s interval")
        if self.ending != 0.2:
            parts.append(f"{self.ending:.0%} end")
        if self.log_level != "INFO":
            parts.append(self.log_level)
        if self.system in ("durable-emr", "emr-step") and self.steps_per_cluster != 250:
            parts.append(f"{self.steps_per_cluster} step{'s' if self.steps_per_cluster > 1 else ''}/cluster")
        if self.system in ("durable-glue", "glue-job") and self.runs_per_job != 100:
            parts.append(f"{self.runs_per_job} run{'s' if self.runs_per_job > 1 else ''}/job")
        return ", ".join(parts)

    @property
    def peers_key(self) -> tuple[int, float, float, str]:
        """Rows compared with each other: same N, interval, share of ending jobs and log level."""
        return (self.n, self.interval, self.ending, self.log_level)


GROUPS = {
    "main": "Every system at equal N (INFO, 2 s interval, 20% of the jobs end, unless the variant says)",
    "100k": "100,000 jobs in one process (Spark standalone, one /json/ of 24.5 MB per poll)",
    "logging": "The logging share: the library's triggers at WARNING",
    "emr-layout": "EMR layouts: 1, 10 and 250 steps per cluster",
    "glue-layout": "Glue layout: a job name per run (MaxConcurrentRuns = 1)",
    "ending": "Every job ends (100%)",
    "interval": "A 30 s poll interval",
}


def default_matrix() -> list[Case]:
    """``make bench``: every row of docs/performance.md."""
    cases: list[Case] = []
    for s in OURS + FLOORS + PROVIDERS:
        cases.append(Case(s, 1000))
    for s in OURS + FLOORS:
        cases.append(Case(s, 10000))
    for s in ("durable-spark", "floor-typed", "floor-batched"):
        cases.append(Case(s, 100000, group="100k"))
    for s in OURS:
        cases.append(Case(s, 10000, group="logging", log_level="WARNING"))
    # 1 step per cluster at 10,000 is 10,000 ListSteps per interval: the 1,000 row shows its cost per job
    for n, spc in ((1000, 1), (1000, 10), (10000, 10)):
        cases.append(Case("durable-emr", n, group="emr-layout", steps_per_cluster=spc))
    # a job per run: one GetJobRun per run and poll, the provider's request count
    cases.append(Case("durable-glue", 1000, group="glue-layout", runs_per_job=1))
    for s in OURS + PROVIDERS:
        cases.append(Case(s, 1000, group="ending", ending=1.0))
    for s in OURS:
        cases.append(Case(s, 10000, group="ending", ending=1.0))
    for s, n in (("durable-spark", 1000), ("livy", 1000), ("durable-spark", 10000)):
        cases.append(Case(s, n, group="interval", interval=30.0))
    return cases


def schedule(interval: float, steady_seconds: float = 8.0, spread: float = 6.0) -> tuple[int, float, float, float]:
    """(steady intervals, first end, last end, events window) for a poll interval; times in seconds.

    Steady: about ``steady_seconds`` of whole intervals (at least one). Events: the ends spread over
    max(``spread``, one interval) from half an interval on; the window lasts one interval and a little past the
    last end (2 s, or two intervals when shorter).
    """
    steady = max(1, round(steady_seconds / interval))
    first = 0.5 * interval
    last = first + max(spread, interval)
    return steady, first, last, last + interval + min(2.0, 2 * interval)


# --- the providers' venv ------------------------------------------------------------------------------------


def provider_python(log: Path) -> tuple[Path | None, str]:
    """``build/bench-venv``'s python, installing it when its requirements changed; (None, why) if impossible."""
    py = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / ".requirements"
    wanted = "\n".join(PROVIDER_REQUIREMENTS)
    if py.exists() and stamp.exists() and stamp.read_text() == wanted:
        return py, "cached"
    print(f"creating {BENCH_VENV.relative_to(ROOT)} for the providers' triggers (once; log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        steps = [
            [sys.executable, "-m", "venv", str(BENCH_VENV)],
            [str(py), "-m", "pip", "install", "--quiet", *PROVIDER_REQUIREMENTS],
        ]
        for cmd in steps:
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode != 0:
                return None, f"`{' '.join(cmd[-4:])}` failed; see {log}"
    stamp.write_text(wanted)
    return py, "installed"


# --- the endpoints ------------------------------------------------------------------------------------------


class Servers:
    """bench_servers.py in a child process, stopped by closing its stdin, then by its PID."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bench_servers.py"), str(directory)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the benchmark's fake endpoints did not start")
        self.urls: dict[str, str] = json.loads(line)

    def setup(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(spec).encode()
        req = urllib.request.Request(f"{self.urls['control']}/_setup", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=900) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def stop(self) -> None:
        from bench_probe import stop_child

        stop_child(self.proc)


# --- one measurement ----------------------------------------------------------------------------------------


def measure(servers: Servers, python: Path, case: Case, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from bench_children import FAKE_OF

    steady, first, last, window = schedule(case.interval, args.steady_seconds, args.spread)
    fake = FAKE_OF[case.system]
    setup_spec: dict[str, Any] = {
        "system": fake,
        "n": case.n,
        "first": first,
        "last": last,
        "fraction": case.ending,
        "steps_per_cluster": case.steps_per_cluster,
        "runs_per_job": case.runs_per_job,
        "pod_min_bytes": args.pod_bytes[0],
        "pod_max_bytes": args.pod_bytes[1],
        "unwatched": round(args.unwatched * case.n),
    }
    setup_started = time.monotonic()
    setup = servers.setup(setup_spec)
    spec = {
        "system": case.system,
        "n": case.n,
        "interval": case.interval,
        "steady_intervals": steady,
        "first": first,
        "last": last,
        "fraction": case.ending,
        "events_seconds": window,
        "pickup_per_second": args.pickup_per_second,
        "gc_freeze": args.gc_freeze,
        "log_level": case.log_level,
        "urls": servers.urls,
        "setup": setup,
    }
    spec_file = tmp / f"{case.system}-{case.n}.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(tmp / "airflow-home"))
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = case.log_level
    env.pop("PYTHONPATH", None)  # ours are installed in this venv; the providers' venv must not see them
    load_before = os.getloadavg()
    started = time.monotonic()
    proc = subprocess.run(
        [str(python), str(HERE / "bench_children.py"), str(spec_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    load_after = os.getloadavg()
    base = {"system": case.system, "jobs": case.n, "case": asdict(case), "variant": case.variant}
    if proc.returncode != 0 or not proc.stdout.strip():
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")[-2000:]
        return {**base, "failed": why}
    result: dict[str, Any] = {**base, **json.loads(proc.stdout.strip().splitlines()[-1])}
    result["case"], result["variant"] = asdict(case), case.variant
    # what one poll of this system must send at least: one request per endpoint, or more where the API pages
    result["endpoints"] = int(setup.get("endpoints", ENDPOINTS.get(case.system, 1)))
    result["requests_per_poll_floor"] = int(setup.get("requests_per_poll_floor", result["endpoints"]))
    for key in ("pod_bytes_mean", "unwatched", "steps_per_cluster", "runs_per_job"):
        if key in setup:
            result[f"fake_{key}"] = setup[key]
    result["schedule_args"] = [args.steady_seconds, args.spread]
    result["setup_seconds"] = round(started - setup_started, 1)
    result["process_seconds"] = round(time.monotonic() - started, 1)
    result["loadavg_1m"] = [round(load_before[0], 2), round(load_after[0], 2)]
    return derive(result)


def derive(r: dict[str, Any]) -> dict[str, Any]:
    """Requests per interval in the steady and events windows, and the issue's bound for each."""
    interval = r["case"]["interval"]
    srv = r["server"]
    floor = r.get("requests_per_poll_floor", 1)
    steady = srv["steady"]
    r["steady_requests_per_interval"] = round(steady["requests"] / max(1e-9, steady["seconds"] / interval), 2)
    r["steady_target_requests"] = floor
    ev = srv["events"]
    ev_intervals = max(1e-9, ev["seconds"] / interval)
    r["events_requests_per_interval"] = round(ev["requests"] / ev_intervals, 2)
    r["events_target_requests"] = round(floor + r["ending_jobs"] / ev_intervals, 2)
    # CPU per event: the events window's CPU less what waiting would have cost in it. Waiting costs per waiting
    # job (per-job pollers stop polling a job once it ended, and every poller's per-job work shrinks), so the
    # steady rate is scaled by the job-seconds still waiting: each ended job is taken to wait until its end plus
    # the median latency, its end spread evenly over [first, last].
    n, m = r["jobs"], r["ending_jobs"]
    if n and r.get("events"):
        _, first, last, _ = schedule(interval, *r.get("schedule_args", (8.0, 6.0)))
        length = r["events_seconds"]
        waited = min(length, (first + last) / 2 + (r.get("latency_p50_s") or 0.0))
        job_seconds = n * length - m * (length - waited)
        idle = r["steady_cpu_seconds"] / r["steady_seconds"] * job_seconds / n
        r.setdefault("cpu_ms_per_event_unscaled", r["cpu_ms_per_event"])
        r["cpu_ms_per_event"] = round(1000 * (r["events_cpu_seconds"] - idle) / r["events"], 4)
    return r


# --- the report ---------------------------------------------------------------------------------------------

# the three costs compared between rows: start-up per trigger, steady per job and poll, per event
COSTS = {
    "startup": "startup_cpu_ms_per_job",
    "steady": "steady_cpu_us_per_job_poll",
    "event": "cpu_ms_per_event",
}


def ok(r: dict[str, Any]) -> bool:
    return "failed" not in r


def key_of(r: dict[str, Any]) -> tuple[int, float, float, str]:
    c = r["case"]
    return (int(c["n"]), float(c["interval"]), float(c["ending"]), str(c["log_level"]))


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Each cost against the providers and the floors of the same N, interval, endings and log level only."""
    by: dict[tuple[str, tuple[int, float, float, str]], dict[str, Any]] = {}
    for r in results:
        if ok(r) and r["system"] in PROVIDERS + FLOORS:
            by.setdefault((r["system"], key_of(r)), r)
    for r in results:
        if not ok(r):
            continue
        k = key_of(r)
        ratios: dict[str, dict[str, float | None]] = {}
        for cost, field_name in COSTS.items():
            mine = r.get(field_name)
            row: dict[str, float | None] = {}
            for other in PROVIDERS + FLOORS:
                o = by.get((other, k))
                theirs = None if o is None else o.get(field_name)
                row[other] = None if mine is None or not theirs or theirs <= 0 else round(mine / theirs, 4)
            ran = {p: v for p, v in row.items() if p in PROVIDERS and v is not None}
            row["best_provider"] = max(ran.values()) if ran else None  # the cheapest provider gives the largest
            ratios[cost] = row
        r["ratios"] = ratios
        r["providers_run"] = [p for p in PROVIDERS if (p, k) in by]


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10**-digits:
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def ratio(r: dict[str, Any], cost: str, against: str) -> str:
    if not r.get("ratios"):
        return "-"
    v = r["ratios"][cost].get(against)
    if v is None:
        return "not run" if against == "best_provider" and not r.get("providers_run") else "-"
    return f"{v:.3f}x"


COLUMNS: list[tuple[str, Any]] = [
    ("system", lambda r: r["system"]),
    ("variant", lambda r: r.get("variant") or "-"),
    ("N", lambda r: fmt(r["jobs"])),
    ("start-up s", lambda r: fmt(r["startup_seconds"], 1)),
    ("start-up CPU ms/job", lambda r: fmt(r["startup_cpu_ms_per_job"], 3)),
    ("start-up lag max s", lambda r: fmt(r["startup_lag_max_s"], 3)),
    (
        "steady req/interval (target)",
        lambda r: f"{fmt(r['steady_requests_per_interval'], 1)} ({r['steady_target_requests']})",
    ),
    ("steady CPU us/job/poll", lambda r: fmt(r["steady_cpu_us_per_job_poll"], 2)),
    ("CPU ms/event", lambda r: fmt(r["cpu_ms_per_event"], 3)),
    ("RSS KB/job", lambda r: fmt(r["rss_kb_per_job"], 2)),
    ("peak KB/job", lambda r: fmt(r["hwm_kb_per_job"], 2)),
    ("lag max s", lambda r: fmt(r["lag_max_s"], 3)),
    ("latency p99 s", lambda r: ("≥ " if r.get("latency_p99_at_least") else "") + fmt(r["latency_p99_s"], 2)),
    ("events", lambda r: f"{r['events']}/{r['ending_jobs']}"),
    ("steady vs best provider", lambda r: ratio(r, "steady", "best_provider")),
    ("steady vs typed floor", lambda r: ratio(r, "steady", "floor-typed")),
]


def order(r: dict[str, Any]) -> tuple[int, int, float, int, int]:
    groups = list(GROUPS)
    c = r["case"]
    g = groups.index(c["group"]) if c["group"] in groups else len(groups)
    s = EVERYONE.index(r["system"]) if r["system"] in EVERYONE else len(EVERYONE)
    return (g, int(c["n"]), float(c["interval"]), s, int(c.get("steps_per_cluster", 250)))


def rows(results: list[dict[str, Any]], group: str | None = None) -> list[list[str]]:
    out = []
    for r in sorted(results, key=order):
        if group is not None and r["case"]["group"] != group:
            continue
        if not ok(r):
            tail = r["failed"].strip().splitlines()[-1][:100] if r["failed"].strip() else "failed"
            out.append([r["system"], r.get("variant") or "-", fmt(r["jobs"]), "failed: " + tail])
            continue
        out.append([f(r) for _, f in COLUMNS])
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    head = [h for h, _ in COLUMNS]
    body = rows(results)
    widths = [max(len(h), *(len(row[i]) for row in body if len(row) > i)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in body:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=False)))


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": sys.version.split()[0],
    }


def comparison(results: list[dict[str, Any]]) -> list[str]:
    """The library's rows against the providers and the typed floor, at equal N only."""
    ours = [r for r in results if ok(r) and r["system"] in OURS and r.get("ratios") and r["case"]["group"] == "main"]
    if not ours:
        return []
    lines = [
        "## At equal N",
        "",
        "Each cost of the library's trigger divided by the same cost of the row named, at the **same N** (and interval,"
        " endings, log level). *best provider*: the cheapest of the providers' triggers run at that N.",
        "",
        "| system | N | providers run | start-up vs best provider | steady vs best provider"
        " | per event vs best provider | steady vs same system's provider | steady vs per-job floor"
        " | steady vs typed floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(ours, key=order):
        peer = PEER[r["system"]]
        ran = ", ".join(r["providers_run"]) or "none"
        lines.append(
            f"| {r['system']} | {fmt(r['jobs'])} | {ran} | {ratio(r, 'startup', 'best_provider')} | "
            f"{ratio(r, 'steady', 'best_provider')} | {ratio(r, 'event', 'best_provider')} | "
            f"{ratio(r, 'steady', peer) if r['providers_run'] else 'not run'} | {ratio(r, 'steady', 'floor')} | "
            f"{ratio(r, 'steady', 'floor-typed')} |"
        )
    not_run = sorted({r["jobs"] for r in ours if not r["providers_run"]})
    if not_run:
        lines += [
            "",
            "Providers were **not run** at N = " + ", ".join(f"{n:,}" for n in not_run) + " (`--provider-max-jobs`): no"
            " ratio against them is given there, and none is taken across N.",
        ]
    return [*lines, ""]


def targets(report: dict[str, Any]) -> list[str]:
    """The issue's targets this harness can check, against this run."""
    res = [r for r in report["results"] if ok(r)]

    def pick(system: str, n: int, group: str = "main") -> dict[str, Any] | None:
        return next((r for r in res if r["system"] == system and r["jobs"] == n and r["case"]["group"] == group), None)

    lines = [
        "## The issue's targets against this run",
        "",
        "| measure | target | row | this run | |",
        "| --- | --- | --- | --- | --- |",
    ]

    def add(what: str, target: str, r: dict[str, Any] | None, value: str, met: bool | None) -> None:
        if r is None:
            return
        row = f"{r['system']} @ {r['jobs']:,}" + (f" ({r['variant']})" if r.get("variant") else "")
        lines.append(
            f"| {what} | {target} | {row} | {value} | {'met' if met else '**missed**' if met is False else ''} |"
        )

    big = pick("durable-spark", 100000, "100k")
    typed = pick("floor-typed", 100000, "100k")
    if big:
        us = big["steady_cpu_us_per_job_poll"]
        floor_us = typed["steady_cpu_us_per_job_poll"] if typed else None
        extra = f" (typed-decode floor {floor_us:.2f} µs)" if floor_us else ""
        add("CPU per waiting job per poll, 100,000 jobs", "≤ 1 µs", big, f"{us:.2f} µs{extra}", us <= 1.0)
        add(
            "max loop lag, 100,000 jobs (whole run)",
            "< 0.1 s",
            big,
            f"{big['lag_max_s']:.3f} s",
            big["lag_max_s"] < 0.1,
        )
        add(
            "max loop lag, 100,000 jobs, steady",
            "< 0.1 s",
            big,
            f"{big['steady_lag_max_s']:.3f} s",
            big["steady_lag_max_s"] < 0.1,
        )
        add(
            "memory per job, 100,000 jobs",
            "(reported)",
            big,
            f"RSS {big['rss_kb_per_job']:.2f} KB, peak {big['hwm_kb_per_job']:.2f} KB",
            None,
        )
    for s in OURS:
        r = pick(s, 10000)
        if r is None:
            continue
        add("RSS per waiting job", "≤ 5 KB", r, f"{r['rss_kb_per_job']:.2f} KB", r["rss_kb_per_job"] <= 5)
        add(
            "max loop lag (start-up, first full poll, steady, events)",
            "< 0.1 s",
            r,
            f"{r['lag_max_s']:.3f} s",
            r["lag_max_s"] < 0.1,
        )
        t = r["steady_target_requests"]
        add(
            "requests per interval, waiting",
            f"≤ {t} (one poll)",
            r,
            f"{r['steady_requests_per_interval']:.1f}",
            r["steady_requests_per_interval"] <= t * 1.05,
        )
        p99 = r["latency_p99_s"]
        limit = r["case"]["interval"] + 1
        add(
            "event latency p99",
            f"≤ interval + 1 s ({limit:g} s)",
            r,
            f"{p99} s",
            p99 is not None and p99 <= limit and not r["latency_p99_at_least"],
        )
    for s in OURS:
        r = pick(s, 1000)
        if r is None or not r.get("ratios"):
            continue
        v = r["ratios"]["steady"]["best_provider"]
        add(
            "steady CPU per job vs the best provider, equal N",
            "≤ 1/3",
            r,
            "not run" if v is None else f"{v:.3f}x",
            None if v is None else v <= 1 / 3,
        )
    for r in res:
        if r["system"] == "durable-emr" and r["case"]["group"] == "emr-layout" and r.get("ratios"):
            v = r["ratios"]["steady"]["best_provider"]
            if v is not None:
                add("steady CPU per job vs the best provider, equal N", "≤ 1/3", r, f"{v:.3f}x", v <= 1 / 3)
    for s in OURS:
        r = pick(s, 10000, "ending")
        if r is not None:
            p99, limit = r["latency_p99_s"], r["case"]["interval"] + 1
            value = f"{'≥ ' if r['latency_p99_at_least'] else ''}{p99} s, {r['events']:,}/{r['ending_jobs']:,} events"
            add(
                "event latency p99, every job ending",
                f"≤ {limit:g} s",
                r,
                value,
                p99 <= limit and not r["latency_p99_at_least"],
            )
    r30 = pick("durable-spark", 1000, "interval")
    if r30 and r30.get("ratios"):
        v = r30["ratios"]["steady"].get("livy")
        add(
            "steady CPU per task vs LivyTrigger at a 30 s interval, equal N",
            "≤ 0.25x",
            r30,
            "not run" if v is None else f"{v:.3f}x",
            None if v is None else v <= 0.25,
        )
    return [*lines, ""]


METHOD = """## Method

* **What runs.** Each row is its own process running N real trigger instances on one asyncio loop as Airflow
  3.3's triggerer runner does: `create_triggers` takes the triggers its supervisor handed over **one per loop
  turn** (an `asyncio.sleep(0)` before each), and `run_trigger` runs each as a task with the trigger's log
  context bound, `run()` iterated to its first event, then `cleanup()`. Not reproduced: the runner's own
  per-trigger extras (span, greenback portal, "trigger starting/fired" lines), which every trigger pays alike;
  [performance-triggerer.md](performance-triggerer.md) measures them in a real `airflow triggerer`.
* **`max_trigger_to_select_per_loop`** (Airflow 3.3.2, `Trigger.get_sorted_triggers`) limits how many
  *unassigned* triggers the **supervisor** claims from the database per query in one of its loops (about one a
  second; default 50): a triggerer picks up at most about 50 new triggers a second, so N = 10,000 deferred
  tasks take minutes to be picked up after a start. It does not batch creation in the runner, which creates what
  it was handed one per loop turn. Here all N are handed over at once (as with the setting raised to N, the
  hardest case for the loop); `--pickup-per-second 50` feeds them at Airflow's default pace instead.
* **Windows** (each measured apart; `bench_probe.py`). *Start-up*: from the first creation until the first poll
  that covers every trigger has been handed out and its waiters have run (the library's pollers report it; for
  the per-job systems one interval and 1 s after the last creation, by when each has polled once): the *start-up
  CPU* per trigger includes that first full poll. *Steady*: about 8 s of whole intervals (one at 30 s) with
  every trigger waiting and no job ending: *steady CPU* per job and poll, and the requests the endpoint got.
  *Events*: the jobs' schedule starts; a share of them (20%, or all) end spread over 6 s (one interval at 30 s)
  from half an interval on; the window is the same wall time for every system; *CPU per event* is the window's
  CPU less the steady rate over its length, per event. Latency is from a job's scripted end to its event.
* **The harness's own costs are out of every CPU figure.** Its full collection and RSS mark sit between start-up
  and steady, in no window (and the loop turn it takes is kept out of the lag); its socket sampler is a thread
  whose own CPU clock is read and taken off. No probe task wakes the loop: on this VM every wake-up of a
  sleeping thread costs 70-300 µs of CPU, which a 50 ms probe would have charged to the system measured
  (20 wake-ups a second: more than the library's whole steady cost at N = 1,000). CPU is user + system of the
  process otherwise (any thread a trigger uses counts).
* **Memory.** *RSS KB/job*: VmRSS after a full collection with every trigger waiting, minus VmRSS before the
  first creation, over N. *Peak KB/job*: the peak RSS (VmHWM, reset before the first creation) over the whole
  run less the same base, over N: what start-up, the first full poll and the events needed at most.
* **Lag** is the longest turn of the event loop: `loop._run_once` and the selector's `select` are wrapped, and
  a turn's time outside `select` is how long a timer or socket that became ready meanwhile waited (a garbage
  collection inside the turn included). *start-up lag*: while the N triggers are created and through the first
  full poll; *lag max*: over all three windows.
* **Logging** as the triggerer's runner configures it: `configure_logging(json_output=True,
  sending_to_supervisor=True)` at `[logging] logging_level` (INFO; WARNING for the rows that say so), into
  /dev/null: every line is formatted (structlog JSON with call site and context), none is written.
* **Endpoints.** `benchmarks/bench_servers.py`, another process on 127.0.0.1, on the same 2 cores: the
  project's fake Spark master (REST status and a Spark-4-shaped `/json/`, rendered once per change), a fake
  Livy, the project's contract fake kube-apiserver over TLS with **pods of 5-20 KB** (managed fields, env,
  last-applied configuration) and as many **unwatched pods** in the namespace as watched ones, a fake EMR
  JSON API (`DescribeStep`, `ListSteps` in pages of 50) with 250, 10 or 1 steps per cluster, Glue on the same
  AWS JSON endpoint (`GetJobRun`, `GetJobRuns` newest first in pages of at most 200) with 100 runs per job name,
  a Databricks Jobs API 2.2 stub (bearer PAT; `runs/get`, `runs/list` in pages of at most 24 with
  `page_token`) with multi-task submit runs, and BigQuery's `jobs.get` and `jobs.list` (pending and running, in
  pages of at most 1,000) with query jobs, behind the project's contract fake's token endpoint and bearer check
  (both sides trade a service-account key's signed assertion for a token there). It counts every request by
  window. The Spark connection's extra sets
  `max_response_bytes` to 64 MiB (a `/json/` of 100,000 drivers is about 26 MB; the default ceiling of 16 MiB
  refuses it).
* **The floors.** *floor*: a bare coroutine per job GETting its driver's REST status on one shared aiohttp
  session every interval (per-job polling at its cheapest). *floor-batched*: one bare loop GETting `/json/`
  with `resp.json()` (`json.loads`) and waking the coroutines whose driver ended. *floor-typed*: the same loop
  decoding `/json/` with msgspec straight into `(id, state)` structs: the typed-decode floor of a batched poll.
  None logs, validates, keys, confirms or handles errors.
* **Requests.** The target while waiting is what one poll must send: one request per endpoint (one `ListSteps`
  per page of 50 active steps per cluster for EMR, so one per cluster at 1 or 10 steps per cluster; one
  `runs/list` page per 24 active runs for Databricks; one `GetJobRuns` page per 200 runs of each job name for
  Glue; one `jobs.list` page per 1,000 pending and running jobs of the project for BigQuery).
* **What each row does per poll.** The library's triggers share one poller per connection: Spark standalone a
  `/json/` of the master (REST only for drivers it reports ended); Kubernetes nothing (one list+watch per
  namespace); EMR a `ListSteps` walk per cluster; Databricks one `runs/list?active_only=true` walk per workspace
  (`runs/get` for runs that left it); Glue one `GetJobRuns` walk per job name, until every waiting run of it was
  seen (`GetJobRun` for the few not listed); BigQuery one `jobs.list` walk of the pending and running jobs per
  project (`jobs.get` for jobs that left it). The providers' triggers ask per job: `LivyTrigger` a
  `GET /batches/{id}/state`, `KubernetesPodTrigger` a pod read, `EmrStepSensorTrigger` a `DescribeStep` waiter,
  `DatabricksExecutionTrigger` a `runs/get`, `GlueJobCompleteTrigger` a `GetJobRun` waiter (aiobotocore),
  `BigQueryInsertJobTrigger` `BigQueryAsyncHook.get_job_status`, which in google 22.8.0 runs the sync hook's
  `get_job` in a thread: a new google-cloud-bigquery `Client` and a `jobs.get` per job and poll (gcloud-aio is
  not on this path).
"""


def write_doc(report: dict[str, Any], path: Path) -> None:
    m = report["machine"]
    loads = [x for r in report["results"] if "loadavg_1m" in r for x in r["loadavg_1m"]]
    head = [h for h, _ in COLUMNS]
    lines = [
        "# Triggerer performance (library harness)",
        "",
        "What waiting costs in one trigger process: N deferred jobs as real trigger instances on one event loop,",
        "the library's triggers next to the providers' triggers and three floors, against the same local",
        f"endpoints, in one run of `{report['command']}` ({report['when']}, {report['seconds']:.0f} s).",
        "A real `airflow triggerer` (supervisor, runner, metadata database, restarts, HA) is measured in",
        "[performance-triggerer.md](performance-triggerer.md).",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}; 1-minute load"
        f" average {min(loads, default=0):.2f}-{max(loads, default=0):.2f} while the rows ran (the benchmark's"
        " own two processes included; the endpoints run on the same cores as the triggers). Read the **ratios**"
        " between rows of one N: absolute times depend on the machine and its load and are not promises."
        " Providers: " + ", ".join(f"`{p}`" for p in report["settings"]["provider_requirements"]) + ", in"
        " `build/bench-venv`.",
        "",
    ]
    ran = sorted({r["system"] for r in report["results"]}, key=lambda s: EVERYONE.index(s) if s in EVERYONE else 99)
    lines += ["Rows: " + "; ".join(f"`{s}`: {LABEL.get(s, s)}" for s in ran) + ".", ""]
    lines += comparison(report["results"])
    for group, title in GROUPS.items():
        body = rows(report["results"], group)
        if not body:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        lines += ["| " + " | ".join(row + [""] * (len(head) - len(row))) + " |" for row in body]
        lines.append("")
    lines += [
        "*start-up*: from the first trigger's creation until a poll covering all of them was handed out (CPU per"
        " trigger, first full poll included; lag max in that window). *steady*: every trigger waiting, nothing"
        " ending: requests per interval at the endpoint (in brackets, what one poll must send) and CPU per job and"
        " poll. *CPU ms/event*: the events window's CPU less the steady rate, per event. *peak KB/job*: VmHWM over"
        " the run less the base. *lag max*: the whole run. A latency `≥ x` is a lower bound (events missed by the"
        " end of the window count with the time they had waited). Ratios: same N, interval, endings and log level"
        " only; `not run`: no provider was run at that N. The floors poll the Spark master: for the Kubernetes,"
        " EMR, Databricks, Glue and BigQuery rows they are a yardstick, not the same work. A per-job poller's CPU"
        " per event is within the noise of subtracting its large waiting cost (a negative figure is that noise).",
        "",
    ]
    if report.get("notes"):
        lines += [f"* {note}" for note in report["notes"]] + [""]
    lines += targets(report)
    if report.get("findings"):
        lines += ["## What the figures say", "", *report["findings"], ""]
    lines += [METHOD]
    path.write_text("\n".join(lines).rstrip() + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--jobs", type=int, nargs="+", help="N values (with --systems: a plain grid instead of the matrix)"
    )
    parser.add_argument("--systems", nargs="+", choices=EVERYONE, help="systems of the grid (default: all)")
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), help="only these groups of the default matrix")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval of the grid's rows (s)")
    parser.add_argument("--ending", type=float, default=0.2, help="share of the jobs that end in the grid's rows")
    parser.add_argument("--log-level", default="INFO", choices=["INFO", "WARNING"], help="log level of the grid's rows")
    parser.add_argument("--steps-per-cluster", type=int, default=250, help="EMR layout of the grid's rows")
    parser.add_argument("--runs-per-job", type=int, default=100, help="Glue layout of the grid's rows")
    parser.add_argument(
        "--steady-seconds", type=float, default=8.0, help="steady window: about this long, whole intervals"
    )
    parser.add_argument(
        "--spread", type=float, default=6.0, help="the ending jobs end over this long (at least an interval)"
    )
    parser.add_argument(
        "--pickup-per-second", type=float, default=0.0, help="triggers handed over per second (0: all at once)"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after set-up (the import-time heap out of the collector)"
    )
    parser.add_argument(
        "--pod-bytes", type=int, nargs=2, default=[5000, 20000], metavar=("MIN", "MAX"), help="pod sizes"
    )
    parser.add_argument("--unwatched", type=float, default=1.0, help="unwatched pods in the namespace, per watched pod")
    parser.add_argument(
        "--provider-max-jobs",
        type=int,
        default=1000,
        help="largest N the providers' triggers run at (at 10,000 they saturate the loop for minutes; 0: no limit)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--doc", type=Path, default=DOC, help="markdown to write")
    parser.add_argument("--no-doc", action="store_true", help="do not write the markdown")
    parser.add_argument("--render", type=Path, help="only rewrite the markdown from this JSON of an earlier run")
    parser.add_argument("--findings", type=Path, help="markdown lines for the doc's 'What the figures say'")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        if args.findings:
            report["findings"] = args.findings.read_text().rstrip("\n").splitlines()
        report["results"] = [derive(r) if ok(r) else r for r in report["results"]]
        add_ratios(report["results"])
        write_doc(report, args.doc)
        print(f"wrote {args.doc}")
        return 0

    if args.jobs or args.systems:
        cases = [
            Case(
                s,
                n,
                interval=args.interval,
                ending=args.ending,
                log_level=args.log_level,
                steps_per_cluster=args.steps_per_cluster,
                runs_per_job=args.runs_per_job,
            )
            for n in (args.jobs or [1000, 10000])
            for s in sorted(args.systems or EVERYONE, key=EVERYONE.index)
        ]
    else:
        cases = default_matrix()
        if args.groups:
            cases = [c for c in cases if c.group in args.groups]

    notes: list[str] = []
    skipped = [c for c in cases if c.system in PROVIDERS and 0 < args.provider_max_jobs < c.n]
    cases = [c for c in cases if c not in skipped]
    provider_py = None
    if any(c.system in PROVIDERS for c in cases):
        provider_py, how = provider_python(ROOT / "build" / "bench" / "bench-venv-install.log")
        if provider_py is None:
            notes.append(f"The providers could not be installed ({how}); their rows are missing.")
            print(notes[-1], flush=True)

    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="triggerer-bench-") as tmpdir:
        tmp = Path(tmpdir)
        servers = Servers(tmp)
        try:
            for case in cases:
                python = provider_py if case.system in PROVIDERS else Path(sys.executable)
                if python is None:
                    continue
                label = f"{case.system} x {case.n}" + (f" [{case.variant}]" if case.variant else "")
                print(f"  {label} ...", end=" ", flush=True)
                r = measure(servers, python, case, args, tmp)
                results.append(r)
                if not ok(r):
                    print("FAILED", r["failed"].strip().splitlines()[-1][:200], flush=True)
                else:
                    print(
                        f"start-up {r['startup_seconds']}s ({r['startup_cpu_ms_per_job']} ms/job, lag "
                        f"{r['startup_lag_max_s']}s), steady {r['steady_cpu_us_per_job_poll']} us/job/poll "
                        f"{r['steady_requests_per_interval']} req/interval, {r['cpu_ms_per_event']} ms/event, "
                        f"lag max {r['lag_max_s']}s, p99 {r['latency_p99_s']}s, {r['events']}/{r['ending_jobs']} "
                        f"events, RSS {r['rss_kb_per_job']} KB/job, load {r['loadavg_1m']}",
                        flush=True,
                    )
        finally:
            servers.stop()
    add_ratios(results)
    if skipped:
        notes.append(
            f"Not run (--provider-max-jobs {args.provider_max_jobs}): "
            + ", ".join(f"{c.system}@{c.n:,}" + (f" ({c.variant})" if c.variant else "") for c in skipped)
            + ". No ratio against a provider is given at an N it did not run at."
        )
    for r in results:
        if ok(r) and r.get("overrun_seconds", 0) > 1:
            notes.append(
                f"{r['system']} x {r['jobs']:,}: saturated; its loop got back to the end of the events window "
                f"{r['overrun_seconds']:.0f} s late, so its events window is longer."
            )
        if ok(r) and not r.get("startup_full_poll_seen", True):
            notes.append(f"{r['system']} x {r['jobs']:,}: the first full poll was not seen within the start-up limit.")
    report = {
        "benchmark": "triggerer_scale",
        "command": " ".join(["python benchmarks/triggerer_scale.py", *sys.argv[1:]]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "settings": {
            "pickup_per_second": args.pickup_per_second,
            "pod_bytes": args.pod_bytes,
            "unwatched_per_watched": args.unwatched,
            "provider_max_jobs": args.provider_max_jobs,
            "provider_requirements": PROVIDER_REQUIREMENTS,
        },
        "notes": notes,
        "results": results,
    }
    if args.findings:
        report["findings"] = args.findings.read_text().rstrip("\n").splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print_table(results)
    print(f"\nwrote {args.out}")
    if not args.no_doc:
        write_doc(report, args.doc)
        print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
