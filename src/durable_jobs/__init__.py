"""airflow-durable-jobs: deferrable and crash-safe Airflow operators for long-running external jobs.

Submit once, persist the job's id in the task state store before deferring, and on any retry
reattach, return the finished result, or resubmit only after a confirmed terminal failure.
"""

__version__ = "0.1.0"
