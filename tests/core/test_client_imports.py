"""A fresh triggerer imports every system's client at once, in worker threads, and none of them may fail.

Python locks imports per module, so two threads importing client packages that import each other (Glue builds on
EMR's AWS plumbing; each package's ``__init__`` imports its modules) used to deadlock or see a half-initialised
module: ``ImportError`` or ``_DeadlockError`` in about a third of fresh processes, which failed the triggers (or
the reaper's callbacks) of a triggerer that started with several systems. ``import_client_module`` serialises
them. Each round is a fresh interpreter: an import happens once per process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import asyncio, random, sys
random.seed(int(sys.argv[1]))
import durable_jobs.hooks  # every hook module
from durable_jobs.hooks import bigquery, databricks, emr, glue, kubernetes, spark_standalone, yarn  # noqa: F401
from durable_jobs.hooks.base import DurableJobHook, import_client_module

def hooks(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from hooks(sub)

modules = sorted({h.client_module for h in hooks(DurableJobHook) if h.client_module})
random.shuffle(modules)

async def one(name):
    await asyncio.sleep(random.random() * 0.005)
    await asyncio.to_thread(import_client_module, name)

async def main():
    results = await asyncio.gather(*(one(m) for m in modules), return_exceptions=True)
    failed = [f"{m}: {r!r}" for m, r in zip(modules, results) if isinstance(r, BaseException)]
    print(len(modules), failed)
    sys.exit(1 if failed else 0)

asyncio.run(main())
"""


@pytest.mark.parametrize("seed", range(12))
def test_every_client_imports_at_once_in_threads(seed: int) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(seed)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    count = int(done.stdout.split()[0])
    assert count >= 9, done.stdout  # every system's client module took part
