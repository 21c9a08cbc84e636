"""Triggerer performance: N deferred jobs in one process, the library's triggers side by side with the
providers' triggers and with a floor, against the same local endpoints, in one run.

    python benchmarks/triggerer_scale.py                       # N = 100, 1,000 and 10,000 (about 7 minutes)
    python benchmarks/triggerer_scale.py --jobs 1000 10000 --run-seconds 30 --first-end 8 --last-end 22
    python benchmarks/triggerer_scale.py --jobs 1000 --systems durable-spark floor livy --no-doc

For every system and N, a fresh process (``bench_children.py``) runs N real trigger instances on one event
loop as the triggerer does (one task per ``trigger.run()``, its first event awaited) and measures itself: CPU
seconds, RSS per waiting job (VmRSS delta after a full collection, divided by N), event-loop lag (a 50 ms
probe), event latency after each job's scripted end, open sockets. The endpoints live in another process
(``bench_servers.py``), which counts every request. Jobs end evenly spread between ``--first-end`` and
``--last-end`` seconds into a run of ``--run-seconds``; all systems get the same schedule, interval and
wall time. The providers' triggers run in ``build/bench-venv`` (created on first use and kept: the
amazon provider pins boto3/botocore below the project's aiobotocore), so their figures come from the same
run, machine and load as ours.

Writes ``build/bench/triggerer_scale.json``, prints a table and writes it to ``docs/performance.md``.
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
]
OURS = ["durable-spark", "durable-kube", "durable-emr"]
FLOORS = ["floor", "floor-batched"]
PROVIDERS = ["livy", "kube-pod", "emr-step"]
# who is compared with whom: the library's trigger, the provider trigger on the same kind of endpoint
PEER = {"durable-spark": "livy", "durable-kube": "kube-pod", "durable-emr": "emr-step"}
# endpoints one poll asks, where the endpoint process does not say (it does for EMR: clusters and their pages)
ENDPOINTS = {"durable-spark": 1, "floor-batched": 1, "durable-kube": 1}
LABEL = {
    "durable-spark": "durable_jobs Spark standalone",
    "durable-kube": "durable_jobs Kubernetes (pods)",
    "durable-emr": "durable_jobs EMR steps",
    "floor": "floor: per-job GET, shared session",
    "floor-batched": "floor: one /json/ loop",
    "livy": "LivyTrigger (livy 4.6.4)",
    "kube-pod": "KubernetesPodTrigger (cncf-k8s 10.25.0)",
    "emr-step": "EmrStepSensorTrigger (amazon 9.39.0)",
}


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

    def setup(self, fake: str, n: int, first: float, last: float, fraction: float) -> dict[str, Any]:
        body = json.dumps({"system": fake, "n": n, "first": first, "last": last, "fraction": fraction}).encode()
        req = urllib.request.Request(f"{self.urls['control']}/_setup", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=300) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def stop(self) -> None:
        from bench_probe import stop_child

        stop_child(self.proc)


# --- one measurement ----------------------------------------------------------------------------------------


def measure(servers: Servers, python: Path, system: str, n: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from bench_children import FAKE_OF

    setup = servers.setup(FAKE_OF[system], n, args.first_end, args.last_end, args.ending)
    spec = {
        "system": system,
        "n": n,
        "interval": args.interval,
        "run_seconds": args.run_seconds,
        "first": args.first_end,
        "last": args.last_end,
        "fraction": args.ending,
        "settle_seconds": args.settle_seconds,
        "urls": servers.urls,
        "setup": setup,
        "loop": args.loop if system in OURS else "asyncio",
    }
    spec_file = tmp / f"{system}-{n}.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(tmp / "airflow-home"))
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
    env["PYTHONPATH"] = str(ROOT) if system in OURS else ""
    load_before = os.getloadavg()
    started = time.monotonic()
    proc = subprocess.run(
        [str(python), str(HERE / "bench_children.py"), str(spec_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=args.run_seconds + 600,
        check=False,
    )
    load_after = os.getloadavg()
    if proc.returncode != 0 or not proc.stdout.strip():
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")[-2000:]
        return {"system": system, "jobs": n, "failed": why}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # what one poll of this system must send at least: one request per endpoint, or more where the API pages
    result["endpoints"] = int(setup.get("endpoints", ENDPOINTS.get(system, 1)))
    result["requests_per_poll_floor"] = int(setup.get("requests_per_poll_floor", result["endpoints"]))
    result["process_seconds"] = round(time.monotonic() - started, 1)
    result["loadavg_1m"] = [round(load_before[0], 2), round(load_after[0], 2)]
    return derive(result, args)


def derive(r: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    intervals = args.run_seconds / args.interval
    n = r["jobs"]
    srv = r["server"]
    r["requests_per_interval"] = round(srv["requests"] / intervals, 1)
    # the target: every endpoint once per interval (its pages, where the API pages), plus one request per job whose
    # state changed
    floor = r.get("requests_per_poll_floor", ENDPOINTS.get(r["system"], 1))
    r["target_requests_per_interval"] = round(floor + r["ending_jobs"] / intervals, 1)
    r["cpu_ms_per_job"] = round(1000 * r["cpu_seconds"] / n, 3)
    r["cpu_us_per_job_interval"] = round(1e6 * r["cpu_seconds"] / n / intervals, 1)
    return r


# --- the report ---------------------------------------------------------------------------------------------


def add_ratios(results: list[dict[str, Any]]) -> None:
    """CPU per job against the best provider and the floors of the same N.

    A provider not run at this N (``--provider-max-jobs``) is taken at the largest N it ran at, per job: a
    conservative stand-in, since a provider's cost per job only grows with N (its loop saturates).
    """
    by = {(r["system"], r["jobs"]): r for r in results if "failed" not in r}
    for r in by.values():
        n = r["jobs"]
        providers = []
        for p in PROVIDERS:
            ran = [m for (s, m) in by if s == p and m <= n]
            if ran:
                providers.append(by[(p, max(ran))])
        per_job = r["cpu_seconds"] / n
        if providers:
            best = min(providers, key=lambda p: p["cpu_seconds"] / p["jobs"])
            r["best_provider"] = f"{best['system']}@{best['jobs']}"
            r["cpu_vs_best_provider"] = round(per_job / max(best["cpu_seconds"] / best["jobs"], 1e-12), 3)
        for f in FLOORS:
            if (f, n) in by:
                r[f"cpu_vs_{f}"] = round(r["cpu_seconds"] / max(by[(f, n)]["cpu_seconds"], 1e-9), 3)
        peer = PEER.get(r["system"])
        peer_ran = [m for (s, m) in by if s == peer and m <= n]
        if peer and peer_ran:
            p = by[(peer, max(peer_ran))]
            r["peer_provider"] = f"{peer}@{p['jobs']}"
            r["cpu_vs_peer_provider"] = round(per_job / max(p["cpu_seconds"] / p["jobs"], 1e-12), 3)


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


COLUMNS = [
    ("system", "system"),
    ("N", "jobs"),
    ("req/interval", "requests_per_interval"),
    ("target", "target_requests_per_interval"),
    ("CPU ms/job", "cpu_ms_per_job"),
    ("RSS KB/job", "rss_kb_per_job"),
    ("lag max s", "lag_max_s"),
    ("lag p99 s", "lag_p99_s"),
    ("latency p50 s", "latency_p50_s"),
    ("latency p99 s", "latency_p99_s"),
    ("events", "events_of_ending"),
    ("sockets open", "sockets_peak"),
    ("sockets used", "client_sockets"),
    ("CPU vs best provider", "cpu_vs_best_provider"),
    ("CPU vs floor", "cpu_vs_floor"),
    ("CPU vs batched floor", "cpu_vs_floor-batched"),
]


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in sorted(results, key=lambda r: (r["jobs"], order(r["system"]))):
        if "failed" in r:
            out.append([r["system"], str(r["jobs"]), "failed: " + r["failed"].strip().splitlines()[-1][:80]])
            continue
        r = {
            **r,
            "events_of_ending": f"{r['events']}/{r['ending_jobs']}",
            "client_sockets": r["server"]["client_sockets"],
        }
        for q in ("p50", "p99"):
            if r.get(f"latency_{q}_at_least"):
                r[f"latency_{q}_s"] = f">= {r[f'latency_{q}_s']:.2f}"
        if r.get("best_provider") and not r["best_provider"].endswith(f"@{r['jobs']}"):
            r["cpu_vs_best_provider"] = f"{r['cpu_vs_best_provider']:.3f} ({r['best_provider']})"
        out.append([fmt(r.get(key), 3 if key.startswith(("lag", "cpu_vs")) else 2) for _, key in COLUMNS])
    return out


def order(system: str) -> int:
    everyone = OURS + FLOORS + PROVIDERS
    return everyone.index(system) if system in everyone else len(everyone)


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


def targets(report: dict[str, Any]) -> list[str]:
    """The issue's targets for each of the library's triggers at the largest N, checked against this run."""
    ours = [r for r in report["results"] if r["system"] in OURS and "failed" not in r]
    if not ours:
        return []
    n = max(r["jobs"] for r in ours)
    cols = [r for s in OURS for r in ours if r["system"] == s and r["jobs"] == n]
    interval = report["settings"]["interval"]

    def verdict(met: bool | None) -> str:
        return "" if met is None else (" (met)" if met else " (**missed**)")

    def cell(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        if key == "requests_per_interval":
            t = r["target_requests_per_interval"]
            return f"{v} of {t}{verdict(v <= t)}"
        if key == "rss_kb_per_job":
            return f"{v} KB{verdict(v <= 5)}"
        if key == "lag_max_s":
            return f"{v} s{verdict(v < 0.1)}"
        if key == "cpu_vs_best_provider":
            return "-" if v is None else f"{v:.3f}x ({r.get('best_provider')}){verdict(v <= 1 / 3)}"
        if key == "cpu_vs_floor":
            return "-" if v is None else f"{v:.3f}x{verdict(v <= 1.5)}"
        if key == "cpu_vs_floor-batched":
            return "-" if v is None else f"{v:.2f}x"
        if key == "cpu_vs_peer_provider":
            return "-" if v is None else f"{v:.3f}x ({r.get('peer_provider')})"
        censored = bool(r.get("latency_p99_at_least"))
        return "-" if v is None else f"{'>= ' if censored else ''}{v} s{verdict(not censored and v <= interval + 1)}"

    measures = [
        ("requests per poll interval", "requests_per_interval", "<= requests one poll needs + jobs ended per interval"),
        ("RSS per job", "rss_kb_per_job", "<= 5 KB"),
        ("max event-loop lag", "lag_max_s", "< 0.1 s"),
        ("CPU per job vs the best provider", "cpu_vs_best_provider", "<= 1/3"),
        ("CPU per job vs the same system's provider trigger", "cpu_vs_peer_provider", "(the same endpoint, same N)"),
        ("CPU per job vs the floor (per-job GET, shared session)", "cpu_vs_floor", "<= 1.5x"),
        ("CPU per job vs the batched floor (one /json/ loop)", "cpu_vs_floor-batched", "(not a target: see below)"),
        ("event latency p99", "latency_p99_s", f"<= {interval + 1:g} s (interval + 1 s)"),
    ]
    lines = [
        f"## Targets at N = {n:,}",
        "",
        "| measure | target | " + " | ".join(r["system"] for r in cols) + " |",
        "| --- | --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for what, key, target in measures:
        lines.append(f"| {what} | {target} | " + " | ".join(cell(r, key) for r in cols) + " |")
    floors = ", ".join(
        f"{r['system']}: {r.get('requests_per_poll_floor', 1)} request(s) over {r.get('endpoints', 1)} endpoint(s)"
        for r in cols
    )
    return [*lines, "", f"What one poll needs at least: {floors}.", ""]


READING = """## Reading the figures

