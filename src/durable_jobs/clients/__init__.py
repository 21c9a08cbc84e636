"""One async client per external system. Plain asyncio: nothing here imports Airflow."""

from durable_jobs.clients.base import JobClient, Locator, locator_key

__all__ = ["JobClient", "Locator", "locator_key"]
