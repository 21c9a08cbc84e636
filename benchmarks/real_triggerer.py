"""Performance in a real ``airflow triggerer`` (issue 12, items 2, 4, 5 and 8): N deferred task instances seeded
into a real Airflow 3.3 metadata database, picked up and run by a real ``airflow triggerer --capacity N``.

    python benchmarks/real_triggerer.py                  # the full run (make bench-triggerer)
    python benchmarks/real_triggerer.py --quick          # small N, short windows (the CI test)
    python benchmarks/real_triggerer.py --jobs 1000 --systems durable-spark floor --no-storm --no-ha --no-doc

Per system and N, on one PostgreSQL (default; ``--db sqlite``: SQLite in WAL mode) metadata DB:

1. ``benchmarks/real_triggerer_seed.py`` builds the N triggers exactly as each operator's ``execute()`` does before
   ``defer()`` (in ``build/bench-venv`` for the providers' triggers), and writes a dag run, N deferred mapped task
   instances and N ``trigger`` rows the way the Execution API's defer route does, plus the connection they name in
   the ``connection`` table (fetched through the triggerer's supervisor, as in production).
2. ``airflow triggerer --capacity N --skip-serve-logs`` starts (its own session; stopped by its PID). Its
   supervisor (that PID) and its trigger runner (the supervisor's child) are sampled once a second from this
   process: CPU (user + system), RSS, open files. A ``sitecustomize`` counts what the supervisor answers for the
   runner (connection fetches), the library's client creations and aiohttp sessions
   (``benchmarks/real_triggerer_probe.py``).
3. Windows, each measured apart: **start-up** (from the spawn until every trigger has logged Airflow's
   ``trigger ... starting`` line, and for ours its ``Watching`` line: it has its client and waits), **steady**
   (``--steady-intervals`` poll intervals with every trigger waiting and no job ending), **events** (a fraction
   of the jobs end, evenly spread over one interval, at the fake endpoint; until every ending job's event is in
   the DB or a deadline). Per-event cost = (events-window CPU - steady CPU rate x its length) / events.
4. Afterwards (outside every window) each trigger's log file is read: its lines at INFO by logger, the runner's
   timestamps of ``trigger starting`` / ``Watching`` / ``Trigger fired event``; the task instances' ``scheduled_dttm``
   (written when the supervisor stores the event) gives the event latency from each job's scripted end; the
   triggerer's own output gives the "async thread was blocked" warnings with their durations.

Also: the **restart storm** (``--storm-jobs`` of ours running, the triggerer restarted with SIGTERM, the endpoint
answering 503 for ``--storm-down`` s: fetches, client and session creations, requests per interval, time until
every trigger polls against the floor's pickup), and **HA** (K = 1, 2, 4 triggerers sharing ``--ha-jobs`` jobs:
requests per interval at the endpoint; then the trigger-queue recipe that keeps one endpoint's triggers on one
triggerer). ``--profile`` adds a py-spy and tracemalloc pass over ours (not a measured run).

Writes ``build/bench/real_triggerer.json``, prints a table and writes ``docs/performance-triggerer.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

from bench_probe import end_offsets, percentile  # noqa: E402

OUT = ROOT / "build" / "bench" / "real_triggerer.json"
DOC = ROOT / "docs" / "performance-triggerer.md"
DAG_ID = "dj_bench_real_triggerer"
OURS = ["durable-spark", "durable-spark-envconn"]
FLOORS = ["floor", "floor-near"]
PROVIDERS = ["livy", "kube-pod", "emr-step"]
ALL = OURS + FLOORS + PROVIDERS
FAKE_OF = {
    "durable-spark": "spark",
    "durable-spark-envconn": "spark",
    "livy": "livy",
    "kube-pod": "kube",
    "emr-step": "emr",
}
TASK_OF = {s: s.replace("-", "_") for s in ALL}
TASK_OF["durable-spark-envconn"] = "durable_spark"
CONN_OF = {
    "durable-spark": "bench_spark",
    "durable-spark-envconn": "bench_spark",
    "livy": "bench_livy",
    "kube-pod": "bench_kube",
    "emr-step": "bench_aws",
}
LABEL = {
    "durable-spark": "durable_jobs SparkStandaloneTrigger",
    "durable-spark-envconn": "the same, connection in AIRFLOW_CONN_* (no supervisor fetch)",
    "floor": "floor: DateTimeTrigger, a year ahead",
    "floor-near": "floor: DateTimeTrigger, due in the run",
    "livy": "LivyTrigger (livy 4.6.4)",
    "kube-pod": "KubernetesPodTrigger (cncf-k8s 10.25.0)",
    "emr-step": "EmrStepSensorTrigger (amazon 9.39.0)",
}
BLOCKED = "Triggerer's async thread was blocked for "
OUR_LOGGER_PREFIX = "durable_jobs"

DAG_FILE = f'''
"""The benchmark's DAG: one mapped task per system; its deferred task instances are written by the seeder."""
from datetime import datetime, timezone

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, task

from durable_jobs.operators import SparkStandaloneOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    SparkStandaloneOperator.partial(
        task_id="durable_spark", conn_id="bench_spark", application="file:/opt/spark-apps/sleep-exit.jar",
        main_class="demo.SleepExit",
    ).expand(application_args=[["1"]])
    for name in ("floor", "floor_near"):
        DateTimeSensorAsync.partial(task_id=name).expand(target_time=["2027-01-01T00:00:00+00:00"])

    @task
    def placeholder(i):  # the providers' operators are not installed in this venv; the triggerer needs none
        return i

    for name in ("livy", "kube_pod", "emr_step"):
        placeholder.override(task_id=name).expand(i=[0])
