"""The distribution's name as a module, for Airflow's example-DAG discovery.

Airflow 3.3.2 guesses a provider's module from its distribution name (``airflow-durable-jobs`` ->
``airflow_durable_jobs``; apache/airflow#66305) whenever example DAGs are loaded, which a generated
``airflow.cfg`` does, and logs a traceback when the import fails. This module exists so that it succeeds;
it has no ``example_dags`` folder, so nothing is added. The library is :mod:`durable_jobs`.
"""
