"""Helpers for testing durable_jobs and DAGs that use it."""
