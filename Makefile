# Two entry points a fresh machine needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test unit integration lint demo demo-ui e2e bench bench-kube bench-emr clean

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

# Triggerer performance (issue 7): N = 100, 1,000, 10,000 deferred jobs per process, ours beside the providers'
# triggers and two floors, in one run (about 7 minutes; the providers' venv is built once into build/bench-venv).
# Writes build/bench/triggerer_scale.json and docs/performance.md.
bench: setup
	$(PY) benchmarks/triggerer_scale.py

bench-kube: setup
	$(PY) benchmarks/kube_watch_scale.py

bench-emr: setup
	$(PY) benchmarks/emr_batched.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
