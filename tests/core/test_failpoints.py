"""The fail-points' actions in a real child process: ``stop`` freezes the process at the step until SIGCONT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys
from durable_jobs import failpoints
failpoints.configure("after_submit=stop")
failpoints.failpoint("after_submit")
failpoints.failpoint("after_submit")  # fired once per directory: no second stop
print("resumed", flush=True)
"""


def test_stop_freezes_the_process_at_the_step_once(tmp_path: Path) -> None:
    env = {**os.environ, "DURABLE_JOBS_FAILPOINTS_ONCE": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
        # the marker names the stopped process: a test finds who runs it (e.g. which Celery worker) from it
        assert (tmp_path / "fired-after_submit").read_text() == str(proc.pid)
        os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out.strip() == "resumed"