* **What runs.** Each row is its own process running N real trigger instances on one asyncio loop, as
  Airflow 3.3's `TriggerRunner.run_trigger` does: one task per trigger, the trigger's log context bound
  in it, `run()` iterated to its first event, then `cleanup()`. The triggerer's own extras (its span,
  greenback portal, "trigger starting/fired" lines) are left out: every trigger pays them alike. Triggers
  are created 50 per loop turn (`max_trigger_to_select_per_loop`).
* **Endpoints.** `benchmarks/bench_servers.py`, another process on 127.0.0.1: the project's fake Spark
  master (REST status and a `/json/` shaped like Spark 4's), a fake Livy (`/batches/{id}/state` and
  `/log`), the project's contract fake kube-apiserver over TLS, and a fake EMR JSON API (`DescribeStep`,
  `ListSteps` in pages of 50 like AWS; moto's O(steps) `DescribeStep` would have measured moto). EMR steps
  live on clusters of 250, as AWS allows at most 256 active steps per cluster (10,000 steps: 40 clusters).
  It counts every request.
* **Schedule.** Every system gets the same one: all N jobs running at the start; a fraction of them
  (`--ending`) end evenly spread between two times; the rest keep running, as most of a triggerer's jobs
  do at any moment. Latency is from a job's scripted end to its trigger's event.
