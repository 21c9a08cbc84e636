# Two entry points a fresh machine needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test unit integration lint check-install demo demo-ui e2e bench bench-poll-profile bench-triggerer bench-kube bench-emr bench-listings bench-answers bench-ui soak simulate chaos clean

$(STAMP): pyproject.toml harness/pyproject.toml
	@command -v javac >/dev/null || { echo "javac (JDK 17+) is required; the Debian packages are listed in .ci/apt-packages.txt"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" -e ./harness
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src harness tests examples scripts benchmarks
	$(VENV)/bin/ruff format --check src harness tests examples scripts benchmarks
	$(VENV)/bin/mypy

# Tests are laid out by system (tests/<system>/, tests/core/); the real-server tiers are markers.
unit: setup
	$(PY) -m pytest tests --ignore=tests/e2e -q -m "not (spark or kdc or moto or airflow or airflow_db)"

integration: setup
	$(PY) -m pytest tests --ignore=tests/e2e -q -m "spark or kdc or moto or airflow or airflow_db"

# What a new user's pip install does (issue 14): the wheel is built and installed with each extra into a clean venv
# beside Airflow; fails on a broken `pip check`, a broken requirement of Airflow, or a version change that no
# dependency's declared specifier forces (about 2 minutes; the first run also compiles gssapi and krb5, 3 to 6 more).
# Writes build/install-check.json and prints its table.
check-install: setup
	$(PY) scripts/check_install.py

# The test command (README, CI): lint, then every test (unit, integration, the real-Airflow crash matrix);
# nothing can skip. The install check (check-install) runs first. The last step fails if the crash matrix report
# shows a duplicate or an orphan.
# The crash matrix's Airflow runs on PostgreSQL (Debian's postgresql, a private cluster) in `make test` and `make e2e`;
# E2E_DB=sqlite runs it on SQLite. `make demo` always uses SQLite.
E2E_DB ?= postgres

test: lint
	$(PY) scripts/check_install.py
	DURABLE_JOBS_E2E_DB=$(E2E_DB) $(PY) -m pytest tests -q -p no:cacheprovider -o junit_family=xunit2 --junitxml=build/junit.xml
	$(PY) scripts/e2e_table.py build/e2e-report.json

# Real Airflow 3.3 and every system's endpoint (Spark standalone, Kubernetes...) end to end, the crash matrix: writes
# build/e2e-report.json, prints its tables. DURABLE_JOBS_E2E_SYSTEMS=spark,kubernetes selects systems (default all).
e2e: setup
	DURABLE_JOBS_E2E_DB=$(E2E_DB) $(PY) -m pytest tests/e2e -q -p no:cacheprovider
	$(PY) scripts/e2e_table.py build/e2e-report.json

# The simulated protocol (tests/simulation, docs/simulation.md) on new random schedules: 50,000 per kind of system
# (CI runs 5,000 fixed ones per kind in `make test`). SIM_EXAMPLES=N changes the count.
SIM_EXAMPLES ?= 50000
simulate: setup
	DURABLE_JOBS_SIM_RANDOM=1 DURABLE_JOBS_SIM_EXAMPLES=$(SIM_EXAMPLES) $(PY) -m pytest tests/simulation -q -p no:cacheprovider -p no:timeout

demo: setup
	$(PY) scripts/demo.py

# The same, but Airflow and Spark keep running so a person can click through the UI (URLs and password printed)
demo-ui: setup
	$(PY) scripts/demo.py --keep-running

# Triggerer performance (issues 7, 12), library harness: N = 1,000, 10,000 and 100,000 deferred jobs per process,
# ours beside the providers' triggers (at equal N) and three floors, plus the layouts (EMR 1/10/250 steps per
# cluster, realistic pods, 100% ending, a 30 s interval) in one run (about 30 minutes; the providers' venv is
# built once into build/bench-venv). Writes build/bench/triggerer_scale.json and docs/performance.md.
bench: setup
	$(PY) benchmarks/triggerer_scale.py

# Where a steady poll of 100,000 Spark jobs spends its time, stage by stage, with py-spy over the polls and the
# start-up (about 3 minutes). Writes build/bench/poll_profile.json.
bench-poll-profile: setup
	$(PY) -m pip install --quiet py-spy
	$(PY) benchmarks/bench_poll_profile.py --pyspy-startup

# A real `airflow triggerer` (issue 12): N = 1,000, 5,000, 10,000 deferred tasks seeded in a private PostgreSQL,
# ours beside Airflow's DateTimeTrigger (the floor) and the providers' triggers (at N <= 1,000 by default; add
# BENCH_ARGS="--provider-max-jobs 5000" for their 5,000 rows, +20 minutes), the restart storm and HA (about 45
# minutes on 2 cores). Needs Debian's postgresql. Writes build/bench/real_triggerer.json and the figures section
# of docs/performance-triggerer.md.
bench-triggerer: setup
	$(PY) -m pip install --quiet py-spy  # the PostgreSQL drivers come with the dev extra
	$(PY) benchmarks/real_triggerer.py $(BENCH_ARGS)

bench-kube: setup
	$(PY) benchmarks/kube_watch_scale.py

bench-emr: setup
	$(PY) benchmarks/emr_batched.py

# Big listings never stall the loop (issue 11): Spark /json/ with 100,000 drivers, YARN, Kubernetes and EMR
# listings of 10,000, the longest event-loop block of each poll, find and links call. build/bench/listings.json
bench-listings: setup
	$(PY) benchmarks/listings.py

# What a 50 MB body, a 12 MB status message and a 100,000-deep JSON cost. build/bench/big_answers.json
bench-answers: setup
	$(PY) benchmarks/big_answers.py

# The "Durable jobs" view paging 10,000 records on PostgreSQL (issue 19): the real api-server and the query layer,
# each page's median and p95 (first, middle, last, each filter, limit 50 and 500; the endpoints), as admin and as a
# user kept to 3 DAGs (about 6 minutes; needs Debian's postgresql). Writes build/bench/ui_paging.json; exits 1 when
# a p95 is over 1 s. BENCH_ARGS="--compare OLD.json" prints an earlier run's figures beside.
bench-ui: setup
	$(PY) benchmarks/ui_paging.py $(BENCH_ARGS)

# The fault soak (issue 11), long: 200 waiting jobs on one Spark master that is down, then answers 503, then 429,
# then resets connections, 5 minutes each (about 21 minutes in all); then the jobs finish. Writes
# build/soak-report.json and ends with `soak: ... failures=0 resubmissions=0 late_events=0 ...` (CI runs 15 s phases
# in tests/core/test_soak.py).
soak: setup
	$(PY) benchmarks/soak.py --phase-seconds 300 --jobs 200

# The random fault campaign (issue 16, docs/chaos.md), long: Spark and Kubernetes mapped tasks on real Airflow (PostgreSQL,
# two triggerers) while a seeded nemesis kills, pauses, disconnects, clears, marks failed and jumps clocks for 30
# minutes (about 40 minutes in all). DURABLE_JOBS_CHAOS_SEED=<seed> replays a schedule. Writes build/chaos-report.json
# and prints its table; fails on a duplicate, an orphan, a lost job, a task not terminal or a re-run of a success.
# (CI runs the 5-minute smoke, tests/chaos, in `make test`.)
CHAOS_MINUTES ?= 30

chaos: setup
	DURABLE_JOBS_CHAOS_MINUTES=$(CHAOS_MINUTES) DURABLE_JOBS_CHAOS_DB=postgres $(PY) -m pytest tests/chaos -q -s -p no:cacheprovider
	$(PY) scripts/chaos_table.py build/chaos-report.json

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
