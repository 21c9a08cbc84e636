"""The "Durable jobs" view's API, served by a real api-server (the harness's Airflow) with its real auth.

The DAGs of tests/ui/dags/ui_view.py run once, in the Airflow tests/ui shares (conftest.py, view_airflow.py):
their tasks store records in every phase through the real task state store (one deferred on a trigger, one
ended with its job still recorded as running, an unreadable one...). The tests ask the plugin's API as
Airflow's users: ``admin`` (every DAG), ``viewer`` (read only), and ``outsider``, kept to one DAG by the
harness's :class:`~durable_jobs_harness.dag_auth.DagListAuthManager` (SimpleAuthManager has no per-DAG
permission: docs/ui.md). ``DURABLE_JOBS_UI_DB=postgres`` runs it on a private PostgreSQL cluster instead
of SQLite.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from durable_jobs.reaper.orphan import CALLBACK_PATH
from durable_jobs.record import STATE_KEY
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until
from durable_jobs_harness.callbacks import callbacks
from tests.ui.view_airflow import BROWSER, OTHER, TOTAL, View, by_task

pytestmark = [pytest.mark.timeout(900)]  # the first test of tests/ui also waits for Airflow to start


def test_the_plugin_is_registered_with_its_app_and_nav_entry(airflow: tuple[AirflowEnv, dict[str, str]]) -> None:
    af, _ = airflow
    plugins = {p["name"]: p for p in af.api.call("GET", "/api/v2/plugins")["plugins"]}
    ui = plugins["durable_jobs_ui"]
    assert [a["url_prefix"] for a in ui["fastapi_apps"]] == ["/durable-jobs"]
    (view,) = ui["external_views"]
    assert (view["name"], view["href"], view["destination"], view["url_route"]) == (
        "Durable jobs",
        "/durable-jobs/",
        "nav",
        "durable-jobs",
    )


def test_every_record_is_listed_newest_first_with_its_task(
    airflow: tuple[AirflowEnv, dict[str, str]], admin: View
) -> None:
    _, runs = airflow
    page = admin.records(limit=500)
    assert page["total"] == TOTAL == len(page["records"])
    stamps = [r["updated_at"] for r in page["records"]]
    assert stamps == sorted(stamps, reverse=True)
    rows = by_task([r for r in page["records"] if r["dag_id"] == "ui_view"])
    assert set(rows) == {
        ("deferred_job", -1),
        ("orphan_job", -1),
        ("finished_job", -1),
        ("lost_job", -1),
        ("submitting_job", -1),
        ("unreadable_job", -1),
        *(("mapped_job", i) for i in range(6)),
    }
    deferred = rows["deferred_job", -1]
    assert (deferred["state"], deferred["phase"], deferred["system"], deferred["endpoint"]) == (
        "deferred",
        "submitted",
        "spark-standalone",
        "spark_ui",
    )
    assert deferred["run_id"] == runs["ui_view"] and deferred["try_number"] == 1 and deferred["ti_id"]
    assert dt.datetime.fromisoformat(deferred["deferred_since"]) <= dt.datetime.now(dt.timezone.utc)
    assert deferred["job_id"] == "submission_id=driver-deferred_job-0" and deferred["cancellable"] is False
    finished = rows["finished_job", -1]
    assert (finished["generation"], finished["phase"], finished["outcome"]) == (2, "finished", "succeeded")
    assert [(h["generation"], h["outcome"]) for h in finished["history"]] == [(0, "failed"), (1, "failed")]
    assert [(t["try"], t["decision"]) for t in finished["tries"]] == [(1, "fresh"), (2, "next_generation")]
    assert finished["last_status"] == "the job ended succeeded" and finished["last_status_at"]
    orphan = rows["orphan_job", -1]
    assert orphan["links"] == [{"name": "Spark master UI", "url": "http://127.0.0.1:1/master"}]
    assert orphan["cancellable"] is True
    unreadable = rows["unreadable_job", -1]
    assert (unreadable["readable"], unreadable["phase"], unreadable["state"]) == (False, "unreadable", "success")
    assert "field 'v' is 99" in unreadable["error"]
    assert [rows["mapped_job", i]["phase"] for i in range(6)] == ["finished", "submitted"] * 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"dag_id": OTHER}, {(OTHER, "other_job")}),
        ({"system": "yarn"}, {("ui_view", "lost_job"), ("ui_view", "submitting_job")}),
        ({"phase": "submitting"}, {("ui_view", "submitting_job")}),
        ({"outcome": "lost"}, {("ui_view", "lost_job")}),
        ({"phase": "finished", "outcome": "succeeded"}, {("ui_view", "finished_job"), (OTHER, "other_job")}),
        (
            {"dag_id": "ui_view", "phase": "submitted", "system": "spark-standalone"},
            {("ui_view", "deferred_job"), ("ui_view", "orphan_job"), ("ui_view", "mapped_job")},
        ),
    ],
)
def test_filters(admin: View, params: dict[str, str], expected: set[tuple[str, str]]) -> None:
    page = admin.records(**params)
    assert {(r["dag_id"], r["task_id"]) for r in page["records"]} == expected
    assert page["total"] == len(page["records"])


def test_pages_cover_every_record_once_in_order(admin: View) -> None:
    everything = [(r["dag_id"], r["task_id"], r["map_index"]) for r in admin.records(limit=500)["records"]]
    pages = [admin.records(limit=5, offset=o) for o in (0, 5, 10)]
    assert [len(p["records"]) for p in pages] == [5, 5, TOTAL - 10] and {p["total"] for p in pages} == {TOTAL}
    assert [(r["dag_id"], r["task_id"], r["map_index"]) for p in pages for r in p["records"]] == everything


def test_bad_filters_are_refused(admin: View) -> None:
    assert admin.request("GET", "/api/records", limit=501)[0] == 422
    status, body = admin.request("GET", "/api/records", phase="running")
    assert status == 422 and "phase must be one of" in body["detail"]


def test_without_a_token_nothing_is_answered_but_the_page(admin: View) -> None:
    for path in ("/api/records", "/api/endpoints"):
        assert admin.request("GET", path, auth="none")[0] == 401
    assert admin.request("POST", "/api/records/x/cancel", auth="none")[0] == 401
    assert admin.request("GET", "/api/records", auth="forged")[0] == 403
    status, page = admin.request("GET", "/", auth="none")
    assert status == 200 and 'id="records"' in page and "<script" in page
    assert not re.search(r"https?://", page.split("<script")[1])  # nothing fetched from elsewhere


def test_the_uis_cookie_authenticates(admin: View) -> None:
    status, body = admin.request("GET", "/api/records", auth="cookie", dag_id=OTHER)
    assert status == 200 and body["total"] == 1


def test_a_user_without_access_to_a_dag_sees_none_of_its_jobs(airflow: tuple[AirflowEnv, dict[str, str]]) -> None:
    outsider = View(airflow[0], "outsider")
    page = outsider.records(limit=500)
    assert {r["dag_id"] for r in page["records"]} == {OTHER} and page["total"] == 1
    assert outsider.records(dag_id="ui_view")["total"] == 0
    endpoints = outsider.request("GET", "/api/endpoints")[1]["endpoints"]
    assert endpoints == []  # the other DAG's job ended: no active job at any endpoint it may see
    orphan = by_task(View(airflow[0], "admin").records(dag_id="ui_view")["records"])["orphan_job", -1]
    assert outsider.request("POST", f"/api/records/{orphan['ti_id']}/cancel")[0] == 404


def test_endpoints_from_the_active_records(admin: View) -> None:
    status, body = admin.request("GET", "/api/endpoints")
    assert status == 200
    got = {(e["system"], e["endpoint"]): e for e in body["endpoints"]}
    assert set(got) == {("spark-standalone", "spark_ui"), ("yarn", "yarn_ui")}
    spark = got["spark-standalone", "spark_ui"]
    # deferred_job, orphan_job and the three submitted mapped tasks; only deferred_job is watched; and the
    # browser tests' orphan until they cancel it (they run first in tests/ui)
    (browser,) = admin.records(dag_id=BROWSER)["records"]
    active = 5 + (browser["phase"] == "submitted")
    assert (spark["jobs"], spark["watched"], spark["state"]) == (active, 1, "unknown")
    assert (got["yarn", "yarn_ui"]["jobs"], got["yarn", "yarn_ui"]["watched"]) == (1, 0)


def test_cancel_is_refused_while_the_task_is_deferred(admin: View) -> None:
    deferred = by_task(admin.records(dag_id="ui_view")["records"])["deferred_job", -1]
    status, body = admin.request("POST", f"/api/records/{deferred['ti_id']}/cancel")
    assert status == 409 and "is deferred" in body["detail"]


def test_cancel_needs_edit_permission(airflow: tuple[AirflowEnv, dict[str, str]], admin: View) -> None:
    orphan = by_task(admin.records(dag_id="ui_view")["records"])["orphan_job", -1]
    status, body = View(airflow[0], "viewer").request("POST", f"/api/records/{orphan['ti_id']}/cancel")
    assert status == 403 and "may not edit DAG ui_view" in body["detail"]
    assert by_task(admin.records(dag_id="ui_view")["records"])["orphan_job", -1]["phase"] == "submitted"


def test_cancel_of_an_ended_task_queues_the_reapers_callback(
    airflow: tuple[AirflowEnv, dict[str, str]], admin: View
) -> None:
    af, runs = airflow
    orphan = by_task(admin.records(dag_id="ui_view")["records"])["orphan_job", -1]
    status, body = admin.request("POST", f"/api/records/{orphan['ti_id']}/cancel")
    assert status == 200 and body == {"queued": True, "job": {"submission_id": "driver-orphan_job-0"}, "generation": 0}
    after = by_task(admin.records(dag_id="ui_view")["records"])["orphan_job", -1]
    assert (after["phase"], after["outcome"], after["cancel"]["by"], after["cancellable"]) == (
        "finished",
        "cancelled",
        "ui_cancel",
        False,
    )
    stored = af.api.state_store("ui_view", runs["ui_view"], "orphan_job")[STATE_KEY]
    assert stored["cancel"]["ti_id"] == orphan["ti_id"]
    (call,) = [c for c in callbacks(af, CALLBACK_PATH) if c.kwargs.get("task_id") == "orphan_job"]
    assert (call.kwargs["by"], call.kwargs["conn_id"], call.kwargs["token"]) == (
        "ui_cancel",
        "spark_ui",
        after["token"],
    )
    # the action is logged with the user's name
    log = (af.logs_dir / "api-server.log").read_text("utf-8", "replace")
    assert "durable_jobs ui: admin cancelled the job {'submission_id': 'driver-orphan_job-0'}" in log
    # a second click: nothing active is recorded any more
    assert admin.request("POST", f"/api/records/{orphan['ti_id']}/cancel")[0] == 409
    # the triggerer ran it (the connection does not exist here: it says so, and names the job to cancel by hand)
    ended = wait_until(
        "the callback to run",
        lambda: (
            [
                c
                for c in callbacks(af, CALLBACK_PATH)
                if c.kwargs.get("task_id") == "orphan_job" and c.state in ("success", "failed")
            ]
            or None
        ),
        timeout=120,
    )
    assert ended is not None and ended[0].state == "failed", ended
    said = str(ended[0].output)
    assert "durable_jobs reaper: NOT cancelled" in said and "cancelled in the Durable jobs view" in said, said
    assert "no client from connection 'spark_ui'" in said, said


def test_an_unknown_task_instance_is_not_found(admin: View) -> None:
    assert admin.request("POST", "/api/records/0199e000-0000-7000-8000-000000000000/cancel")[0] == 404
    assert admin.request("POST", "/api/records/not-an-id/cancel")[0] == 404