* **Measures.** CPU: user + system seconds of the trigger process over the run. RSS per job: VmRSS after
  a full collection, with every trigger waiting, minus VmRSS before any was created, over N (at N = 100
  that difference is a few hundred KB, so page and arena granularity dominate it). Lag: how late a 50 ms
  sleep wakes up, from that RSS mark to the end (the start-up burst of N triggers arriving at once, which a
  triggerer never sees, is reported apart in the JSON). Sockets open: peak of `/proc/self/fd` sockets;
  sockets used: distinct client ports the endpoint saw.
* **Logging.** INFO, through Airflow's own `configure_logging(json_output=True, sending_to_supervisor=True)`,
  as the triggerer's runner process sends lines to its supervisor, but into /dev/null: every line is
  formatted (structlog JSON with call site and context), none is written to a terminal or disk.
* **Requests.** The target is what one poll must send (one request per endpoint; for EMR one `ListSteps`
  per page of 50 active steps per cluster, AWS's page size) plus one request per job that ended. Spark
  confirms each ended driver over its REST status (for its message); Kubernetes answers from its watch
  and sends nothing per poll; EMR finds ended steps on the newest page of ended steps.
* **The two floors.** *floor* is what the issue asks for: a bare coroutine per job GETting its status
  on one shared aiohttp session every interval, i.e. per-job polling at its cheapest, with no trigger,
  logging or error handling around it. *floor-batched* is the library's design with nothing around it:
  one bare loop GETting `/json/` and waking the coroutines whose driver ended. The library's trigger does
  more than that floor on purpose: it logs what it watches and every state change into the task log, and
  it confirms every terminal state over the driver's REST status before acting on it (one request per
  ended job), so it stays a few times the batched floor's CPU; against per-job polling it is far below.
