"""The ``pause`` fail-point action: the process waits at the point until the test lets it go on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from durable_jobs import failpoints


def test_pause_waits_for_its_resume_file_and_fires_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_JOBS_FAILPOINTS_ONCE", str(tmp_path))
    failpoints.configure(f"{failpoints.AFTER_SUBMIT}=pause")
    passed = threading.Event()

    def worker() -> None:
        failpoints.failpoint(failpoints.AFTER_SUBMIT)
        passed.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    fired = tmp_path / f"fired-{failpoints.AFTER_SUBMIT}"
    while not fired.exists() or not fired.read_text():
        thread.join(0.05)
    assert fired.read_text() == str(os.getpid())  # the PID of the paused process, for the test
    assert not passed.is_set()  # still waiting: nothing created the resume file
    (tmp_path / f"resume-{failpoints.AFTER_SUBMIT}").touch()
    thread.join(30)
    assert passed.is_set()
    failpoints.failpoint(failpoints.AFTER_SUBMIT)  # once: the next try goes straight through


def test_pause_needs_the_once_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_JOBS_FAILPOINTS_ONCE", raising=False)
    failpoints.configure(f"{failpoints.AFTER_SUBMIT}=pause")
    with pytest.raises(ValueError, match="DURABLE_JOBS_FAILPOINTS_ONCE"):
        failpoints.failpoint(failpoints.AFTER_SUBMIT)


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fail-point action 'sleep'"):
        failpoints.configure(f"{failpoints.AFTER_SUBMIT}=sleep")
