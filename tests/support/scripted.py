"""The scripted in-memory system, shipped to users as :mod:`durable_jobs.testing.scripted`."""

from __future__ import annotations

from durable_jobs.testing.scripted import FakeJob, ScriptedClient

__all__ = ["FakeJob", "ScriptedClient"]
