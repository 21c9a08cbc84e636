"""README's quickstart says what the code does: its local connection is the one the local cluster prints, its
DAG parses and names the jar that cluster builds, and the local cluster's ports stay clear of Airflow's.

The whole walk (install, connection, DAG, ``airflow dags test`` against the running cluster) is run by hand;
these checks keep the text from drifting away from the code between those runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import conf

from durable_jobs.operators import SparkStandaloneOperator
from durable_jobs.systems.spark_standalone import REST_PORT, UI_PORT
from durable_jobs_harness.spark_cluster import LOCAL_APPS_DIR, LOCAL_PORTS, connection_command

README = Path(__file__).resolve().parents[2] / "README.md"


def _quickstart() -> str:
    text = README.read_text()
    return text[text.index("## Quickstart") : text.index("\n## ", text.index("## Quickstart") + 1)]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _quickstart(), re.S)


def _commands(block: str) -> list[list[str]]:
    """The shell commands of a block, continuation lines joined and comments dropped."""
    joined = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def test_the_local_connection_is_the_one_the_local_cluster_prints() -> None:
    commands = [cmd for block in _blocks("bash") for cmd in _commands(block)]
    adds = [cmd for cmd in commands if cmd[:3] == ["airflow", "connections", "add"]]
    assert len(adds) == 2, adds  # a remote master, and the local cluster
    assert adds[1] == shlex.split(connection_command(LOCAL_PORTS))
    remote = adds[0]
    assert remote[remote.index("--conn-port") + 1] == str(REST_PORT)
    assert f":{UI_PORT}" in remote[remote.index("--conn-extra") + 1]  # Spark's own default, on another host


def test_the_local_cluster_keeps_clear_of_airflows_ports() -> None:
    airflow_ports = {
        conf.getint("api", "port"),  # the api-server (and `airflow standalone`)
        conf.getint("logging", "worker_log_server_port"),
        conf.getint("logging", "trigger_log_server_port"),
    }
    assert 8080 in airflow_ports
    ours = {LOCAL_PORTS.master, LOCAL_PORTS.rest, LOCAL_PORTS.master_ui, LOCAL_PORTS.worker, LOCAL_PORTS.worker_ui}
    assert len(ours) == 5
    assert not ours & airflow_ports
    assert UI_PORT == 8080  # what a master's UI takes when nobody says otherwise: hence the local one's 8090
    assert LOCAL_PORTS.master_ui != UI_PORT


def test_the_dag_parses_and_names_the_jar_the_local_cluster_builds(tmp_path: Path) -> None:
    (block,) = _blocks("python")
    (tmp_path / "durable_spark_quickstart.py").write_text(block)
    bag = DagBag(dag_folder=str(tmp_path))
    assert not bag.import_errors, bag.import_errors
    (task,) = bag.dags["durable_spark_quickstart"].tasks
    assert isinstance(task, SparkStandaloneOperator)
    assert task.application == f"file:{LOCAL_APPS_DIR / 'sleep-exit.jar'}"
    assert task.main_class == "demo.SleepExit"
    assert task.conn_id == "spark_standalone_default"
    assert task.deferrable is True
    assert "(default 30 s)" in block and task.poll_interval != 30  # the example shows the knob and its default
