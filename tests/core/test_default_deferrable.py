"""Whether an operator defers by default: what the deployment says, read as the docstring and README say."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from airflow.sdk import conf

from durable_jobs.operators.base import DurableJobOperator, default_deferrable
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

ENV_OPERATORS = "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"
ENV_OWN = "AIRFLOW__DURABLE_JOBS__DEFAULT_DEFERRABLE"


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Set an option as a line of ``airflow.cfg`` would (no environment variable); undone after the test."""
    monkeypatch.delenv(ENV_OPERATORS, raising=False)
    monkeypatch.delenv(ENV_OWN, raising=False)
    added: list[tuple[str, str]] = []
    saved = {s: dict(conf[s]) if conf.has_section(s) else None for s in ("operators", "durable_jobs")}

    def set_option(section: str, value: str) -> None:
        if not conf.has_section(section):
            conf.add_section(section)
        conf.set(section, "default_deferrable", value)
        added.append((section, "default_deferrable"))

    yield set_option
    for section, option in added:
        before = saved[section]
        if before is None:
            conf.remove_section(section)
        elif option in before:
            conf.set(section, option, before[option])
        else:
            conf.remove_option(section, option)


def test_an_airflow_cfg_operators_line_is_not_read_either_way(cfg: Callable[[str, str], None]) -> None:
    """Airflow writes ``[operators] default_deferrable = false`` into every generated airflow.cfg."""
    assert conf.get("operators", "default_deferrable") == "false"  # Airflow's shipped default
    assert default_deferrable() is True
    cfg("operators", "false")
    assert default_deferrable() is True
    cfg("operators", "true")
    assert default_deferrable() is True


def test_the_operators_environment_variable_is_honoured(
    cfg: Callable[[str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_OPERATORS, "false")
    assert default_deferrable() is False
    monkeypatch.setenv(ENV_OPERATORS, "true")
    assert default_deferrable() is True


def test_our_own_section_wins_over_the_operators_environment_variable(
    cfg: Callable[[str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg("durable_jobs", "false")
    assert default_deferrable() is False
    monkeypatch.setenv(ENV_OPERATORS, "true")
    assert default_deferrable() is False  # the more specific setting
    cfg("durable_jobs", "true")
    monkeypatch.setenv(ENV_OPERATORS, "false")
    assert default_deferrable() is True
    monkeypatch.setenv(ENV_OWN, "false")  # the same option, as an environment variable
    assert default_deferrable() is False


def test_an_operator_takes_the_default_and_an_explicit_argument_wins(
    cfg: Callable[[str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    def op(**kw: object) -> DurableJobOperator:
        return SparkStandaloneOperator(task_id="t", application="file:/a.jar", main_class="M", **kw)

    assert op().deferrable is True
    monkeypatch.setenv(ENV_OPERATORS, "no")
    assert op().deferrable is False
    assert op(deferrable=True).deferrable is True


def test_a_value_that_is_no_boolean_is_refused(cfg: Callable[[str, str], None]) -> None:
    cfg("durable_jobs", "sometimes")
    with pytest.raises(ValueError, match="expected a boolean"):
        default_deferrable()
