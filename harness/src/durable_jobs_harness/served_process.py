"""A harness fake as its own process, both sides: the launcher and the served loop.

:class:`ServedProcess` (launcher side) runs ``python -m <module> serve --port-file F <args>`` in its own session
with its stdin a pipe, waits until the port file holds the fake's JSON, and stops it by PID (SIGCONT first, so
that a paused fake takes its SIGTERM). :func:`serve_until_stopped` (fake side) publishes that JSON (printed, and
written atomically to the port files) and waits until stdin closes (the launcher is gone) or SIGTERM/SIGINT.

Written for the Databricks fake; ``yarn_process``/``fake_yarn.serve`` do the same by hand and can move onto it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from durable_jobs_harness.airflow_env.processes import Component
from durable_jobs_harness.fake_yarn import _stop_on_stdin_eof
from durable_jobs_harness.logs import tail
from durable_jobs_harness.waiting import wait_until

__all__ = ["ServedApp", "ServedFake", "ServedProcess", "serve_main", "serve_until_stopped"]

STOP_GRACE = 10.0


class ServedProcess:
    """One ``python -m <module> serve`` process, its log ``<run_dir>/<name>.log`` and port file ``<name>.json``."""

    def __init__(self, name: str, module: str, run_dir: Path, args: Sequence[str], *, startup_timeout: float = 30.0):
        self.name, self.module, self.run_dir = name, module, run_dir
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self._comp: Component | None = None

    @property
    def log(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._comp.pid if self._comp is not None and self._comp.running else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._comp.proc if self._comp is not None else None

    def start(self) -> dict[str, Any]:
        """Start it; the JSON it published once listening."""
        if self._comp is not None:
            raise RuntimeError(f"{self.name} is already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.run_dir / f"{self.name}.json"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", self.module, "serve", "--port-file", str(port_file), *self.args]
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,  # it stops when this closes: it cannot outlive its launcher
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                start_new_session=True,
            )
        comp = self._comp = Component(name=self.name, proc=proc, log=self.log)

        def listening() -> dict[str, Any] | None:
            if not comp.running:
                raise RuntimeError(f"{self.name} exited with code {proc.returncode}:\n{self.logs_tail()}")
            return dict(json.loads(port_file.read_text())) if port_file.exists() else None

        try:
            info = wait_until(
                f"{self.name} to listen",
                listening,
                timeout=self.startup_timeout,
                interval=0.1,
                on_timeout=self.logs_tail,
                error=RuntimeError,
            )
        except BaseException:
            self.stop()
            raise
        assert info is not None
        return info

    def signal(self, sig: signal.Signals) -> None:
        if self._comp is not None:
            self._comp.signal(sig)

    def stop(self) -> None:
        """Stop it by its PID, in any state: resumed, stdin closed (it stops by itself), then SIGTERM/SIGKILL."""
        comp, self._comp = self._comp, None
        if comp is None:
            return
        comp.signal(signal.SIGCONT)
        if comp.proc.stdin is not None:
            comp.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.proc.wait(STOP_GRACE)
        comp.stop(STOP_GRACE)

    def logs_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)


class ServedApp:
    """A fake's two aiohttp listeners on 127.0.0.1: its API (on :attr:`port`, 0: a free one, kept for a restart)
    and its unauthenticated admin listener; stopped together, and an ``async with`` starts and stops them."""

    port: int
    _runner: web.AppRunner | None = None
    _admin_runner: web.AppRunner | None = None

    async def start(self) -> Self:
        raise NotImplementedError

    @staticmethod
    async def _listen(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, int(runner.addresses[0][1])

    async def _serve(self, app: web.Application) -> None:
        """Listen with the API on :attr:`port`."""
        self._runner, self.port = await self._listen(app, self.port)

    async def _serve_admin(self, app: web.Application, port: int) -> str:
        """Listen with the admin listener on ``port``; its URL."""
        self._admin_runner, bound = await self._listen(app, port)
        return f"http://127.0.0.1:{bound}"

    async def stop(self) -> None:
        for runner in (self._runner, self._admin_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._admin_runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ServedFake:
    """The launcher side of a fake with an admin listener: its :class:`ServedProcess`, its URLs once started, and
    plain JSON calls to the admin listener (a view that does not go through the client under test)."""

    def __init__(self, name: str, module: str, run_dir: Path, args: Sequence[str], startup_timeout: float) -> None:
        self.run_dir = run_dir
        self._proc = ServedProcess(name, module, run_dir, args, startup_timeout=startup_timeout)
        self.url = ""
        self.admin_url = ""

    @property
    def log(self) -> Path:
        return self._proc.log

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc.process

    def _start(self) -> dict[str, Any]:
        info = self._proc.start()
        self.url, self.admin_url = str(info["url"]), str(info["admin_url"])
        return info

    def stop(self) -> None:
        """Stop it by its PID (see :meth:`ServedProcess.stop`)."""
        self._proc.stop()

    def _admin_get(self, path: str) -> Any:
        with urllib.request.urlopen(self.admin_url + path, timeout=10) as resp:  # noqa: S310 - our 127.0.0.1
            return json.load(resp)

    def _admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(  # noqa: S310 - our 127.0.0.1
            self.admin_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return dict(json.load(resp))

    def logs_tail(self, lines: int = 30) -> str:
        return self._proc.logs_tail(lines)


async def serve_until_stopped(info: dict[str, Any], port_files: Sequence[Path | None]) -> None:
    """Publish ``info`` (one JSON line on stdout, and atomically in each port file), then wait until stdin
    closes or SIGTERM/SIGINT arrives."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    threading.Thread(target=_stop_on_stdin_eof, args=(loop, stop), daemon=True).start()
    line = json.dumps({"pid": os.getpid(), **info})
    for path in port_files:
        if path is not None:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(line + "\n")
            os.replace(tmp, path)
    print(line, flush=True)
    await stop.wait()


def serve_main(
    prog: str,
    what: str,
    serve: Callable[..., None],
    add_arguments: Callable[[argparse.ArgumentParser], None],
    argv: Sequence[str] | None = None,
) -> int:
    """The ``serve`` command line of a fake: ``--port``, ``--admin-port``, ``--port-file`` and what
    ``add_arguments`` adds; calls ``serve`` with every option as a keyword, logging INFO to stderr."""
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help=f"run {what} until stdin closes or SIGTERM")
    cmd.add_argument("--port", type=int, default=0, help="the API's port (default: a free one)")
    cmd.add_argument("--admin-port", type=int, default=0, help="the unauthenticated admin listener's port")
    cmd.add_argument("--port-file", type=Path, help="write the URLs there as JSON once listening")
    add_arguments(cmd)
    options = vars(parser.parse_args(argv))
    del options["command"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    serve(**options)
    return 0
