"""airflow-durable-jobs: deferrable and crash-safe Airflow operators for long-running external jobs.

Submit once, persist the job's id in the task state store before deferring, and on any retry
reattach, return the finished result, or resubmit only after a confirmed terminal failure.
"""

from importlib import metadata

try:
    # The installed distribution's version: the one `airflow providers list` shows (pyproject.toml is the source).
    __version__ = metadata.version("airflow-durable-jobs")
except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
