"""The code of docs/extending.md is real: the blocks it quotes are the example system's own text, and the
other blocks run as one module whose test passes."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
from examples.jobservice.client import JobServiceClient

from durable_jobs.errors import RecordError

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "extending.md"
BLOCK = re.compile(r"(?:<!-- quote: (?P<path>\S+) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def blocks() -> list[tuple[str | None, str]]:
    return [(m["path"], m["code"]) for m in BLOCK.finditer(DOC.read_text())]


@pytest.fixture(scope="module")
def doc_module() -> types.ModuleType:
    own = [code for path, code in blocks() if path is None]
    assert len(own) >= 3
    module = types.ModuleType("extending_doc")
    exec(compile("\n".join(own), str(DOC), "exec"), module.__dict__)
    return module


def test_the_doc_quotes_the_example_system_as_it_is():
    quoted = [(path, code) for path, code in blocks() if path is not None]
    files = {path for path, _ in quoted}
    assert {"examples/jobservice/client.py", "examples/jobservice/hooks.py"} <= files
    assert {"examples/jobservice/triggers.py", "examples/jobservice/operators.py"} <= files
    for path, code in quoted:
        assert code in (REPO / path).read_text(), f"docs/extending.md quotes {path}, but the file differs:\n{code}"


def test_the_doc_quotes_every_method_of_the_example_client():
    """The client is shown whole, apart from its module docstring and imports."""
    text = (REPO / "examples/jobservice/client.py").read_text()
    shown = "".join(code for path, code in blocks() if path == "examples/jobservice/client.py")
    for name in re.findall(r"^(?:class|    def|    async def) (\w+)", text, flags=re.M):
        assert re.search(rf"(class|def) {name}\b", shown), f"docs/extending.md does not show {name}"


def test_the_trigger_of_the_doc_serializes_its_own_argument(doc_module):
    trigger_class = doc_module.RegionalJobServiceTrigger
    assert trigger_class.extra_kwargs == ("region",)
    trigger = trigger_class(job={"job_id": "job-1"}, conn_id="c", token="dj0123456789abcdef0123", generation=0)
    _, kwargs = trigger.serialize()
    assert kwargs["region"] == "eu"
    assert trigger_class(**kwargs).serialize() == trigger.serialize()


def test_the_client_of_the_doc_keeps_the_locator_rules():
    client = JobServiceClient("http://jobs:8080")
    once = client.validate_locator({"job_id": "job-1"})
    assert client.validate_locator(once) == once == {"job_id": "job-1"}
    for bad in ({"job_id": "job-1/../x"}, {"job_id": "job-1", "junk": 1}, {"job_id": 1}, ["job_id"]):
        with pytest.raises(RecordError):
            client.validate_locator(bad)  # type: ignore[arg-type]


def test_the_test_of_the_doc_passes(doc_module, monkeypatch):
    doc_module.test_regional_operator(monkeypatch)
