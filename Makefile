# Two entry points a fresh machine needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test unit integration lint demo bench-kube bench-emr clean

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

# The test command (README, CI): lint, then every test; the real-Spark tests cannot skip.
test: lint
	$(PY) -m pytest tests -q -p no:cacheprovider -o junit_family=xunit2 --junitxml=build/junit.xml

demo: setup
	$(PY) scripts/demo.py

bench-kube: setup
	$(PY) benchmarks/kube_watch_scale.py

bench-emr: setup
	$(PY) benchmarks/emr_batched.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
