"""The snippets of docs/extending.md are real: run as one module, and its test passes."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


@pytest.fixture(scope="module")
def doc_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    module = types.ModuleType("extending_doc")
    exec(compile("\n".join(blocks), str(DOC), "exec"), module.__dict__)
    return module


def test_the_trigger_of_the_doc_serializes_its_own_argument(doc_module):
    trigger_class = doc_module.RegionalBatchdTrigger
    assert trigger_class.extra_kwargs == ("region",)
    trigger = trigger_class(job={"job_id": "j1"}, conn_id="c", token="dj0123456789abcdef0123", generation=0)
    _, kwargs = trigger.serialize()
    assert kwargs["region"] == "eu"
    assert trigger_class(**kwargs).serialize() == trigger.serialize()


def test_the_client_of_the_doc_keeps_the_locator_rules(doc_module):
    client = doc_module.BatchdClient("http://batchd:8000")
    once = client.validate_locator({"job_id": "j1", "junk": 1})
    assert client.validate_locator(once) == once == {"job_id": "j1"}


def test_the_test_of_the_doc_passes(doc_module, monkeypatch):
    doc_module.test_batchd_operator(monkeypatch)
