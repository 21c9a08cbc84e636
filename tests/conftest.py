from __future__ import annotations

import os

# Airflow must not try to reach a real metadata DB or write into ~/airflow during unit tests.
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
