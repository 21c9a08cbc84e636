"""One ruler for the benchmarks that ask "does this call block the event loop?" (issue 11: not for over 50 ms).

``listing_spark.py``, ``listing_yarn.py``, ``listing_emr.py``, ``listing_kubernetes.py`` and ``big_answers.py``
each had their own lag probe and GC-pause recorder, alike but for the bookkeeping; they measure with this module
now, so that their figures come from the same probe. It also holds what they shared around the measurement: the
server child process (started, read, stopped), the report table and the JSON file.

:class:`LoopProbe` is a task that sleeps ``PERIOD`` (5 ms) at a time and records, for each wake-up:

* ``late``: how late it woke (wall clock): how long something held the loop, as other tasks saw it, plus any
  time the OS gave the CPU to other processes (a busy machine);
* ``cpu``: the CPU time the loop's thread spent since the previous wake-up: what the code on the loop cost,
  whatever else runs on the machine (the thread burns no CPU while it waits in ``select``);
* the probe's phase at that wake-up, so that one probe running through a scenario tells its calls apart.

:class:`GcPauses` records the collector's pauses, every generation, with the generation kept.

Standard library only (as ``bench_probe.py``, whose recorder and child-process stop it reuses): it imports in any
venv. The one exception, :func:`serve_until_stdin_closes`, imports aiohttp when a server child calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import bench_probe  # beside this file, in the folder of the benchmark script that runs

PERIOD = 0.005  # the probe's sleep: 5 ms


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to 0.1 ms (how every figure here is reported)."""
    return round(seconds * 1000, 1)


def percentile(values: Sequence[float], q: float, *, lower: bool = False) -> float:
    """The ``q`` quantile of ``values`` by rank, not interpolated; 0.0 for no values.

    ``ordered[int(q * n)]`` (as ``bench_probe.percentile``), or with ``lower`` ``ordered[int(q * (n - 1))]``
    (numpy's ``method="lower"``): each benchmark keeps the reading it always had.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    if lower:
        return ordered[int(q * (len(ordered) - 1))]
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoopProbe:
    """Sleeps ``period`` at a time; how late it wakes is how long the loop was blocked (see the module docstring).

    ``async with LoopProbe() as probe:`` runs it; ``async with probe.measuring("call"):`` labels the samples
    of what runs inside; the summary methods read the samples of one phase, or all of them (``phase=None``).
    """

    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self.phase = ""  # the label of the samples taken now
        self._phases: list[str] = []
        self._late: list[float] = []
        self._cpu: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started, cpu_started = loop.time(), time.thread_time()
            await asyncio.sleep(self.period)
            self._late.append(loop.time() - started - self.period)
            self._cpu.append(time.thread_time() - cpu_started)
            self._phases.append(self.phase)

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def measuring(
        self, phase: str, *, settle: float = 0.0, lead: float | None = None, tail: float | None = None
    ) -> AsyncIterator[LoopProbe]:
        """Label the samples taken while the block runs ``phase``, with sleeps around it.

        ``settle``: slept first, still in the phase before (whatever ran before, the probe's own start, a
        collection, is not the call's); ``lead`` (default two periods): slept in ``phase`` before the block, so
        the probe is waiting when the call starts; ``tail`` (default two periods): slept in ``phase`` after it,
        so a block at the very end of the call is seen too.
        """
        lead = 2 * self.period if lead is None else lead
        tail = 2 * self.period if tail is None else tail
        if settle:
            await asyncio.sleep(settle)
        before, self.phase = self.phase, phase
        if lead:
            await asyncio.sleep(lead)
        try:
            yield self
        finally:
            if tail:
                await asyncio.sleep(tail)
            self.phase = before

    def _of(self, values: list[float], phase: str | None) -> list[float]:
        if phase is None:
            return list(values)
        return [v for v, p in zip(values, self._phases, strict=True) if p == phase]

    def samples(self, phase: str | None = None) -> int:
        return len(self._of(self._late, phase))

    def lates(self, phase: str | None = None) -> list[float]:
        """How late each wake-up was, in seconds (never below 0), in the order taken."""
        return [max(0.0, late) for late in self._of(self._late, phase)]

    def cpus(self, phase: str | None = None, *, own_turn: float = 0.0) -> list[float]:
        """The loop thread's CPU seconds between two wake-ups, in the order taken.

        With ``own_turn``, that much (the probe's own turn) is taken off each, down to 0, and none counts for
        more than the wall time between its two wake-ups.
        """
        cpus = self._of(self._cpu, phase)
        if not own_turn:
            return cpus
        lates = self._of(self._late, phase)
        return [min(max(0.0, cpu - own_turn), late + self.period) for cpu, late in zip(cpus, lates, strict=True)]

    def worst(self, phase: str | None = None) -> float:
        """The longest lateness, in seconds: the longest the loop was blocked."""
        return max(self.lates(phase), default=0.0)

    def worst_cpu(self, phase: str | None = None, *, own_turn: float = 0.0) -> float:
        """The most CPU the loop's thread spent between two wake-ups, in seconds."""
        return max(self.cpus(phase, own_turn=own_turn), default=0.0)


class GcPauses(bench_probe.GcPauses):
    """The collector's pauses while measuring: ``with GcPauses() as pauses:``.

    Every collection of every generation, kept in ``pauses`` as (monotonic end, generation, seconds).
    """

    def seconds(self, generation: int | None = None) -> list[float]:
        """How long each collection (of ``generation`` only, if given) stopped the world."""
        return [s for _, gen, s in self.pauses if generation is None or gen == generation]

    def worst(self, generation: int | None = None) -> float:
        return max(self.seconds(generation), default=0.0)


# --- the server child process ------------------------------------------------------------------------------


@contextlib.contextmanager
def child_process(args: list[str], *, what: str, stop_timeout: float = 30.0, **popen: Any) -> Iterator[dict[str, Any]]:
    """Start a server in a child process, yield the JSON line it prints when ready, and stop it.

    The child serves until its stdin closes (:func:`serve_until_stdin_closes`); stopped by closing it, then
    killed by its PID if it lingers (``bench_probe.stop_child``).
    """
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **popen)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} did not start")
        yield json.loads(line)
    finally:
        bench_probe.stop_child(proc, stop_timeout)


def local_socket() -> tuple[socket.socket, str]:
    """A socket bound to a free port of 127.0.0.1, and its base URL (known before the server starts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def serve_until_stdin_closes(app: Any, sock: socket.socket, ready: dict[str, Any]) -> None:
    """The child's side: serve the aiohttp ``app`` on ``sock``, print ``ready`` as one JSON line, serve until
    the parent closes stdin."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(json.dumps(ready), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    await runner.cleanup()


# --- the report ----------------------------------------------------------------------------------------------


def print_rows(columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
    """A header line, then a line per row; each column is (title, format spec), ``("call", "<10")``,
    ``("wall ms", ">9.1f")``: the title takes the spec's alignment and width, and so does a text value."""
    widths = [re.match(r"[<>^]?\d*", spec).group() for _, spec in columns]  # type: ignore[union-attr]
    print(" ".join(f"{title:{width}}" for (title, _), width in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        cells = [
            f"{value:{width if isinstance(value, str) else spec}}"
            for value, (_, spec), width in zip(row, columns, widths, strict=True)
        ]
        print(" ".join(cells).rstrip())


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the figures as indented JSON (making the folder), and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    root = Path(__file__).resolve().parents[1]
    shown = path.resolve().relative_to(root) if path.resolve().is_relative_to(root) else path
    print(f"wrote {shown}")