* **RSS per job** includes what any trigger costs a triggerer (its task, coroutine and log context):
  *floor-batched*'s whole figure is about that much. It moves by a few tenths of a KB from run to run.
* **What made it cheap** (each found with tracemalloc or a profile at 10,000 jobs):
  one poller per endpoint and interval (one `/json/`, one list+watch, one `ListSteps` listing per cluster);
  one immutable status object shared by all jobs in the same state; Spark's `/json/` parsed to `(id, state)`
  pairs; list pages let go item by item as they are read (Kubernetes) and EMR pages dropped as soon as read
  (kept pages reached the oldest GC generation and full collections stalled the loop for 0.3-0.4 s);
  deadlines kept by the poller with one alarm, not a timer per waiting trigger; waiters woken in slices of
  128; log lines of a waiting coroutine emitted from a plain function (the call-site lookup otherwise keeps a
  frame object alive per waiting trigger, about 0.45 KB); one logger per trigger class; polls started one
  interval apart, however long a paginated poll takes; botocore's timestamps parsed to UTC datetimes
  instead of dateutil's `tzlocal()`. `--loop uvloop` (our triggers only; the triggerer picks its loop) cut
  CPU by about 15% and halved the lag in a trial; it is not needed for the targets.
* **A burst of endings.** With `--ending 1` all 10,000 jobs end within 6 s (1,667 a second). In a trial the
  Spark trigger kept its max lag at 0.048 s and its p99 latency at 2.43 s (Kubernetes: 0.040 s and 2.00 s):
  the poller wakes waiters in slices of 128 and lets the loop run between them while thousands of triggers
  log and yield their events.
