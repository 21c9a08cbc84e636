"""A local Spark standalone cluster from the command line.

``python -m durable_jobs_harness.spark_cluster serve``: start a master and a worker on 127.0.0.1 on the fixed
:data:`~durable_jobs_harness.spark_cluster.cluster.LOCAL_PORTS` (REST 6066, master UI 8090: not 8080, which is
Airflow's api-server's), build the test apps into ``/tmp/spark-apps``, print the Airflow connection that points
at it, and run until Ctrl-C; the README's quickstart runs against it.

``python -m durable_jobs_harness.spark_cluster smoke``: start one on free ports, build the test apps, print its
URLs, stop.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from durable_jobs_harness.spark_cluster.apps import TestApps, build_test_apps
from durable_jobs_harness.spark_cluster.cluster import (
    LOCAL_APPS_DIR,
    LOCAL_PORTS,
    SparkCluster,
    connection_command,
    spark_home,
)
from durable_jobs_harness.spark_cluster.tokens import make_jwt, new_jwt_secret
from durable_jobs_harness.waiting import wait_for_interrupt


def _describe(cluster: SparkCluster, apps: TestApps, jwt: str | None) -> None:
    for label, value in (
        ("master_url", cluster.master_url),
        ("rest_url", cluster.rest_url),
        ("master_ui_url", cluster.master_ui_url),
        ("worker_ui_url", cluster.worker_ui_url),
        ("run_dir", cluster.run_dir),
        ("work_dir", cluster.work_dir),
        ("jar", f"{apps.jar} ({apps.main_class})"),
        ("python_script", apps.python_script),
    ):
        print(f"{label:14} {value}")
    if jwt is not None:
        print(f"{'jwt':14} {jwt}")
    state = cluster.json_state()
    print(f"{'status':14} {state.get('status')}, aliveworkers={state.get('aliveworkers')}", flush=True)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durable_jobs_harness.spark_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a cluster on fixed ports and keep it running until Ctrl-C")
    serve.add_argument("--apps-dir", type=Path, default=LOCAL_APPS_DIR, help=f"default {LOCAL_APPS_DIR}")
    serve.add_argument("--free-ports", action="store_true", help="free ports instead of REST 6066, UI 8090")
    smoke = sub.add_parser("smoke", help="start a cluster, build the test apps, print URLs, stop")
    for command in (serve, smoke):
        command.add_argument("--run-dir", type=Path, default=None, help="default: a new temporary directory")
        command.add_argument("--jwt", action="store_true", help="protect REST with a JWSFilter")
    args = parser.parse_args(argv)

    secret = new_jwt_secret() if args.jwt else None
    jwt = make_jwt(secret) if secret is not None else None
    keep = args.command == "serve"
    ports = LOCAL_PORTS if keep and not args.free_ports else None
    started = time.monotonic()
    cluster = SparkCluster(args.run_dir, jwt_secret=secret, worker_memory="2g", ports=ports)
    try:
        cluster.start()
        print(f"cluster ready in {time.monotonic() - started:.1f}s (spark home {spark_home()})")
        apps = build_test_apps(args.apps_dir if keep else cluster.run_dir / "apps")
        _describe(cluster, apps, jwt)
        if keep:
            print("\nthe Airflow connection to it:\n")
            print(f"  {connection_command(cluster.ports, jwt)}\n")
            print("running; Ctrl-C stops the master and the worker", flush=True)
            wait_for_interrupt()
    finally:
        cluster.stop()
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
