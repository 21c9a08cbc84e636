# Two entry points a fresh machine needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test unit integration lint demo demo-ui e2e bench-kube bench-emr clean

$(STAMP): pyproject.toml
	@command -v javac >/dev/null || { echo "javac (JDK 17+) is required; the Debian packages are listed in .ci/apt-packages.txt"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests examples scripts benchmarks
	$(VENV)/bin/ruff format --check src tests examples scripts benchmarks
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q

integration: setup
	$(PY) -m pytest tests/integration -q

# The test command (README, CI): lint, then every test (unit, integration, the real-Airflow crash matrix);
# nothing can skip. The last step fails if the crash matrix report shows a duplicate or an orphan.
test: lint
	$(PY) -m pytest tests -q -p no:cacheprovider -o junit_family=xunit2 --junitxml=build/junit.xml
	$(PY) scripts/e2e_table.py build/e2e-report.json

# Real Airflow 3.3 + Spark standalone end to end (the crash matrix): writes build/e2e-report.json, prints its table
e2e: setup
	$(PY) -m pytest tests/e2e -q -p no:cacheprovider
	$(PY) scripts/e2e_table.py build/e2e-report.json

demo: setup
	$(PY) scripts/demo.py

# The same, but Airflow and Spark keep running so a person can click through the UI (URLs and password printed)
demo-ui: setup
	$(PY) scripts/demo.py --keep-running

bench-kube: setup
	$(PY) benchmarks/kube_watch_scale.py

bench-emr: setup
	$(PY) benchmarks/emr_batched.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