'''


# --- processes --------------------------------------------------------------------------------------------------


def provider_python() -> Path | None:
    from triggerer_scale import provider_python as build

    py, how = build(ROOT / "build" / "bench" / "bench-venv-install.log")
    if py is None:
        print(f"providers' venv unavailable: {how}", flush=True)
        return None
    probe = subprocess.run([str(py), "-c", "import psycopg2, asyncpg"], capture_output=True, check=False)
    if probe.returncode != 0:  # the metadata DB drivers, for the providers' triggerer on PostgreSQL
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "psycopg2-binary", "asyncpg"], check=True)
    return py


class Servers:
    """real_triggerer_servers.py in a child process, stopped by closing its stdin, then by its PID."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "real_triggerer_servers.py"), str(directory)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the fake endpoints did not start")
        self.urls: dict[str, str] = json.loads(line)

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.urls["control"] + path, data=data, method="GET" if data is None else "POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        from bench_probe import stop_child

        stop_child(self.proc)


class Database:
    """The metadata DB: a private PostgreSQL cluster (durable_jobs_harness.airflow_env.PostgresServer) or SQLite."""

    def __init__(self, kind: str, home: Path) -> None:
        self.kind = kind
        self.pg: Any = None
        if kind == "postgres":
            from durable_jobs_harness.airflow_env import PostgresServer

            self.pg = PostgresServer().start()
            self.url = self.pg.url
        else:
            self.url = f"sqlite:///{home / 'airflow.db'}"
            self.path = home / "airflow.db"
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(self.url, poolclass=NullPool)

    def after_migrate(self) -> None:
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.path)) as db:
                db.execute("PRAGMA journal_mode=WAL")

    def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def connection_reads(self) -> int | None:
        """Index + sequential scans of the ``connection`` table (PostgreSQL's statistics): one per fetch."""
        if self.kind != "postgres":
            return None
        with contextlib.suppress(Exception):
            return int(
                self.scalar(
                    "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                    "WHERE relname = 'connection'"
                )
                or 0
            )
        return None

    def stop(self) -> None:
        self.engine.dispose()
        if self.pg is not None:
            self.pg.stop()


class Airflow:
    """The Airflow environment every process of one benchmark run shares (home, DB, dags, probe)."""

    def __init__(self, work: Path, db_kind: str, args: argparse.Namespace) -> None:
        self.work = work
        self.keep = args.keep
        self.home = work / "home"
        self.home.mkdir(parents=True)
        self.dags = work / "dags"
        self.dags.mkdir()
        (self.dags / "dj_bench_real_triggerer.py").write_text(DAG_FILE)
        self.probe_dir = work / "probe"
        self.probe_dir.mkdir()
        self.site = work / "site"
        self.site.mkdir()
        probe_file = str(HERE / "real_triggerer_probe.py")
        (self.site / "sitecustomize.py").write_text(
            # the probe loaded from its file (the triggerer may run in the providers' venv, without our packages)
            "import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('real_triggerer_probe', {probe_file!r})\n"
            "probe = sys.modules['real_triggerer_probe'] = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(probe)\n"
            "probe.install()\n"
        )
        self.db = Database(db_kind, self.home)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DURABLE_JOBS_FAILPOINTS"))}
        self.env = {
            **base,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + base.get("PATH", ""),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db.url,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": args.log_level,
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": str(args.select_per_loop),
            "DJ_BENCH_PROBE_DIR": str(self.probe_dir),
            "PYTHONPATH": str(self.site),
        }
        if db_kind == "sqlite":
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "real_triggerer_probe.SQLITE_CONNECT_ARGS"
        if args.no_greenback:
            self.env["AIRFLOW_DISABLE_GREENBACK_PORTAL"] = "true"

    def run(
        self, argv: list[str], *, python: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
    ) -> str:
        proc = subprocess.run(
            [str(python or sys.executable), *argv],
            env={**self.env, **(env or {}), "DJ_BENCH_PROBE_DIR": ""},
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def prepare(self) -> None:
        self.run(["-m", "airflow", "db", "migrate"], timeout=900)
        self.db.after_migrate()
        self.run(["-m", "airflow", "dags", "reserialize"], timeout=600)
        if not self.db.scalar("SELECT count(*) FROM serialized_dag WHERE dag_id = :d", d=DAG_ID):
            raise RuntimeError(f"{DAG_ID} was not serialized")

    def stop(self) -> None:
        self.db.stop()


class Triggerer:
    """One ``airflow triggerer``: spawned in its own session, measured by PID, stopped by PID."""

    def __init__(
        self,
        af: Airflow,
        python: Path,
        capacity: int,
        name: str,
        queues: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = af.work / f"{name}.log"
        argv = [str(python), "-m", "airflow", "triggerer", "--capacity", str(capacity), "--skip-serve-logs"]
        if queues:
            argv += ["--queues", queues]
        self.started = time.time()
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(
                argv,
                env={**af.env, **(env or {})},
                cwd=af.work,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def runner_pid(self) -> int | None:
        import psutil

        with contextlib.suppress(psutil.Error):
            kids = psutil.Process(self.pid).children()
            if kids:
                return int(kids[0].pid)
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 120.0) -> float:
        """SIGTERM (graceful: Airflow cancels and cleans up every trigger), then SIGKILL the session it leads."""
        t = time.monotonic()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        took = time.monotonic() - t
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # its own session: only the triggerer and its runner
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        return took


class Sampler(threading.Thread):
    """CPU, RSS and open files of the triggerers' supervisors and runners, once a second, from outside.

    Also the CPU of the metadata DB's server processes, of the fake endpoints, and of the whole machine: what
    else ran during a window (other users of the 2 cores) is reported beside each figure, never subtracted.
    """

    extra_pids: dict[str, list[int]] = {}

    def __init__(self, triggerers: list[Triggerer], period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.triggerers = triggerers
        self.period = period
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def one(self) -> dict[str, Any]:
        import psutil

        out: dict[str, Any] = {"t": time.time(), "sup_cpu": 0.0, "run_cpu": 0.0, "sup_rss": 0, "run_rss": 0}
        out.update(sup_fds=0, run_fds=0)
        busy = psutil.cpu_times()
        out["machine_cpu"] = sum(busy) - busy.idle - getattr(busy, "iowait", 0.0)
        for role, pids in self.extra_pids.items():
            total = 0.0
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    for p in (proc, *(proc.children(recursive=True) if role == "db" else ())):
                        with contextlib.suppress(psutil.Error):
                            c = p.cpu_times()
                            total += c.user + c.system
            out[f"{role}_cpu"] = total
        for tr in self.triggerers:
            for role, pid in (("sup", tr.pid), ("run", tr.runner_pid())):
                if pid is None:
                    continue
                with contextlib.suppress(psutil.Error):
                    p = psutil.Process(pid)
                    with p.oneshot():
                        c = p.cpu_times()
                        out[f"{role}_cpu"] += c.user + c.system
                        out[f"{role}_rss"] += p.memory_info().rss
                        out[f"{role}_fds"] += p.num_fds()
        return out

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.one())
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.samples.append(self.one())

    def at(self, t: float) -> dict[str, Any]:
        """The sample nearest to wall time ``t`` (at most one period away)."""
        return min(self.samples, key=lambda s: abs(s["t"] - t))

    def window(self, a: float, b: float) -> dict[str, Any]:
        sa, sb = self.at(a), self.at(b)
        inside = [s for s in self.samples if a <= s["t"] <= b] or [sb]
        dt = max(sb["t"] - sa["t"], 1e-9)
        return {
            "seconds": round(dt, 1),
            "cpu_supervisor_s": round(sb["sup_cpu"] - sa["sup_cpu"], 3),
            "cpu_runner_s": round(sb["run_cpu"] - sa["run_cpu"], 3),
            "cpu_s": round(sb["sup_cpu"] + sb["run_cpu"] - sa["sup_cpu"] - sa["run_cpu"], 3),
            "rss_supervisor_mb_end": round(sb["sup_rss"] / 2**20, 1),
            "rss_runner_mb_end": round(sb["run_rss"] / 2**20, 1),
            "rss_supervisor_mb_peak": round(max(s["sup_rss"] for s in inside) / 2**20, 1),
            "rss_runner_mb_peak": round(max(s["run_rss"] for s in inside) / 2**20, 1),
            "fds_supervisor_peak": max(s["sup_fds"] for s in inside),
            "fds_runner_peak": max(s["run_fds"] for s in inside),
            **{
                f"cpu_{role}_s": round(sb.get(f"{role}_cpu", 0.0) - sa.get(f"{role}_cpu", 0.0), 3)
                for role in self.extra_pids
            },
            "cpu_machine_s": round(sb["machine_cpu"] - sa["machine_cpu"], 2),
        }


# --- the trigger log files ---------------------------------------------------------------------------------------


def log_path(af: Airflow, run_id: str, task_id: str, i: int, job_id: int) -> Path:
    """Airflow's default ``log_filename_template`` for try 1 of map index i, with the triggerer's suffix."""
    return (
        af.home
        / "logs"
        / f"dag_id={DAG_ID}"
        / f"run_id={run_id}"
        / f"task_id={task_id}"
        / f"map_index={i}"
        / f"attempt=1.log.trigger.{job_id}.log"
    )


class Pickup:
    """Which triggers have started (Airflow's ``trigger ... starting``) and are ready (ours: ``Watching``)."""

    def __init__(self, paths: list[Path], ready_marker: bytes | None) -> None:
        self.paths = paths
        self.ready_marker = ready_marker
        self.not_started = set(range(len(paths)))
        self.not_ready = set(range(len(paths)))

    def poll(self) -> tuple[int, int]:
        for i in list(self.not_started):
            if self.paths[i].exists():
                self.not_started.discard(i)
        for i in list(self.not_ready):
            if i in self.not_started:
                continue
            if self.ready_marker is None:
                self.not_ready.discard(i)
                continue
            with contextlib.suppress(OSError):
                if self.ready_marker in self.paths[i].read_bytes():
                    self.not_ready.discard(i)
        n = len(self.paths)
        return n - len(self.not_started), n - len(self.not_ready)


def parse_ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_trigger_logs(paths: list[Path]) -> dict[str, Any]:
    """Per trigger: lines by level and logger, and the runner's timestamps of the milestones."""
    lines_info: list[int] = []
    lines_ours: list[int] = []
    by_logger: Counter[str] = Counter()
    by_event: Counter[str] = Counter()
    started: list[float] = []
    ready: list[float] = []
    fired: dict[int, float] = {}
    missing = 0
    for i, p in enumerate(paths):
        try:
            raw = p.read_bytes().splitlines()
        except OSError:
            missing += 1
            continue
        n_info = n_ours = 0
        for line in raw:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            level = str(ev.get("level", "")).lower()
            logger = str(ev.get("logger", ""))
            text = str(ev.get("event", ""))
            if level in ("info", "warning", "error", "critical"):
                n_info += 1
                by_logger[logger] += 1
                by_event[text[:48]] += 1
                if logger.startswith(OUR_LOGGER_PREFIX):
                    n_ours += 1
            ts = ev.get("timestamp")
            if not ts:
                continue
            if text.startswith("trigger ") and text.endswith(" starting"):
                started.append(parse_ts(ts))
            elif text.startswith("Watching "):
                ready.append(parse_ts(ts))
            elif text == "Trigger fired event":
                fired[i] = parse_ts(ts)
        lines_info.append(n_info)
        lines_ours.append(n_ours)
    return {
        "files": len(paths) - missing,
        "lines_info_per_trigger_mean": round(sum(lines_info) / max(1, len(lines_info)), 2),
        "lines_info_per_trigger_max": max(lines_info, default=0),
        "lines_library_per_trigger_mean": round(sum(lines_ours) / max(1, len(lines_ours)), 2),
        "lines_library_per_trigger_max": max(lines_ours, default=0),
        "lines_by_logger": dict(by_logger.most_common(12)),
        "lines_by_event": dict(by_event.most_common(12)),
        "_started": started,
        "_ready": ready,
        "_fired": fired,
    }


def blocked_warnings(log: Path, since: float = 0.0) -> list[tuple[float, float]]:
    """(runner timestamp, seconds blocked) of every "async thread was blocked" line in a triggerer's output."""
    out: list[tuple[float, float]] = []
    with contextlib.suppress(OSError):
        for line in log.read_text("utf-8", "replace").splitlines():
            k = line.find(BLOCKED)
            if k < 0:
                continue
            seconds = float(line[k + len(BLOCKED) :].split()[0])
            ts = since
            with contextlib.suppress(ValueError, IndexError):
                ts = parse_ts(line.split()[0].strip("[]"))
            out.append((ts, seconds))
    return out


def probe_counts(af: Airflow, pids: set[int]) -> dict[str, Any]:
    """The counters the sitecustomize probe wrote for these processes, summed per role."""
    out: dict[str, Counter[str]] = {"supervisor": Counter(), "runner": Counter()}
    cpu: dict[str, Counter[str]] = {"supervisor": Counter(), "runner": Counter()}
    imports: dict[str, float] = {}
    for path in af.probe_dir.glob("probe-*.json"):
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(path.read_text())
            if data["pid"] in pids:
                out[data["role"]].update(data["counts"])
                cpu[data["role"]].update(data.get("cpu_seconds", {}))
                if data["role"] == "runner":
                    for k, v in data.get("imports", {}).items():
                        imports[k] = max(v, imports.get(k, 0.0))
    on_loop = [v for k, v in imports.items() if k.endswith("@MainThread")]
    sup, run = out["supervisor"], out["runner"]
    return {
        "connection_fetches_supervisor": sup.get("supervisor_requests.GetConnection", 0),
        "connection_fetch_cpu_s_supervisor": round(cpu["supervisor"].get("supervisor_requests.GetConnection", 0.0), 3),
        "connection_fetches_runner": run.get("runner_sends.GetConnection", 0),
        "library_connection_fetches": run.get("connection_fetches", 0),
        "library_client_creations": run.get("client_creations", 0),
        "aiohttp_sessions_runner": run.get("aiohttp_sessions", 0),
        "supervisor_requests": {k.split(".", 1)[1]: v for k, v in sup.items() if k.startswith("supervisor_requests.")},
        # outermost imports of the library in the runner by module@thread (MainThread: on the event loop)
        "library_imports_runner_s": imports,
        "library_import_on_loop_max_s": max(on_loop, default=None),
        "probe_patch_failures": {k: v for k, v in (sup + run).items() if k.startswith("probe_patch_failed")},
    }


# --- one run -----------------------------------------------------------------------------------------------------


def wait_for(what: str, check: Any, timeout: float, period: float = 2.0, alive: Any = None) -> float | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return time.time()
        if alive is not None and not alive():
            raise RuntimeError(f"the triggerer exited while waiting for {what}")
        time.sleep(period)
    return None


def seed(
    af: Airflow,
    servers: Servers,
    system: str,
    n: int,
    args: argparse.Namespace,
    run_id: str,
    *,
    python: Path,
    ends: list[float | None] | None = None,
    queue: str | None = None,
    reset: bool = True,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "system": system,
        "n": n,
        "interval": args.interval,
        "run_id": run_id,
        "task_id": TASK_OF[system],
        "now": time.time(),
        "reset": reset,
        "queue": queue,
    }
    setup: dict[str, Any] = {}
    if system in FAKE_OF:
        # most jobs never end; `fraction` of them end between first and last seconds after /_start
        setup = servers.call(
            "/_setup",
            {
                "system": FAKE_OF[system],
                "n": n,
                "first": args.first_end,
                "last": args.first_end + args.interval,
                "fraction": args.ending,
            },
        )
        spec.update(ids=setup["ids"], conn_id=CONN_OF[system], conn=connection(system, servers.urls, setup))
        spec.update({k: setup[k] for k in ("cluster_ids", "namespace") if k in setup})
    if ends is not None:
        spec["ends"] = ends
    spec_file = af.work / f"seed-{system}-{n}.json"
    spec_file.write_text(json.dumps(spec))
    rows = af.work / f"kwargs-{system}-{n}.jsonl"
    t = time.monotonic()
    af.run([str(HERE / "real_triggerer_seed.py"), "kwargs", str(spec_file), str(rows)], python=python)
    out = json.loads(af.run([str(HERE / "real_triggerer_seed.py"), "seed", str(spec_file), str(rows)]).splitlines()[-1])
    out["seed_total_seconds"] = round(time.monotonic() - t, 1)
    out["setup"] = {k: setup[k] for k in ("endpoints", "requests_per_poll_floor") if k in setup}
    first = json.loads(rows.open().readline())
    out["trigger_kwargs_sample"] = {"classpath": first[0], "kwargs": first[1], "next_kwargs": first[3]}
    rows.unlink()
    out["now"] = spec["now"]
    if out["deferred"] != n:
        raise RuntimeError(f"seeded {out['deferred']} deferred task instances, expected {n}")
    return out


def connection(system: str, urls: dict[str, str], setup: dict[str, Any]) -> dict[str, Any]:
    def port(url: str) -> int:
        return int(url.rsplit(":", 1)[1])

    if system.startswith("durable-spark"):
        return {
            "conn_type": "spark_standalone_rest",
            "host": "127.0.0.1",
            "port": port(urls["spark"]),
            "extra": {"master_ui_urls": urls["spark"]},
        }
    if system == "livy":
        return {"conn_type": "livy", "host": "127.0.0.1", "port": port(urls["livy"]), "schema": "http"}
    if system == "kube-pod":
        return {"conn_type": "kubernetes", "extra": {"kube_config_path": urls["kubeconfig"]}}
    if system == "emr-step":
        return {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": urls["emr"]},
        }
    raise ValueError(system)


def latest_job_id(af: Airflow, after: int) -> int | None:
    got = af.db.scalar("SELECT max(id) FROM job WHERE job_type = 'TriggererJob' AND id > :a", a=after)
    return int(got) if got is not None else None


def max_job_id(af: Airflow) -> int:
    return int(af.db.scalar("SELECT coalesce(max(id), 0) FROM job") or 0)


def requests_hist(servers: Servers, system: str, origin: float) -> dict[str, Any]:
    if system not in FAKE_OF:
        return {"origin": origin, "by_kind": {}, "requests_total": 0, "client_sockets": 0, "finished_by_script": 0}
    return servers.call(f"/_hist?system={FAKE_OF[system]}&origin={origin}&bucket=1")


def requests_in(hist: dict[str, Any], a: float, b: float) -> dict[str, int]:
    """Requests by kind with a wall time in [a, b) (1-second buckets from the histogram's origin)."""
    o = hist["origin"]
    out: dict[str, int] = {}
    for kind, pairs in hist["by_kind"].items():
        out[kind] = sum(c for k, c in pairs if a <= o + k < b)
    return out


def per_interval(hist: dict[str, Any], a: float, b: float, interval: float) -> list[int]:
    o = hist["origin"]
    n = max(1, round((b - a) / interval))
    out = [0] * n
    for pairs in hist["by_kind"].values():
        for k, c in pairs:
            t = o + k
            if a <= t < b:
                out[min(n - 1, int((t - a) // interval))] += c
    return out


def measure(
    af: Airflow,
    servers: Servers,
    system: str,
    n: int,
    args: argparse.Namespace,
    python: Path,
    floor_pickup: float | None = None,
) -> dict[str, Any]:
    run_id = f"bench_{system}_{n}_{int(time.time())}"
    result: dict[str, Any] = {"system": system, "jobs": n, "interval": args.interval}
    ends: list[float | None] | None = None
    if system == "floor-near":
        # due after the pickup (estimated from the far floor's) and the steady window: the schedule is fixed at seeding
        lead = (floor_pickup or 30.0) * 1.2 + 15.0 + args.steady_intervals * args.interval + args.first_end
        offs = end_offsets(n, lead, lead + args.interval, args.ending)
        ends = [None if math.isinf(o) else o for o in offs]
    result["seed"] = seed(af, servers, system, n, args, run_id, python=python, ends=ends)
    conn_reads_before = af.db.connection_reads()
    before_job = max_job_id(af)
    env = {}
    if system == "durable-spark-envconn":  # the runner resolves it itself: no GetConnection to the supervisor
        env[f"AIRFLOW_CONN_{CONN_OF[system].upper()}"] = json.dumps(connection(system, servers.urls, {}))
    tr = Triggerer(af, python, n, f"triggerer-{system}-{n}", env=env)
    sampler = Sampler([tr])
    sampler.start()
    try:
        job_id = None
        t_wait = time.time() + 120
        while job_id is None and time.time() < t_wait:
            job_id = latest_job_id(af, before_job)
            if not tr.alive():
                raise RuntimeError(f"triggerer exited:\n{tr.log.read_text()[-3000:]}")
            time.sleep(0.5)
        if job_id is None:
            raise RuntimeError("the triggerer registered no job")
        paths = [log_path(af, run_id, TASK_OF[system], i, job_id) for i in range(n)]
        pickup = Pickup(paths, b"Watching " if system in OURS else None)
        progress: list[tuple[float, int, int]] = []

        def done() -> bool:
            s, r = pickup.poll()
            progress.append((time.time(), s, r))
            return r == n

        t_ready = wait_for("every trigger to start", done, args.pickup_timeout, alive=tr.alive)
        result["pickup_complete"] = t_ready is not None
        if t_ready is None:
            t_ready = time.time()
            result["pickup_started_at_timeout"] = progress[-1][1]
            result["pickup_ready_at_timeout"] = progress[-1][2]
        # the schedule's origin: jobs end `first_end` s from now, after the steady window
        t0 = servers.call("/_start", {"system": FAKE_OF[system]})["t0"] if system in FAKE_OF else t_ready
        if system == "floor-near":
            t0 = result["seed"]["now"]  # the moments were fixed from this time at seeding
        settle = min(args.interval, 5.0)
        steady_a = t_ready + settle
        steady_b = steady_a + args.steady_intervals * args.interval
        ending = (
            [
                i
                for i, o in enumerate(end_offsets(n, args.first_end, args.first_end + args.interval, args.ending))
                if not math.isinf(o)
            ]
            if system != "floor"
            else []
        )
        offsets = end_offsets(n, args.first_end, args.first_end + args.interval, args.ending)
        if system == "floor-near":
            assert ends is not None
            offsets = [math.inf if e is None else e for e in ends]
            ending = [i for i, e in enumerate(ends) if e is not None]
            if steady_b > t0 + min(offsets[i] for i in ending):
                result["note"] = "the floor's pickup took longer than estimated: its steady window overlaps events"
        while time.time() < steady_b:
            time.sleep(0.5)
        events_a = steady_b
        last_end = max((t0 + offsets[i] for i in ending), default=events_a)

        def events_in_db() -> int:
            return int(
                af.db.scalar("SELECT count(*) FROM task_instance WHERE run_id = :r AND state = 'scheduled'", r=run_id)
                or 0
            )

        want = len(ending)
        t_events = (
            wait_for(
                "the events",
                lambda: events_in_db() >= want,
                max(0.0, last_end - time.time()) + args.interval + args.event_grace,
                period=1.0,
                alive=tr.alive,
            )
            if want
            else time.time()
        )
        events_b = max(t_events or time.time(), last_end)
        # a full interval after the last event, to see the steady state come back
        sampler.stop()
        probe_pids = {tr.pid, tr.runner_pid() or -1}
        hist = requests_hist(servers, system, tr.started - 1)
        conn_reads_after = af.db.connection_reads()
    finally:
        if sampler.is_alive():
            sampler.stop()
        shutdown = tr.stop()
    # --- accounting, outside every window ---
    result["shutdown_seconds"] = round(shutdown, 1)
    startup = sampler.window(tr.started, t_ready)
    steady = sampler.window(steady_a, steady_b)
    events = sampler.window(events_a, events_b)
    result["startup"] = startup
    result["steady"] = steady
    result["events_window"] = events
    result["pickup_seconds"] = round(t_ready - tr.started, 1)
    result["pickup_progress"] = [
        (round(t - tr.started, 1), s, r) for t, s, r in progress[:: max(1, len(progress) // 40)]
    ]
    logs = read_trigger_logs(paths)
    started, ready, fired = logs.pop("_started"), logs.pop("_ready"), logs.pop("_fired")
    result["logs"] = logs
    if started:
        result["last_trigger_starting_s"] = round(max(started) - tr.started, 1)
    if ready:
        result["last_watching_s"] = round(max(ready) - tr.started, 1)
    # requests
    steady_req = requests_in(hist, steady_a, steady_b)
    result["requests"] = {
        "startup": requests_in(hist, tr.started, t_ready),
        "steady": steady_req,
        "steady_per_interval": per_interval(hist, steady_a, steady_b, args.interval),
        "events": requests_in(hist, events_a, events_b),
        "events_per_interval": per_interval(hist, events_a, events_b, args.interval),
        "client_sockets": hist["client_sockets"],
        "total": hist["requests_total"],
    }
    result["requests_per_interval_steady"] = round(sum(steady_req.values()) / args.steady_intervals, 1)
    result["requests_per_poll_floor"] = (
        int(result["seed"]["setup"].get("requests_per_poll_floor", 1)) if system in FAKE_OF else 0
    )
    # events and latency
    sched = af.db.rows(
        "SELECT map_index, scheduled_dttm FROM task_instance WHERE run_id = :r AND state = 'scheduled'", r=run_id
    )
    lat_db = []
    ending_set = set(ending)
    for map_index, when in sched:
        if map_index in ending_set and when is not None:
            lat_db.append(db_time(when) - (t0 + offsets[map_index]))
    lat_log = [fired[i] - (t0 + offsets[i]) for i in ending if i in fired]
    result["events"] = len(sched)
    result["ending_jobs"] = len(ending)
    result["latency_db_p50_s"] = _r(percentile(lat_db, 0.5))
    result["latency_db_p99_s"] = _r(percentile(lat_db, 0.99))
    result["latency_db_max_s"] = _r(max(lat_db, default=None) if lat_db else None)
    result["latency_fired_p99_s"] = _r(percentile(lat_log, 0.99))
    # costs, separated
    result["startup_cpu_ms_per_trigger"] = round(1000 * startup["cpu_s"] / n, 3)
    result["steady_cpu_s_per_interval"] = round(steady["cpu_s"] / args.steady_intervals, 4)
    result["steady_cpu_us_per_trigger_interval"] = round(1e6 * steady["cpu_s"] / args.steady_intervals / n, 2)
    rate = steady["cpu_s"] / max(steady["seconds"], 1e-9)
    extra = events["cpu_s"] - rate * events["seconds"]
    result["event_cpu_ms_per_event"] = round(1000 * extra / len(sched), 2) if sched else None
    result["rss_mb_steady"] = round(steady["rss_supervisor_mb_end"] + steady["rss_runner_mb_end"], 1)
    result["fds_supervisor_peak"] = max(startup["fds_supervisor_peak"], steady["fds_supervisor_peak"])
    # the loop
    warnings = blocked_warnings(tr.log)
    result["blocked_warnings"] = len(warnings)
    result["blocked_max_s"] = max((s for _, s in warnings), default=0.0)
    result["blocked_seconds"] = [s for _, s in warnings][:50]
    result["blocked_first_s_after_start"] = (
        round(warnings[0][0] - tr.started, 1) if warnings and warnings[0][0] else None
    )
    result["probe"] = probe_counts(af, probe_pids)
    if conn_reads_before is not None and conn_reads_after is not None:
        result["probe"]["connection_table_reads"] = conn_reads_after - conn_reads_before
    drop_logs(af, run_id)
    return result


def drop_logs(af: Airflow, run_id: str) -> None:
    """A run's 10,000 trigger log files are read; drop them unless the work directory is kept."""
    if not af.keep:
        shutil.rmtree(af.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}", ignore_errors=True)


def db_time(value: Any) -> float:
    """A UTC timestamp column as the DB driver returns it (a datetime on PostgreSQL, a string on SQLite)."""
    from datetime import datetime, timezone

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return float(value.timestamp())


def _r(v: float | None, d: int = 2) -> float | None:
    return None if v is None else round(v, d)


# --- restart storm -------------------------------------------------------------------------------------------------


def storm(
    af: Airflow, servers: Servers, n: int, args: argparse.Namespace, floor_pickup: float | None
) -> dict[str, Any]:
    """n of our triggers run on triggerer A; A stops (SIGTERM), the endpoint answers 503 for --storm-down s, and
    triggerer B picks everything up: connection fetches, clients, sessions, requests per interval, time to polling."""
    system = "durable-spark"
    run_id = f"bench_storm_{n}_{int(time.time())}"
    res: dict[str, Any] = {"jobs": n, "down_seconds": args.storm_down, "interval": args.interval}
    res["seed"] = seed(af, servers, system, n, args, run_id, python=Path(sys.executable))
    before = max_job_id(af)
    a = Triggerer(af, Path(sys.executable), n, f"storm-a-{n}")
    try:
        job_a = None
        while job_a is None:
            job_a = latest_job_id(af, before)
            time.sleep(0.5)
        pick_a = Pickup([log_path(af, run_id, TASK_OF[system], i, job_a) for i in range(n)], b"Watching ")
        got = wait_for("A's pickup", lambda: pick_a.poll()[1] == n, args.pickup_timeout, alive=a.alive)
        res["first_start_pickup_s"] = round((got or time.time()) - a.started, 1)
    finally:
        res["a_shutdown_s"] = round(a.stop(), 1)
    servers.call("/_down", {"system": "spark", "seconds": args.storm_down})
    down_at = time.time()
    conn_before = af.db.connection_reads()
    before = max_job_id(af)
    b = Triggerer(af, Path(sys.executable), n, f"storm-b-{n}")
    sampler = Sampler([b])
    sampler.start()
    try:
        job_b = None
        while job_b is None:
            job_b = latest_job_id(af, before)
            time.sleep(0.5)
        paths = [log_path(af, run_id, TASK_OF[system], i, job_b) for i in range(n)]
        pick = Pickup(paths, b"Watching ")
        got = wait_for("B's pickup", lambda: pick.poll()[1] == n, args.pickup_timeout, alive=b.alive)
        t_ready = got or time.time()
        # then until the endpoint is back and one more interval
        until = max(down_at + args.storm_down, t_ready) + 2 * args.interval + 2
        while time.time() < until:
            time.sleep(0.5)
        sampler.stop()
        pids = {b.pid, b.runner_pid() or -1}
        hist = requests_hist(servers, system, b.started - 1)
        conn_after = af.db.connection_reads()
    finally:
        if sampler.is_alive():
            sampler.stop()
        b.stop()
    logs = read_trigger_logs(paths)
    ready = logs.pop("_ready")
    logs.pop("_started")
    logs.pop("_fired")
    up_at = down_at + args.storm_down
    # the first /json/ answered after the endpoint came back, and after every trigger was watching: all poll
    o = hist["origin"]
    json_after = sorted(o + k for k, _ in hist["by_kind"].get("json", []) if o + k >= max(up_at, t_ready) - 1)
    res.update(
        pickup_s=round(t_ready - b.started, 1),
        last_watching_s=round(max(ready) - b.started, 1) if ready else None,
        floor_pickup_s=floor_pickup,
        all_polling_s=round(json_after[0] - b.started, 1) if json_after else None,
        startup=sampler.window(b.started, t_ready),
        requests_per_second_by_kind=hist["by_kind"],
        requests_per_interval=per_interval(hist, b.started, until, args.interval),
        requests_per_interval_while_down=per_interval(hist, b.started, up_at, args.interval),
        max_requests_per_interval=max(per_interval(hist, b.started, until, args.interval), default=0),
        client_sockets=hist["client_sockets"],
        probe=probe_counts(af, pids),
        logs=logs,
    )
    if conn_before is not None and conn_after is not None:
        res["probe"]["connection_table_reads"] = conn_after - conn_before
    w = blocked_warnings(b.log)
    res["blocked_warnings"] = len(w)
    res["blocked_max_s"] = max((s for _, s in w), default=0.0)
    if res["all_polling_s"] is not None and floor_pickup is not None:
        res["all_polling_over_floor_s"] = round(res["all_polling_s"] - max(floor_pickup, args.storm_down), 1)
    drop_logs(af, run_id)
    return res


# --- HA ----------------------------------------------------------------------------------------------------------


def ha(af: Airflow, servers: Servers, n: int, k: int, args: argparse.Namespace, recipe: bool) -> dict[str, Any]:
    """k triggerers sharing n of our jobs. ``recipe``: the jobs carry a trigger queue that only one triggerer serves."""
    system = "durable-spark"
    run_id = f"bench_ha_{k}_{'q' if recipe else 'n'}_{int(time.time())}"
    queue = "spark-master-1" if recipe else None
    env = {"AIRFLOW__TRIGGERER__QUEUES_ENABLED": "True"} if recipe else {}
    res: dict[str, Any] = {"jobs": n, "triggerers": k, "queue_recipe": recipe}
    res["seed"] = seed(af, servers, system, n, args, run_id, python=Path(sys.executable), queue=queue)
    before = max_job_id(af)
    trs = []
    for j in range(k):
        q = queue if (recipe and j == 0) else None
        # with the recipe the others serve other queues (here: the default queue, i.e. only queue-less triggers)
        trs.append(Triggerer(af, Path(sys.executable), n, f"ha-{k}-{j}-{'q' if recipe else 'n'}", queues=q, env=env))
    try:

        def all_watching() -> bool:
            got = int(af.db.scalar("SELECT count(*) FROM trigger WHERE triggerer_id > :b", b=before) or 0)
            return got >= n

        wait_for("assignment", all_watching, args.pickup_timeout)
        jobs = [int(r[0]) for r in af.db.rows("SELECT id FROM job WHERE job_type='TriggererJob' AND id > :b", b=before)]
        res["triggers_per_triggerer"] = sorted(
            (
                int(c)
                for (c,) in af.db.rows(
                    "SELECT count(*) FROM trigger WHERE triggerer_id > :b GROUP BY triggerer_id", b=before
                )
            ),
            reverse=True,
        )

        def watching() -> bool:
            count = 0
            for j in jobs:
                for i in range(0, n, max(1, n // 200)):  # a sample of the files is enough to know they run
                    if log_path(af, run_id, TASK_OF[system], i, j).exists():
                        count += 1
            return count >= len(range(0, n, max(1, n // 200)))

        t_ready = wait_for("pickup", watching, args.pickup_timeout) or time.time()
        time.sleep(args.interval)
        a = time.time()
        time.sleep(args.steady_intervals * args.interval)
        b = time.time()
        hist = requests_hist(servers, system, a - 1)
    finally:
        for tr in trs:
            tr.stop()
    res["pickup_s"] = round(t_ready - min(t.started for t in trs), 1)
    res["requests_per_interval"] = per_interval(hist, a, b, args.interval)
    res["requests_per_interval_mean"] = round(
        sum(res["requests_per_interval"]) / max(1, len(res["requests_per_interval"])), 1
    )
    res["requests_by_kind"] = requests_in(hist, a, b)
    res["target_max_per_interval"] = 1 if recipe else k
    drop_logs(af, run_id)
    return res


# --- profile -----------------------------------------------------------------------------------------------------


def profile(af: Airflow, servers: Servers, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """py-spy on the runner and the supervisor during pickup and the steady window; tracemalloc of the runner."""
    system = "durable-spark"
    out: dict[str, Any] = {"jobs": n}
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    for mode in args.profile_modes:
        if mode == "pyspy" and not pyspy:
            out["pyspy"] = "py-spy not installed (pip install py-spy)"
            continue
        run_id = f"bench_profile_{mode}_{int(time.time())}"
        seed(af, servers, system, n, args, run_id, python=Path(sys.executable))
        before = max_job_id(af)
        env = {"DJ_BENCH_TRACEMALLOC": "1"} if mode == "tracemalloc" else {}
        tr = Triggerer(af, Path(sys.executable), n, f"profile-{mode}", env=env)
        spies: list[subprocess.Popen[bytes]] = []
        try:
            job = None
            while job is None:
                job = latest_job_id(af, before)
                time.sleep(0.2)
            runner = None
            while runner is None:
                runner = tr.runner_pid()
                time.sleep(0.1)
            paths = [log_path(af, run_id, TASK_OF[system], i, job) for i in range(n)]
            pick = Pickup(paths, b"Watching ")
            if mode == "pyspy":
                for role, pid in (("runner", runner), ("supervisor", tr.pid)):
                    raw = af.work / f"pyspy-{role}.txt"
                    spies.append(
                        subprocess.Popen(
                            [
                                pyspy,
                                "record",
                                "-p",
                                str(pid),
                                "-r",
                                "50",
                                "-f",
                                "raw",
                                "-o",
                                str(raw),
                                "-d",
                                str(int(args.pickup_timeout)),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
            wait_for("pickup", lambda p=pick: p.poll()[1] == n, args.pickup_timeout, alive=tr.alive)
            time.sleep(args.interval * 2)
            if mode == "tracemalloc":
                (af.probe_dir / f"tracemalloc-request-{runner}").touch()
                wait_for("the snapshot", lambda: any(af.probe_dir.glob("tracemalloc-*.json")), 120, period=1.0)
        finally:
            for spy in spies:
                with contextlib.suppress(ProcessLookupError):
                    spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            for spy in spies:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(60)
            tr.stop()
        if mode == "pyspy":
            for role in ("runner", "supervisor"):
                out[f"pyspy_{role}"] = summarize_pyspy(af.work / f"pyspy-{role}.txt")
        else:
            snaps = sorted(af.probe_dir.glob("tracemalloc-*.json"))
            if snaps:
                by_file = json.loads(snaps[-1].read_text())["by_file"]
                out["tracemalloc"] = summarize_tracemalloc(by_file, n)
        drop_logs(af, run_id)
    return out


def summarize_pyspy(path: Path) -> dict[str, Any]:
    """Collapsed stacks -> share of samples by package (inclusive: any frame of it on the stack) and top functions."""
    if not path.exists():
        return {"error": "no profile written"}
    total = 0
    incl: Counter[str] = Counter()
    ours_fn: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in path.read_text("utf-8", "replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        seen: set[str] = set()
        for f in frames:
            pkg = package_of(f)
            if pkg not in seen:
                incl[pkg] += c
                seen.add(pkg)
            if "durable_jobs" in f:
                ours_fn[f.split(" (")[0] + " " + f[f.find("(") :].split("/durable_jobs/")[-1].split(":")[0]] += c
        if frames:
            leaf[package_of(frames[-1])] += c
    idle = sum(c for line in [] for c in [0])  # placeholder for readability
    del idle
    return {
        "samples": total,
        "inclusive_share_by_package": {k: round(v / max(total, 1), 3) for k, v in incl.most_common(14)},
        "self_share_by_package": {k: round(v / max(total, 1), 3) for k, v in leaf.most_common(10)},
        "library_functions_inclusive": {k: round(v / max(total, 1), 4) for k, v in ours_fn.most_common(12)},
    }


def package_of(frame: str) -> str:
    # py-spy prints paths relative to their sys.path entry ("structlog/_base.py"), or absolute
    path = "/" + (frame[frame.find("(") + 1 :] if "(" in frame else frame).lstrip("/")
    for key in (
        "durable_jobs",
        "greenback",
        "structlog",
        "msgspec",
        "pydantic",
        "sqlalchemy",
        "aiohttp",
        "asyncio",
        "selectors",
        "airflow/sdk",
        "airflow/jobs",
        "airflow/models",
        "airflow/api_fastapi",
        "airflow",
        "httpx",
        "psycopg2",
        "jinja2",
        "fastapi",
        "starlette",
        "anyio",
        "json",
        "opentelemetry",
    ):
        if f"/{key}/" in path or f"/{key}.py" in path or f"/{key}" in path:
            return key
    return "other"


def summarize_tracemalloc(by_file: dict[str, int], n: int) -> dict[str, Any]:
    by_pkg: Counter[str] = Counter()
    for filename, size in by_file.items():
        by_pkg[package_of(f"x ({filename})")] += size
    top_ours = {f.split("/durable_jobs/")[-1]: round(s / n) for f, s in by_file.items() if "/durable_jobs/" in f}
    return {
        "bytes_per_trigger_by_package": {k: round(v / n) for k, v in by_pkg.most_common(14)},
        "library_bytes_per_trigger_by_file": dict(sorted(top_ours.items(), key=lambda kv: -kv[1])[:12]),
    }


# --- report ------------------------------------------------------------------------------------------------------


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Increments over the floor (DateTimeTrigger a year ahead) at equal N."""
    by = {(r["system"], r["jobs"]): r for r in results if "failed" not in r}
    for r in by.values():
        f = by.get(("floor", r["jobs"]))
        if f is None or r is f:
            continue
        n = r["jobs"]
        r["startup_cpu_ms_per_trigger_over_floor"] = round(
            r["startup_cpu_ms_per_trigger"] - f["startup_cpu_ms_per_trigger"], 3
        )
        r["rss_kb_per_trigger_over_floor"] = round(1024 * (r["rss_mb_steady"] - f["rss_mb_steady"]) / n, 2)
        r["steady_cpu_us_per_trigger_interval_over_floor"] = round(
            r["steady_cpu_us_per_trigger_interval"] - f["steady_cpu_us_per_trigger_interval"], 2
        )
        r["pickup_over_floor_s"] = round(r["pickup_seconds"] - f["pickup_seconds"], 1)
        smaller = [m for (sys_, m) in by if sys_ == r["system"] and m < n and ("floor", m) in by]
        if smaller:
            m = max(smaller)
            lo, flo = by[(r["system"], m)], by[("floor", m)]
            slope = (r["rss_mb_steady"] - lo["rss_mb_steady"]) - (f["rss_mb_steady"] - flo["rss_mb_steady"])
            r["rss_kb_per_trigger_slope_over_floor"] = round(1024 * slope / (n - m), 2)
            r["rss_slope_between"] = [m, n]
    for r in by.values():  # second pass: every row's increment over the floor is known now
        livy = by.get(("livy", r["jobs"]))
        if r["system"] in OURS and livy is not None and "steady_cpu_us_per_trigger_interval_over_floor" in r:
            ours_inc = max(r["steady_cpu_us_per_trigger_interval_over_floor"], 0.0)
            livy_inc = livy.get("steady_cpu_us_per_trigger_interval_over_floor")
            if livy_inc:
                r["steady_cpu_increment_vs_livy"] = round(ours_inc / livy_inc, 3)


COLUMNS = [
    ("system", "system"),
    ("N", "jobs"),
    ("pickup s", "pickup_seconds"),
    ("start CPU ms/trig", "startup_cpu_ms_per_trigger"),
    ("  over floor", "startup_cpu_ms_per_trigger_over_floor"),
    ("steady CPU us/trig/poll", "steady_cpu_us_per_trigger_interval"),
    ("  over floor", "steady_cpu_us_per_trigger_interval_over_floor"),
    ("CPU ms/event", "event_cpu_ms_per_event"),
    ("RSS MB (sup+run)", "rss_mb_steady"),
    ("KB/trig over floor", "rss_kb_per_trigger_over_floor"),
    ("  slope", "rss_kb_per_trigger_slope_over_floor"),
    ("fds sup", "fds_supervisor_peak"),
    ("req/interval", "requests_per_interval_steady"),
    ("events", "events_of"),
    ("latency p99 s", "latency_db_p99_s"),
    ("blocked (max s)", "blocked"),
    ("lines/trig (lib)", "lines"),
    ("conn fetches", "fetches"),
    ("lib import on loop ms", "import_ms"),
]


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in sorted(results, key=lambda r: (r["jobs"], ALL.index(r["system"]))):
        if "failed" in r:
            out.append([r["system"], str(r["jobs"]), "failed: " + r["failed"].strip().splitlines()[-1][:100]])
            continue
        logs = r.get("logs", {})
        row = {
            **r,
            "events_of": f"{r['events']}/{r['ending_jobs']}",
            "blocked": f"{r['blocked_warnings']} ({r['blocked_max_s']:.2f})",
            "lines": f"{logs.get('lines_info_per_trigger_mean', '-')} "
            f"({logs.get('lines_library_per_trigger_mean', '-')})",
            "fetches": str(r.get("probe", {}).get("connection_fetches_supervisor", "-")),
            "import_ms": _ms(r.get("probe", {}).get("library_import_on_loop_max_s")),
        }
        if not r.get("pickup_complete", True):
            row["pickup_seconds"] = f">{r['pickup_seconds']}"
        out.append([fmt(row.get(k)) for _, k in COLUMNS])
    return out


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def print_table(results: list[dict[str, Any]]) -> None:
    head = [h for h, _ in COLUMNS]
    body = table_rows(results)
    widths = [max([len(h), *(len(row[i]) for row in body if len(row) > i)]) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in body:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=False)))


def markdown_table(results: list[dict[str, Any]]) -> list[str]:
    head = [h.strip() for h, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for row in table_rows(results):
        lines.append("| " + " | ".join(row + [""] * (len(head) - len(row))) + " |")
    return lines


def write_results_section(report: dict[str, Any], path: Path) -> None:
    """Replace the generated part of the write-up (between its markers) with this run's figures."""
    begin, end = "<!-- real_triggerer: begin -->", "<!-- real_triggerer: end -->"
    s = report["settings"]
    lines = [
        begin,
        f"Run: `{report['command']}`, {report['when']}, {report['seconds']:.0f} s; {report['machine']}; metadata DB "
        f"{s['db']}; poll interval {s['interval']:g} s; steady window {s['steady_intervals']} intervals; "
        f"{s['ending']:.0%} of the jobs end within one interval; logging {s['log_level']}; "
        f"`max_trigger_to_select_per_loop` {s['select_per_loop']}.",
        "",
        *markdown_table(report["results"]),
        "",
    ]
    if report.get("storm"):
        st = report["storm"]
        p = st["probe"]
        lines += [
            f"**Restart storm** ({st['jobs']:,} of ours, endpoint 503 for {st['down_seconds']:g} s): pickup "
            f"{st['pickup_s']} s (floor {st.get('floor_pickup_s')} s), every trigger polling at "
            f"{st.get('all_polling_s')} s "
            f"(over max(floor, outage): {st.get('all_polling_over_floor_s')} s); connection fetches "
            f"{p['connection_fetches_supervisor']} (supervisor), client creations {p['library_client_creations']}, "
            "aiohttp "
            f"sessions {p['aiohttp_sessions_runner']}, client sockets at the endpoint {st['client_sockets']}; "
            "requests per "
            f"interval {st['requests_per_interval']} (max {st['max_requests_per_interval']}); start-up CPU "
            f"{st['startup']['cpu_s']} s; blocked warnings {st['blocked_warnings']} (max {st['blocked_max_s']:.2f} s); "
            f"the library's import on the runner's loop {_ms(p.get('library_import_on_loop_max_s'))} ms.",
            "",
        ]
    if report.get("ha"):
        lines += [
            "**HA** (our jobs shared by K triggerers; requests at the one endpoint per interval):",
            "",
            "| K | queue recipe | triggers per triggerer | requests per interval | target |",
            "| --- | --- | --- | --- | --- |",
        ]
        for h in report["ha"]:
            if "failed" in h:
                lines.append(f"| {h.get('triggerers')} | {h.get('queue_recipe')} | failed: {h['failed'][-80:]} | | |")
                continue
            lines.append(
                f"| {h['triggerers']} | {'yes' if h['queue_recipe'] else 'no'} | {h['triggers_per_triggerer']} | "
                f"{h['requests_per_interval']} | <= {h['target_max_per_interval']} |"
            )
        lines.append("")
    if report.get("profile"):
        pr = report["profile"]
        lines += [
            "**Profile** (ours, N = {:,}; py-spy at 50 Hz over pickup + 2 intervals; tracemalloc after pickup):".format(
                pr["jobs"]
            ),
            "",
            "```json",
            json.dumps({k: v for k, v in pr.items() if k != "jobs"}, indent=1)[:6000],
            "```",
            "",
        ]
    lines.append(end)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        text = text[: text.index(begin)] + "\n".join(lines) + text[text.index(end) + len(end) :]
    else:
        text = text + "\n" + "\n".join(lines) + "\n"
    path.write_text(text)


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def full_report(
    args: argparse.Namespace, started: float, results: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "benchmark": "real_triggerer",
        "command": " ".join(["python benchmarks/real_triggerer.py", *sys.argv[1:]]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "settings": {
            "db": args.db,
            "interval": args.interval,
            "steady_intervals": args.steady_intervals,
            "ending": args.ending,
            "first_end": args.first_end,
            "log_level": args.log_level,
            "select_per_loop": args.select_per_loop,
            "greenback": not args.no_greenback,
            "jobs": args.jobs,
            "provider_max_jobs": args.provider_max_jobs,
        },
        "results": results,
        **extra,
    }


def save_partial(
    args: argparse.Namespace, started: float, results: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    """The JSON so far, after every row: a run stopped half-way keeps what it measured."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({**full_report(args, started, results, extra), "partial": True}, indent=2, default=str)
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--jobs", type=int, nargs="+", default=[1000, 5000, 10000])
    p.add_argument("--systems", nargs="+", default=ALL, choices=ALL)
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--interval", type=float, default=10.0, help="poll interval of every polling trigger (s)")
    p.add_argument("--steady-intervals", type=int, default=2)
    p.add_argument("--first-end", type=float, default=None, help="first job ends this long after pickup (s)")
    p.add_argument("--ending", type=float, default=0.1, help="fraction of the jobs that end in the events window")
    p.add_argument("--event-grace", type=float, default=20.0)
    p.add_argument("--pickup-timeout", type=float, default=330.0)
    p.add_argument(
        "--provider-max-jobs",
        type=int,
        default=1000,
        help="largest N for the providers' triggers (0: all; at 5,000 they saturate: about 20 more minutes)",
    )
    p.add_argument("--select-per-loop", type=int, default=50, help="[triggerer] max_trigger_to_select_per_loop")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--no-greenback", action="store_true", help="AIRFLOW_DISABLE_GREENBACK_PORTAL=true")
    p.add_argument("--envconn-jobs", type=int, default=5000, help="N of the row with the connection in the environment")
    p.add_argument("--storm-jobs", type=int, default=5000)
    p.add_argument("--storm-down", type=float, default=60.0)
    p.add_argument("--no-storm", action="store_true")
    p.add_argument("--ha-jobs", type=int, default=2000)
    p.add_argument("--ha-k", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--no-ha", action="store_true")
    p.add_argument("--profile", action="store_true", help="add a py-spy + tracemalloc pass over ours")
    p.add_argument("--profile-jobs", type=int, default=5000)
    p.add_argument("--profile-modes", nargs="+", default=["pyspy", "tracemalloc"], choices=["pyspy", "tracemalloc"])
    p.add_argument("--quick", action="store_true", help="N = 100, short windows, SQLite unless --db is given")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--no-doc", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) for inspection")
    args = p.parse_args()
    # SIGTERM (e.g. a CI timeout) unwinds through the finally blocks: triggerers and PostgreSQL are stopped by PID
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    if args.quick:
        args.jobs = [100] if p.get_default("jobs") == args.jobs else args.jobs
        args.interval = 2.0 if args.interval == p.get_default("interval") else args.interval
        args.steady_intervals = 2
        args.storm_jobs, args.storm_down = min(args.storm_jobs, 100), min(args.storm_down, 6.0)
        args.ha_jobs, args.ha_k = min(args.ha_jobs, 100), [1, 2]
        args.pickup_timeout = min(args.pickup_timeout, 120.0)
        args.event_grace = 10.0
        args.profile_jobs = min(args.profile_jobs, 100)
    if args.first_end is None:
        args.first_end = args.steady_intervals * args.interval + min(args.interval, 5.0) + 2.0

    started = time.monotonic()
    provider_py = provider_python() if any(s in PROVIDERS for s in args.systems) else None
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="real-triggerer-"))
    af = servers = None
    try:
        af = Airflow(work, args.db, args)
        print(f"preparing Airflow on {args.db} in {work} ...", flush=True)
        af.prepare()
        servers = Servers(work)
        Sampler.extra_pids = {"endpoints": [servers.proc.pid], "harness": [os.getpid()]}
        if af.db.pg is not None:
            pm = (af.db.pg.data_dir / "postmaster.pid").read_text().split()[0]
            Sampler.extra_pids["db"] = [int(pm)]
        floor_pickup: dict[int, float] = {}
        for n in args.jobs:
            for system in [s for s in ALL if s in args.systems]:
                python = provider_py if system in PROVIDERS else Path(sys.executable)
                if python is None or (system in PROVIDERS and 0 < args.provider_max_jobs < n):
                    continue
                if system == "floor-near" and n not in (min(args.jobs), max(args.jobs)):
                    continue
                if system == "durable-spark-envconn" and n != args.envconn_jobs and len(args.jobs) > 1:
                    continue
                print(f"  {system} x {n} ...", end=" ", flush=True)
                try:
                    r = measure(af, servers, system, n, args, python, floor_pickup.get(n))
                except Exception as exc:  # one failed row must not lose the others
                    r = {"system": system, "jobs": n, "failed": f"{type(exc).__name__}: {exc}"}
                    print("FAILED", str(exc)[-400:], flush=True)
                else:
                    if system == "floor":
                        floor_pickup[n] = r["pickup_seconds"]
                    print(
                        f"pickup {r['pickup_seconds']} s, startup CPU {r['startup']['cpu_s']} s, steady "
                        f"{r['steady']['cpu_s']} s, {r['events']}/{r['ending_jobs']} events, "
                        f"p99 {r['latency_db_p99_s']} s, "
                        f"blocked {r['blocked_warnings']}, fetches {r['probe']['connection_fetches_supervisor']}, "
                        f"library import on the loop {_ms(r['probe']['library_import_on_loop_max_s'])} ms",
                        flush=True,
                    )
                results.append(r)
                save_partial(args, started, results, report)
        add_ratios(results)
        if not args.no_storm:
            print(f"  restart storm x {args.storm_jobs} ...", end=" ", flush=True)
            fp = floor_pickup.get(args.storm_jobs)
            if fp is None:
                fr = measure(af, servers, "floor", args.storm_jobs, args, Path(sys.executable))
                results.append(fr)
                fp = fr["pickup_seconds"]
                add_ratios(results)
            try:
                report["storm"] = storm(af, servers, args.storm_jobs, args, fp)
                print(
                    f"pickup {report['storm']['pickup_s']} s, polling at {report['storm']['all_polling_s']} s, fetches "
                    f"{report['storm']['probe']['connection_fetches_supervisor']}",
                    flush=True,
                )
            except Exception as exc:
                report["storm"] = None
                report.setdefault("failures", []).append(f"storm: {exc}")
                print("FAILED", str(exc)[-400:], flush=True)
        if not args.no_ha:
            report["ha"] = []
            for k, recipe in [*((k, False) for k in args.ha_k), (max(args.ha_k), True)]:
                print(f"  HA K={k} recipe={recipe} x {args.ha_jobs} ...", end=" ", flush=True)
                try:
                    h = ha(af, servers, args.ha_jobs, k, args, recipe)
                    print(f"requests per interval {h['requests_per_interval']}", flush=True)
                except Exception as exc:
                    h = {"triggerers": k, "queue_recipe": recipe, "failed": str(exc)}
                    print("FAILED", str(exc)[-400:], flush=True)
                report["ha"].append(h)
        save_partial(args, started, results, report)
        if args.profile:
            print(f"  profile x {args.profile_jobs} ...", flush=True)
            report["profile"] = profile(af, servers, args.profile_jobs, args)
    finally:
        if servers is not None:
            servers.stop()
        if af is not None:
            af.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report = full_report(args, started, results, report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print_table(results)
    print(f"\nwrote {args.out}")
    if not args.no_doc:
        write_results_section(report, args.doc)
        print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
