"""The fake RM as its own process (``python -m durable_jobs_harness.fake_yarn serve``) behind SPNEGO against the
real KDC (its own process too): what the crash matrix runs against.

Our real YarnClient, built by YarnHook from the ``yarn_rm`` connection :class:`KerberizedYarn` gives (a client
keytab), drives one application each to FINISHED/SUCCEEDED, FAILED and KILLED on the timed lifecycle; the
admin listener sees each one with its tag, state and final status without authenticating; the process stops
on SIGTERM and when its stdin closes, and a paused (SIGSTOPped) RM is unknown to the client, not failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_jobs.clients.yarn import YarnApplication, YarnClient
from durable_jobs.errors import TransientError
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.record import make_token
from durable_jobs.status import JobState
from durable_jobs_harness.yarn_fixtures import run_fresh as run
from durable_jobs_harness.yarn_process import KerberizedYarn, YarnRmProcess, wait_app_state

pytestmark = [pytest.mark.kdc, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def yarn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KerberizedYarn]:
    endpoint = KerberizedYarn(tmp_path_factory.mktemp("yarn-e2e"), accept_seconds=0.2)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def client(yarn: KerberizedYarn, monkeypatch: pytest.MonkeyPatch) -> Iterator[YarnClient]:
    """The client an Airflow component builds: YarnHook from the connection, the realm from the environment."""
    for key, value in yarn.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KRB5_KTNAME", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_YARN_E2E", json.dumps(yarn.connection(timeout=2)))
    YarnHook.clear_cache()
    made = YarnHook.get_client("yarn_e2e")
    assert isinstance(made, YarnClient)
    yield made
    YarnHook.clear_cache()


def submit(client: YarnClient, command: str, task: str) -> tuple[dict[str, Any], str]:
    token = make_token("dag", "run", task, -1, 0)
    spec = YarnApplication(name=task, command=command, memory_mb=256)
    reserved = run(client.reserve(spec, token))
    return run(client.submit(spec, token, reserved=reserved)), token


def test_a_sleeping_application_finishes_and_is_seen_by_the_admin_listener(
    yarn: KerberizedYarn, client: YarnClient
) -> None:
    locator, token = submit(client, "sleep 1; exit 0", "ok")
    assert run(client.status(locator)).state in (JobState.PENDING, JobState.RUNNING)
    app = wait_app_state(yarn.rm, locator["application_id"], ("FINISHED",))
    assert (app["finalStatus"], app["applicationTags"]) == ("SUCCEEDED", token)
    assert run(client.status(locator)).state is JobState.SUCCEEDED
    assert [a["id"] for a in yarn.rm.apps([token])] == [locator["application_id"]]
    # the client's requests were authenticated by SPNEGO: the KDC issued the RM's service ticket to our principal
    assert yarn.kdc.tgs_requests(yarn.client, "HTTP/localhost") >= 1


def test_a_non_zero_exit_fails_the_application(yarn: KerberizedYarn, client: YarnClient) -> None:
    locator, _ = submit(client, "sleep 1; exit 3", "bad")
    app = wait_app_state(yarn.rm, locator["application_id"], ("FINISHED", "FAILED", "KILLED"))
    assert (app["state"], app["finalStatus"]) == ("FAILED", "FAILED")
    assert "exitCode: 3" in app["diagnostics"]
    assert run(client.status(locator)).state is JobState.FAILED


def test_a_kill_ends_a_running_application(yarn: KerberizedYarn, client: YarnClient) -> None:
    locator, _ = submit(client, "sleep 600; exit 0", "long")
    wait_app_state(yarn.rm, locator["application_id"], ("RUNNING",))
    run(client.cancel(locator))
    app = wait_app_state(yarn.rm, locator["application_id"], ("KILLED",))
    assert app["finalStatus"] == "KILLED"
    assert run(client.status(locator)).state is JobState.CANCELLED


def test_an_accepted_kill_completes_without_another_request(yarn: KerberizedYarn, client: YarnClient) -> None:
    """The RM kills asynchronously: after one PUT answered 202, the application ends KILLED by itself (a trigger
    whose on_kill is cancelled after its first PUT leaves no running application behind)."""
    locator, _ = submit(client, "sleep 600; exit 0", "one_put")
    wait_app_state(yarn.rm, locator["application_id"], ("RUNNING",))
    status, _state = run(client.kill_app(locator["application_id"]))
    assert status == 202
    app = wait_app_state(yarn.rm, locator["application_id"], ("KILLED",))  # the admin listener observes nothing
    assert app["finalStatus"] == "KILLED"


def test_the_rm_listener_needs_spnego_the_admin_listener_does_not(yarn: KerberizedYarn) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{yarn.rm.url}/ws/v1/cluster/apps", timeout=5)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == "Negotiate"
    with urllib.request.urlopen(f"{yarn.rm.admin_url}/ws/v1/cluster/info", timeout=5) as resp:
        assert json.load(resp)["clusterInfo"]["haState"] == "ACTIVE"


def test_a_paused_rm_is_unknown_then_answers_again(yarn: KerberizedYarn, client: YarnClient) -> None:
    locator, _ = submit(client, "sleep 600; exit 0", "paused")
    yarn.rm.pause()
    try:
        with pytest.raises(TransientError):  # the protocol and the poller make this an unknown status
            run(client.status(locator))
    finally:
        yarn.rm.resume()
    assert run(client.status(locator)).state in (JobState.PENDING, JobState.RUNNING)
    run(client.cancel(locator))


def test_the_process_stops_on_sigterm_and_when_stdin_closes(tmp_path: Path) -> None:
    for how in ("sigterm", "stdin"):
        rm = YarnRmProcess(tmp_path / how, {}, auth="simple").start()
        proc = rm.process
        assert proc is not None and proc.stdin is not None
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            proc.stdin.close()
        assert proc.wait(20) == 0
        assert "fake RM stopped" in rm.logs_tail()
        rm.stop()


def test_kerberos_without_a_keytab_refuses_to_start() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "durable_jobs_harness.fake_yarn", "serve", "--auth", "kerberos"],
        env={k: v for k, v in os.environ.items() if k != "KRB5_KTNAME"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "KRB5_KTNAME" in proc.stderr
