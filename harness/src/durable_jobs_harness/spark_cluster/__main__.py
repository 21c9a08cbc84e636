"""``python -m durable_jobs_harness.spark_cluster smoke``: start a cluster, build the test apps, print URLs, stop."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from durable_jobs_harness.spark_cluster.apps import build_test_apps
from durable_jobs_harness.spark_cluster.cluster import SparkCluster, spark_home
from durable_jobs_harness.spark_cluster.tokens import make_jwt, new_jwt_secret


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durable_jobs_harness.spark_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="start a cluster, build the test apps, print URLs, stop")
    smoke.add_argument("--run-dir", type=Path, default=None)
    smoke.add_argument("--jwt", action="store_true", help="protect REST with a JWSFilter")
    args = parser.parse_args(argv)

    secret = new_jwt_secret() if args.jwt else None
    started = time.monotonic()
    with SparkCluster(args.run_dir, jwt_secret=secret) as cluster:
        print(f"cluster ready in {time.monotonic() - started:.1f}s (spark home {spark_home()})")
        apps = build_test_apps(cluster.run_dir / "apps")
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
        if secret is not None:
            print(f"{'jwt':14} {make_jwt(secret)}")
        state = cluster.json_state()
        print(f"{'status':14} {state.get('status')}, aliveworkers={state.get('aliveworkers')}")
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
