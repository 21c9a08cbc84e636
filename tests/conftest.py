from __future__ import annotations

import os
import tempfile

# Keep Airflow away from ~/airflow and any real metadata DB: every test session gets its own home.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="durable-jobs-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
