"""The real Airflow the view's tests share (tests/ui/conftest.py): its DAGs, its users, and the view's API.

The harness's Airflow (api-server, scheduler, dag processor, triggerer) runs the DAGs of tests/ui/dags once:
their tasks store records in every phase through the real task state store. Its auth manager is
:class:`~durable_jobs_harness.dag_auth.DagListAuthManager`, SimpleAuthManager with ``outsider`` kept to one
DAG (SimpleAuthManager has no per-DAG permission: docs/ui.md). The API tests (test_view_api.py) and the
browser tests (test_browser.py) ask the same one. ``DURABLE_JOBS_UI_DB=postgres`` runs it on a private
PostgreSQL cluster instead of SQLite.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.airflow_env.api import AirflowApi

DAGS = Path(__file__).resolve().parent / "dags"
USERS = "admin:admin,viewer:viewer,outsider:user"
OTHER = "ui_view_other"
#: the browser tests' own DAG: its ended task's job is theirs to cancel (test_view_api cancels ui_view's)
BROWSER = "ui_view_browser"
#: every record the DAGs write: ui_view 12 (6 mapped), ui_view_other 1, ui_view_browser 1
TOTAL = 14


class View:
    """The view's API as one user: ``get``/``post`` answer (status, JSON)."""

    def __init__(self, af: AirflowEnv, user: str) -> None:
        self.base = f"{af.base_url}/durable-jobs"
        self.user = user
        self.api = AirflowApi(af.base_url, user, lambda: password(af, user))

    def request(self, method: str, path: str, *, auth: str = "bearer", **params: Any) -> tuple[int, Any]:
        url = f"{self.base}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Accept": "application/json"}
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {self.api.token()}"
        elif auth == "cookie":  # how the page's requests authenticate: the UI's own cookie
            headers["Cookie"] = f"_token={self.api.token()}"
        elif auth == "forged":
            headers["Authorization"] = "Bearer not.a.jwt"
        req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def records(self, **params: Any) -> dict[str, Any]:
        status, body = self.request("GET", "/api/records", **params)
        assert status == 200, body
        return dict(body)


def password(af: AirflowEnv, user: str) -> str:
    """The password SimpleAuthManager generated for ``user``."""
    return str(json.loads(af.password_file.read_text())[user])


def by_task(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["task_id"], r["map_index"]): r for r in records}


def plugin_path(root: Path) -> str:
    """PYTHONPATH for Airflow's processes: a dist-info naming the plugin's entry point when the installed
    package predates it (the repo's editable install is made from main), then the test's own path."""
    path = os.environ.get("PYTHONPATH", "")
    names = {ep.name for ep in importlib.metadata.entry_points(group="airflow.plugins")}
    if "durable_jobs_ui" in names:
        return path
    info = root / "shim" / "durable_jobs_ui_shim-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: durable-jobs-ui-shim\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[airflow.plugins]\ndurable_jobs_ui = durable_jobs.ui.plugin:DurableJobsPlugin\n"
    )
    return os.pathsep.join(p for p in (str(root / "shim"), path) if p)


@contextmanager
def view_airflow(database: str = "sqlite") -> Iterator[tuple[AirflowEnv, dict[str, str]]]:
    """Airflow with the view's plugin, once the DAGs' runs wrote their records: (env, run id of each DAG)."""
    root = Path(tempfile.mkdtemp(prefix="durable-jobs-ui-"))
    env = {
        "PYTHONPATH": plugin_path(root),
        "AIRFLOW__CORE__AUTH_MANAGER": "durable_jobs_harness.dag_auth.DagListAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "DURABLE_JOBS_HARNESS_DAG_ACCESS": json.dumps({"outsider": [OTHER]}),
    }
    af = AirflowEnv(DAGS, env=env, database=database)
    try:
        af.start()
        af.wait_dags(["ui_view", OTHER, BROWSER])
        runs = {dag: af.api.trigger(dag) for dag in ("ui_view", OTHER, BROWSER)}
        for dag in (OTHER, BROWSER):
            af.api.wait_run_finished(dag, runs[dag], timeout=300)
        for task_id in ("orphan_job", "finished_job", "lost_job", "submitting_job", "unreadable_job"):
            af.api.wait_ti_state("ui_view", runs["ui_view"], task_id, ["success"], timeout=300)
        for i in range(6):
            af.api.wait_ti_state("ui_view", runs["ui_view"], "mapped_job", ["success"], timeout=300, map_index=i)
        af.api.wait_ti_state("ui_view", runs["ui_view"], "deferred_job", ["deferred"], timeout=300)
        yield af, runs
    finally:
        print(af.logs_tail(80))  # shown when a test failed
        af.stop(keep_home=bool(os.environ.get("DURABLE_JOBS_UI_KEEP")))
        shutil.rmtree(root, ignore_errors=True)
