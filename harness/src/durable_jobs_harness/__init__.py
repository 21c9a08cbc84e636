"""The development harness of airflow-durable-jobs: never in the library's wheel, never published.

Launchers of real systems, each process started here and stopped by its PID:

* :mod:`durable_jobs_harness.airflow_env`: a real Airflow 3.3 (api-server, scheduler, dag-processor, triggerers)
  and a client of its REST API (the end-to-end crash matrix, the demo);
* :mod:`durable_jobs_harness.spark_cluster`: a Spark standalone master and worker from the pyspark wheel, the test
  drivers, JWTs for its REST server;
* :mod:`durable_jobs_harness.kdc`: an MIT Kerberos KDC in user space.

Contract fakes and fixtures the tests and benchmarks share: :mod:`~durable_jobs_harness.fake_spark`,
:mod:`~durable_jobs_harness.fault_master`, :mod:`~durable_jobs_harness.fake_yarn`,
:mod:`~durable_jobs_harness.yarn_fixtures`, :mod:`~durable_jobs_harness.fake_kube`,
:mod:`~durable_jobs_harness.kube_fixtures`, :mod:`~durable_jobs_harness.moto_emr`,
:mod:`~durable_jobs_harness.airflow_ctx`; and the plumbing under them: :mod:`~durable_jobs_harness.ports`,
:mod:`~durable_jobs_harness.waiting` (tenacity), :mod:`~durable_jobs_harness.logs`.

What a user of the library tests with stays in the wheel, in :mod:`durable_jobs.testing`.
"""
