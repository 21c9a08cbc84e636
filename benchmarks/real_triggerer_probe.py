"""Counters inside a real ``airflow triggerer`` (supervisor and runner), for benchmarks/real_triggerer.py.

The harness writes a ``sitecustomize.py`` that imports this module and calls :func:`install` into a
directory on the triggerer's ``PYTHONPATH``, so nothing in Airflow or the library is edited. Counting only:
each counted call costs a dict increment (and, for the supervisor's requests, two ``time.process_time()``
reads). Every 2 s a daemon thread writes ``$DJ_BENCH_PROBE_DIR/probe-<pid>.json``:

* ``supervisor_requests``: messages the supervisor answered for its runner, by type (``GetConnection`` is
  a connection fetch), with the supervisor CPU each type took;
* ``runner_sends``: messages the runner sent (the same, seen from the trigger side);
* ``client_creations``, ``connection_fetches``: the library's hook building a client / fetching a
  connection (``DurableJobHook._store`` / ``_fetch_now``, where they exist in the tree measured);
* ``aiohttp_sessions``: ``aiohttp.ClientSession`` objects created (every system's HTTP sessions);
* ``imports``: the wall time of each outermost import of a ``durable_jobs`` module, by module and thread
  (``MainThread`` is the runner's event loop: Airflow imports a trigger's class there).

With ``DJ_BENCH_TRACEMALLOC=1`` the runner traces allocations (1 frame) from the fork on and, when the file
``tracemalloc-request-<pid>`` appears in the probe directory, writes ``tracemalloc-<pid>.json``: the live
allocations by file, for "where is the memory per task". It costs CPU and memory, so the harness only uses it
in its profile pass, never in a measured run.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

OUT_DIR = os.environ.get("DJ_BENCH_PROBE_DIR", "")
# ``[database] sql_alchemy_connect_args`` on SQLite: wait up to 30 s for a lock (the default 5 s gives "locked")
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 30}
COUNTS: Counter[str] = Counter()
CPU: Counter[str] = Counter()
IMPORTS: dict[str, float] = {}  # "module@thread" -> seconds, outermost imports of the library only
_DEPTH = threading.local()
_ROLE = {"role": "supervisor"}


def _dump() -> None:
    data = {
        "pid": os.getpid(),
        "role": _ROLE["role"],
        "at": time.time(),
        "counts": dict(COUNTS),
        "cpu_seconds": {k: round(v, 4) for k, v in CPU.items()},
        "imports": dict(IMPORTS),
    }
    path = os.path.join(OUT_DIR, f"probe-{os.getpid()}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _writer() -> None:
    while True:
        time.sleep(2.0)
        with contextlib.suppress(OSError):
            _dump()
        request = os.path.join(OUT_DIR, f"tracemalloc-request-{os.getpid()}")
        if _ROLE["role"] == "runner" and os.path.exists(request):
            os.unlink(request)
            _snapshot()


def _snapshot() -> None:
    """Live allocations by file (from this thread: Airflow resets the runner's signal handlers after the fork)."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return
    snap = tracemalloc.take_snapshot()
    by_file: Counter[str] = Counter()
    for stat in snap.statistics("filename"):
        by_file[stat.traceback[0].filename] += stat.size
    with open(os.path.join(OUT_DIR, f"tracemalloc-{os.getpid()}.json"), "w") as fh:
        json.dump({"at": time.time(), "by_file": dict(by_file.most_common(400))}, fh)


def _start_writer() -> None:
    threading.Thread(target=_writer, name="dj-bench-probe", daemon=True).start()


# --- patches, applied when the module is first imported -----------------------------------------------------


def _patch_triggerer(mod: Any) -> None:
    sup = mod.TriggerRunnerSupervisor
    original = sup._handle_request

    def _handle_request(self: Any, msg: Any, log: Any, req_id: int) -> None:
        name = type(msg).__name__
        COUNTS[f"supervisor_requests.{name}"] += 1
        t = time.process_time()
        try:
            original(self, msg, log, req_id)
        finally:
            CPU[f"supervisor_requests.{name}"] += time.process_time() - t

    sup._handle_request = _handle_request

    decoder = mod.TriggerCommsDecoder
    asend = decoder.asend

    async def counted_asend(self: Any, msg: Any) -> Any:
        COUNTS[f"runner_sends.{type(msg).__name__}"] += 1
        return await asend(self, msg)

    decoder.asend = counted_asend


def _patch_hooks(mod: Any) -> None:
    hook = getattr(mod, "DurableJobHook", None)
    if hook is None:
        return
    for attr, key in (("_store", "client_creations"), ("_fetch_now", "connection_fetches")):
        original = hook.__dict__.get(attr)
        if not isinstance(original, classmethod):
            continue
        func = original.__func__
        if attr == "_fetch_now":

            async def wrapped_fetch(cls: Any, *a: Any, __f: Any = func, __k: str = key, **kw: Any) -> Any:
                COUNTS[__k] += 1
                return await __f(cls, *a, **kw)

            setattr(hook, attr, classmethod(wrapped_fetch))
        else:

            def wrapped(cls: Any, *a: Any, __f: Any = func, __k: str = key, **kw: Any) -> Any:
                COUNTS[__k] += 1
                return __f(cls, *a, **kw)

            setattr(hook, attr, classmethod(wrapped))


def _patch_aiohttp(mod: Any) -> None:
    session = mod.ClientSession
    init = session.__init__

    def __init__(self: Any, *a: Any, **kw: Any) -> None:
        COUNTS["aiohttp_sessions"] += 1
        init(self, *a, **kw)

    session.__init__ = __init__


PATCHES = {
    "airflow.jobs.triggerer_job_runner": _patch_triggerer,
    "durable_jobs.hooks.base": _patch_hooks,
    "aiohttp.client": _patch_aiohttp,
}


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, patch: Any) -> None:
        self.inner, self.patch = inner, patch

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, is_package ...: the real loader's
        return getattr(self.inner, name)

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        name = module.__name__
        timed = name.split(".", 1)[0] == "durable_jobs"
        depth = getattr(_DEPTH, "n", 0)
        _DEPTH.n = depth + (1 if timed else 0)
        t = time.perf_counter()
        try:
            self.inner.exec_module(module)
        finally:
            _DEPTH.n = depth
            if timed and depth == 0:  # outermost: includes everything it imported (aiohttp, when on this path)
                IMPORTS[f"{name}@{threading.current_thread().name}"] = round(time.perf_counter() - t, 4)
        if self.patch is None:
            return
        try:
            self.patch(module)
        except Exception as exc:  # a changed private name: count nothing rather than break the triggerer
            COUNTS[f"probe_patch_failed.{module.__name__}"] += 1
            print(f"real_triggerer_probe: could not patch {module.__name__}: {exc!r}", file=sys.stderr)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = PATCHES.get(name)
        if patch is None and name.split(".", 1)[0] != "durable_jobs":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, patch)
        return spec


def _after_fork_in_child() -> None:
    """The trigger runner is a fork of the supervisor: its own counters, file and writer thread."""
    COUNTS.clear()
    CPU.clear()
    IMPORTS.clear()
    _ROLE["role"] = "runner"
    _start_writer()
    if os.environ.get("DJ_BENCH_TRACEMALLOC") == "1":
        import tracemalloc

        tracemalloc.start(1)


def install() -> None:
    if not OUT_DIR:
        return
    sys.meta_path.insert(0, _Finder())
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _start_writer()
