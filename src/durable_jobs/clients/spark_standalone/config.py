"""The settings of one Spark standalone connection (:class:`SparkStandaloneConfig`).

What the hook reads from an Airflow connection, checked once; the client only reads it. The bearer token
is the only secret: it is never logged, nor put in trigger kwargs or the poller's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from durable_jobs.transport.limits import DEFAULT_MAX_BODY


@dataclass(frozen=True)
class SparkStandaloneConfig:
    """How to reach the masters. ``bearer_token`` is never logged, nor put in trigger kwargs or the key.

    The token goes to the masters' REST servers and UIs (``/json/``, which ``spark.ui.filters`` may protect
    too), never to a worker UI (its address comes from the master's answer).
    """

    rest_urls: tuple[str, ...]
    ui_urls: tuple[str, ...] = ()
    bearer_token: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    batch_status: bool = True  # one /json/ call per poll for all drivers of this master
    max_response_bytes: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        if not self.rest_urls:
            raise ValueError("at least one Spark master REST URL is required")
        if self.max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")


__all__ = ["SparkStandaloneConfig"]
