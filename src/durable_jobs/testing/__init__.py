"""Helpers for users testing DAGs that use durable_jobs, or a system they add to it.

* :class:`ScriptedClient` (:mod:`durable_jobs.testing.scripted`): an in-memory system whose jobs follow
  scripts, with failure injection;
* :class:`InMemoryStateStore` (:mod:`durable_jobs.testing.state_store`): Airflow's real task state store
  accessor over a dict, so an operator runs its protocol without a metadata database;
* :class:`MockTransport` (:mod:`durable_jobs.testing.transport`): a function in place of the network, for
  the HTTP clients;
* :class:`JobClientContract` (:mod:`durable_jobs.testing.contract`): the ``JobClient`` contract as a pytest
  suite, for a system's client (the built-in job clients pass it).

``ScriptedClient``, ``FakeJob`` and ``InMemoryStateStore`` are importable from here (they import neither
Airflow nor an HTTP client); ``MockTransport`` from :mod:`durable_jobs.testing.transport`, and
``JobClientContract`` from :mod:`durable_jobs.testing.contract`.

The project's own development harness (launchers of a real Airflow, Spark standalone cluster and KDC, and the
contract fakes of Spark, YARN, Kubernetes and EMR) is not part of this package nor of the wheel: it is the
separate ``durable_jobs_harness`` package in the repository's ``harness/`` folder.
"""

from __future__ import annotations

from durable_jobs.testing.scripted import FakeJob, ScriptedClient
from durable_jobs.testing.state_store import InMemoryStateStore

__all__ = ["FakeJob", "InMemoryStateStore", "ScriptedClient"]
