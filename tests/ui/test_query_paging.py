"""The records query's paging (:func:`durable_jobs.ui.query.records`) on a real migrated metadata DB (SQLite).

The page is asked in two steps (the page's ids with a window count, then those rows with their joins:
docs/ui.md, "Paging benchmark"); these tests hold it to the plain ``ORDER BY updated_at DESC, id DESC LIMIT
OFFSET`` over every record, the total of every matching row on each page, a page past the end (the count
alone), a filter on the value, and the readable DAGs. No task instances: the join is outer, the rows stay.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from durable_jobs.record import STATE_KEY, JobRecord, Outcome, TaskIdentity
from durable_jobs.ui import query
from durable_jobs.ui.filters import Filters
from tests.core.test_links import metadata_db  # noqa: F401  # the migrated DB fixture

pytestmark = pytest.mark.airflow_db
DAGS = ("paging_a", "paging_b")
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def seeded(metadata_db: None) -> Iterator[list[tuple[str, str, str]]]:  # noqa: F811
    """30 records over two DAGs (two of each ``updated_at``: the id breaks the tie); (dag, task, outcome), oldest
    first by (updated_at, id)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    out = []
    with create_session() as session:
        runs = {}
        for dag_id in DAGS:
            run = DagRun(dag_id=dag_id, run_id="r1", run_type="manual", run_after=T0, state="running")
            session.add(run)
            session.flush()
            runs[dag_id] = run.id
        for i in range(30):
            dag_id = DAGS[i % 2]
            ident = TaskIdentity(dag_id, "r1", f"t{i:02d}")
            outcome = Outcome.FAILED if i % 3 == 0 else Outcome.SUCCEEDED
            rec = JobRecord.intent(system="yarn", identity=ident, generation=0, timeout=None, now=1.0e9)
            rec = rec.submitted({"app_id": f"application_1_{i:04d}"}).finished(outcome, "done")
            session.add(
                TaskStateStoreModel(
                    dag_run_id=runs[dag_id],
                    dag_id=dag_id,
                    run_id="r1",
                    task_id=ident.task_id,
                    map_index=-1,
                    key=STATE_KEY,
                    value=json.dumps(rec.to_json()),
                    updated_at=T0 + dt.timedelta(minutes=i // 2),
                )
            )
            session.flush()
            out.append((dag_id, ident.task_id, outcome.value))
    yield out


def page(filters: Filters, dags: tuple[str, ...] = DAGS) -> tuple[int, list[str]]:
    from airflow.utils.session import create_session

    with create_session() as session:
        total, rows = query.records(session, filters, set(dags))
    return total, [r.task_id for r in rows]


def test_pages_follow_updated_at_then_id_newest_first_with_the_total_on_each(seeded: list[Any]) -> None:
    newest_first = [task for _, task, _ in reversed(seeded)]
    pages = [page(Filters(limit=7, offset=o)) for o in range(0, 35, 7)]
    assert {total for total, _ in pages} == {30}
    assert [t for _, tasks in pages for t in tasks] == newest_first
    assert page(Filters(limit=7, offset=28)) == (30, newest_first[28:])


def test_a_page_past_the_end_still_says_the_total(seeded: list[Any]) -> None:
    assert page(Filters(limit=10, offset=30)) == (30, [])
    assert page(Filters(limit=10, offset=500)) == (30, [])
    assert page(Filters(dag_id="no_such_dag")) == (0, [])


def test_a_filter_on_the_value_and_the_readable_dags_page_the_same_way(seeded: list[Any]) -> None:
    failed_b = [task for dag, task, outcome in reversed(seeded) if outcome == "failed" and dag == "paging_b"]
    assert len(failed_b) == 5
    assert page(Filters.parse(outcome="failed", limit=2, offset=2), ("paging_b",)) == (5, failed_b[2:4])
    assert page(Filters.parse(outcome="failed", limit=2, offset=6), ("paging_b",)) == (5, [])
    assert page(Filters(), ()) == (0, [])