"""


def write_doc(report: dict[str, Any], path: Path) -> None:
    m, a = report["machine"], report["settings"]
    loads = [x for r in report["results"] if "loadavg_1m" in r for x in r["loadavg_1m"]]
    head = [h for h, _ in COLUMNS]
    lines = [
        "# Triggerer performance",
        "",
        "What waiting costs in one triggerer process: N deferred jobs as real trigger instances on one event loop,",
        "the library's triggers next to the providers' triggers and two floors, against the same local",
        f"endpoints, in one run of `{report['command']}` ({report['when']}, {report['seconds']:.0f} s).",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}; 1-minute load"
        f" average {min(loads, default=0):.2f}-{max(loads, default=0):.2f} while the runs went (the benchmark's"
        " own two processes included; the endpoints run on the same cores as the triggers). Read the **ratios**"
        " between rows of one N: absolute times depend on the machine and its load and are not promises.",
        "",
        f"Settings: poll interval {a['interval']:g} s for every trigger; each run {a['run_seconds']:g} s of wall"
        f" time; {a['ending_fraction']:.0%} of the jobs end, evenly spread between {a['first_end']:g} s and"
        f" {a['last_end']:g} s into the run, the others keep running; logging at INFO as the triggerer formats"
        " it. Providers: " + ", ".join(f"`{p}`" for p in a["provider_requirements"]) + ", in `build/bench-venv`.",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    lines += ["| " + " | ".join(row + [""] * (len(head) - len(row))) + " |" for row in rows(report["results"])]
    lines += [
        "",
        "*req/interval*: requests the endpoint received per poll interval over the run; *target*: one per endpoint"
        " plus one per job that ended (the issue's bound). *events*: events / jobs that ended. CPU ratios are CPU"
        " per job against the row named at the same N. A latency `>= x` is a lower bound: some ended jobs"
        " had no event by the end of the run, and each counts with the time it had waited by then.",
        "",
    ]
    if report.get("notes"):
        lines += [f"* {note}" for note in report["notes"]] + [""]
    lines += targets(report)
    lines += [READING]
    path.write_text("\n".join(lines).rstrip() + "\n")


def main() -> int:
    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000, 10000], help="N values")
    parser.add_argument("--systems", nargs="+", default=OURS + FLOORS + PROVIDERS, choices=OURS + FLOORS + PROVIDERS)
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval of every trigger (s)")
    parser.add_argument("--run-seconds", type=float, default=16.0, help="wall time of each run (s)")
    parser.add_argument("--first-end", type=float, default=5.0, help="the first job ends this long into the run")
    parser.add_argument("--last-end", type=float, default=11.0, help="the last job ends this long into the run")
    parser.add_argument(
        "--ending", type=float, default=0.2, help="fraction of the jobs that end during a run (1: every job)"
    )
    parser.add_argument("--settle-seconds", type=float, default=1.0, help="RSS is read this long before the first end")
    parser.add_argument(
        "--provider-max-jobs",
        type=int,
        default=1000,
        help="largest N the providers' triggers run at (at 10,000 they saturate the loop for minutes and the EMR "
        "trigger needs about 1 MB per job; 0: no limit)",
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio", help="event loop for our triggers")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--doc", type=Path, default=DOC, help="markdown table to write")
    parser.add_argument("--no-doc", action="store_true", help="do not write the markdown table")
    parser.add_argument("--render", type=Path, help="only rewrite the markdown from this JSON of an earlier run")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        add_ratios(report["results"])
        write_doc(report, args.doc)
        print(f"wrote {args.doc}")
        return 0
    if not 0 < args.first_end <= args.last_end < args.run_seconds:
        parser.error("need 0 < --first-end <= --last-end < --run-seconds")

    notes: list[str] = []
    wanted_providers = [s for s in args.systems if s in PROVIDERS]
    provider_py = None
    if wanted_providers:
        provider_py, how = provider_python(ROOT / "build" / "bench" / "bench-venv-install.log")
        if provider_py is None:
            notes.append(f"The providers could not be installed ({how}); their rows are missing.")
            print(notes[-1], flush=True)

    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="triggerer-bench-") as tmpdir:
        tmp = Path(tmpdir)
        servers = Servers(tmp)
        try:
            for n in args.jobs:
                for system in sorted(args.systems, key=order):
                    python = provider_py if system in PROVIDERS else Path(sys.executable)
                    if python is None:
                        continue
                    if system in PROVIDERS and 0 < args.provider_max_jobs < n:
                        skipped.append(f"{system}@{n}")
                        continue
                    print(f"  {system} x {n} ...", end=" ", flush=True)
                    r = measure(servers, python, system, n, args, tmp)
                    results.append(r)
                    if "failed" in r:
                        print("FAILED", r["failed"].strip().splitlines()[-1][:200], flush=True)
                    else:
                        print(
                            f"cpu {r['cpu_seconds']}s, {r['requests_per_interval']} req/interval, "
                            f"lag max {r['lag_max_s']}s, p99 latency {r['latency_p99_s']}s, "
                            f"{r['events']}/{n} events, load {r['loadavg_1m']}",
                            flush=True,
                        )
        finally:
            servers.stop()
    add_ratios(results)
    if skipped:
        notes.append(
            f"Not run (--provider-max-jobs {args.provider_max_jobs}): {', '.join(skipped)}. Their ratios use the "
            "provider's CPU per job at the largest N it ran at, marked `(system@N)`: a conservative stand-in, as a "
            "provider's cost per job grows with N."
        )
    for r in results:
        if r.get("overrun_seconds", 0) > 1:
            notes.append(
                f"{r['system']} x {r['jobs']}: saturated; its loop got back to the end of the run "
                f"{r['overrun_seconds']:.0f} s late, so its CPU and events cover a longer run."
            )
    report = {
        "benchmark": "triggerer_scale",
        "command": " ".join(["python benchmarks/triggerer_scale.py", *sys.argv[1:]]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "settings": {
            "interval": args.interval,
            "run_seconds": args.run_seconds,
            "first_end": args.first_end,
            "last_end": args.last_end,
            "ending_fraction": args.ending,
            "loop": args.loop,
            "provider_requirements": PROVIDER_REQUIREMENTS,
        },
        "notes": notes,
        "results": results,
    }
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
