"""The nemesis's schedule and the fault proxy, without Airflow: a seed replays its schedule, at most one fault per
component class is active at a time, and the proxy's modes do what they say."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_jobs_harness.fault_proxy import FaultProxy

from .nemesis import CLOCK_OFFSETS, KINDS, QUIET, histogram, plan, set_clock


def test_a_seed_replays_its_schedule_and_another_differs() -> None:
    assert plan(42, 1800) == plan(42, 1800)
    assert plan(42, 1800) != plan(43, 1800)


def test_at_most_one_fault_per_component_class_at_a_time() -> None:
    for seed in range(20):
        faults = plan(seed, 1800)
        busy: dict[str, float] = {}
        for f in faults:
            cls = f.component_class
            assert f.at >= busy.get(cls, 0.0), (seed, f)
            busy[cls] = f.at + f.duration + QUIET
            low, high = KINDS[f.kind][1:]
            assert low <= f.duration <= high
            if f.kind == "clock_jump":
                assert CLOCK_OFFSETS[0] <= abs(f.offset) <= CLOCK_OFFSETS[1]


def test_thirty_minutes_plan_every_kind() -> None:
    counts = histogram(plan(7, 1800))
    assert all(counts[kind] > 0 for kind in KINDS), counts


def test_the_clock_file_holds_a_signed_offset(tmp_path: Path) -> None:
    path = tmp_path / "faketime"
    set_clock(path, -42.4)
    assert path.read_text() == "-42\n"
    set_clock(path, 0)
    assert path.read_text() == "+0\n"


@pytest.fixture
def origin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_fault_proxy_passes_answers_503_and_resets(origin: int) -> None:
    proxy = FaultProxy(origin, http=True).start()
    url = f"http://127.0.0.1:{proxy.port}/"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
        proxy.set_mode("503")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 503
        proxy.set_mode("reset")
        with pytest.raises((ConnectionResetError, urllib.error.URLError)):
            urllib.request.urlopen(url, timeout=10)
        proxy.set_mode("pass")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
        assert proxy.hits == {"pass": 2, "503": 1, "reset": 1}
    finally:
        proxy.stop()


def test_fault_proxy_refuses_a_503_in_front_of_tls() -> None:
    proxy = FaultProxy(1, http=False)
    with pytest.raises(ValueError, match="plain HTTP"):
        proxy.set_mode("503")
