"""How the e2e report counts a run's trigger events: from per-trigger files and the triggerers' own logs.

The crash matrix asserts on this count, so its reading of Airflow's log layout is tested here, on lines copied
from a CI run (real Airflow 3.3.2 output), without starting Airflow.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.observe import count_trigger_events, triggerer_log_events

DAG, RUN = "e2e_bigquery_deadline", "manual__2026-12-04T13:10:09_46a708"
FIELDS = f"dag_id={DAG} loc=triggerer_job_runner.py:1046 map_index=-1"
TAIL = f"run_id={RUN} task_id=job ti_id=01a2412d-2d4e-7ba3-be12-8e412df48e66 try_number=1"
NAME = f"name='{DAG}/{RUN}/job/-1/1 (ID 4)'"

# the deadline event whose lines landed in the triggerer's log, not in the per-trigger file (CI, stop 27)
TRIGGERER_LOG = f"""\
=== 2026-12-04 13:09:40 starting triggerer: python -m airflow triggerer --skip-serve-logs
2026-12-04T13:10:26.934852Z [info     ] trigger ID 12 starting         [airflow.jobs.triggerer_job_runner] \
dag_id=None loc=triggerer_job_runner.py:1046 map_index=None run_id=None task_id=None ti_id=None try_number=None
2026-12-04T13:10:36.228442Z [info     ] BigQuery job fake-project:US.airflow_durable_dj: timeout deadline passed \
while BigQuery job fake-project:US.airflow_durable_dj was not finished \
[durable_jobs.triggers.bigquery.BigQueryTrigger] \
{FIELDS} {TAIL}
2026-12-04T13:10:36.228768Z [info     ] Trigger fired event            [airflow.jobs.triggerer_job_runner] \
{FIELDS} {NAME} result="TriggerEvent<{{'status': 'timeout', 'job': {{'job_id': 'airflow_durable_dj'}}}}>" {TAIL}
2026-12-04T13:10:36.229139Z [info     ] trigger completed              [airflow.jobs.triggerer_job_runner] \
{FIELDS} {NAME} {TAIL}
2026-12-04T13:10:40.229139Z [info     ] trigger completed              [airflow.jobs.triggerer_job_runner] \
{FIELDS} name='{DAG}/manual__other/job/-1/1 (ID 9)' run_id=manual__other task_id=job try_number=1
"""


class Logs:
    """The two things observe.py reads of an AirflowEnv: its logs folder and a run's task log files."""

    def __init__(self, root: Path) -> None:
        self.logs_dir = root

    def task_logs(self, dag_id: str, run_id: str, task_id: str | None = None) -> dict[Path, str]:
        root = self.logs_dir / f"dag_id={dag_id}" / f"run_id={run_id}"
        return {p: p.read_text() for p in root.rglob("attempt=*") if p.is_file()}


def trigger_file(root: Path, name: str, *events: str, task: str = "job", map_index: int | None = None) -> None:
    folder = root / f"dag_id={DAG}" / f"run_id={RUN}" / f"task_id={task}"
    if map_index is not None:
        folder = folder / f"map_index={map_index}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps({"event": e, "level": "info"}) + "\n" for e in events))


def test_an_event_logged_only_in_the_triggerer_log_counts(tmp_path: Path) -> None:
    trigger_file(tmp_path, "attempt=1.log.trigger.2.log", "trigger job starting", "Watching BigQuery job x every 2s")
    assert count_trigger_events(Logs(tmp_path), DAG, RUN) == 0  # the file alone shows no event
    (tmp_path / "triggerer.log").write_text(TRIGGERER_LOG)
    assert count_trigger_events(Logs(tmp_path), DAG, RUN) == 1


def test_triggerer_log_lines_are_the_runs_own_with_their_try(tmp_path: Path) -> None:
    (tmp_path / "triggerer.log").write_text(TRIGGERER_LOG)
    lines = triggerer_log_events(Logs(tmp_path), DAG, RUN)
    assert [key for key, _ in lines] == [("job", -1, 1)] * 3  # not the callback's, not the other run's
    assert [event for _, event in lines][1:] == ["Trigger fired event", "trigger completed"]
    assert lines[0][1].endswith("was not finished")


def test_two_triggerers_firing_for_one_try_count_once(tmp_path: Path) -> None:
    # a late heartbeat: Airflow gave the trigger to triggerer 4 while triggerer 1 still ran it, and both fired
    done = ("Spark driver d-1: succeeded ", "Trigger fired event")
    for job in (1, 4):
        trigger_file(tmp_path, f"attempt=1.log.trigger.{job}.log", *done)
    trigger_file(tmp_path, "attempt=2.log.trigger.4.log", "Watching Spark driver d-1 every 2s")
    assert count_trigger_events(Logs(tmp_path), DAG, RUN) == 1
    trigger_file(tmp_path, "attempt=2.log.trigger.4.log", "Watching Spark driver d-1 every 2s", "Trigger fired event")
    assert count_trigger_events(Logs(tmp_path), DAG, RUN) == 2


def test_mapped_tries_count_per_map_index(tmp_path: Path) -> None:
    for i in range(3):
        trigger_file(tmp_path, "attempt=1.log.trigger.2.log", "Trigger fired event", map_index=i)
    trigger_file(tmp_path, "attempt=1.log.trigger.3.log", "Job a/b: succeeded ", map_index=0)  # the same try again
    assert count_trigger_events(Logs(tmp_path), DAG, RUN) == 3
