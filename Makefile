# Two commands a newcomer needs: `make dev` (the whole flow on the embedded local stack) and `make test`.
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python

.PHONY: dev test test-fast test-unit bench bench-smoke mutate install lock clean

# Every third-party version comes from constraints.txt (the lock; `make lock` refreshes it), so a clean clone,
# CI and deploy/Dockerfile install the same releases.
$(VENV)/.installed: setup.py pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Re-resolve constraints.txt after a requirement in setup.py changes (scripts/lock.sh; LOCK_ARGS=--upgrade
# moves every pin to the newest allowed release).
lock:
	bash scripts/lock.sh $(LOCK_ARGS)

dev: $(VENV)/.installed
	$(VENV)/bin/imageflow dev

# Two passes: the in-process tests on two workers; then the e2e tests one at a time, because they pace real daemons
# against rate limits and kill processes mid-run, and beside other tests their runs starve (measured: a burst then
# never met its rate limit). Both passes always run; either failing fails the target.
test: $(VENV)/.installed
	bash scripts/ensure-chromium.sh && bash scripts/ensure-services.sh
	$(PY) -m pytest -m "not e2e" -n 2; in_process=$$?; \
	$(PY) -m pytest -m e2e; e2e=$$?; \
	exit $$(( in_process || e2e ))

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not e2e and not browser"

# The pure modules, tested directly in a few seconds; --confcutdir keeps out the service fixtures of
# imageflow_dagster_tests/conftest.py (moto, the local OpenAI server), which `make test` still uses.
test-unit: $(VENV)/.installed
	$(PY) -m pytest -q --confcutdir=imageflow_dagster_tests/unit imageflow_dagster_tests/unit

bench: $(VENV)/.installed
	$(PY) -m benchmarks

bench-smoke: $(VENV)/.installed
	$(PY) -m benchmarks --smoke

# Hand-made mutants (scripts/mutants.py): each breaks one claim in a scratch copy; every one must be KILLED.
mutate: $(VENV)/.installed
	$(PY) scripts/mutants.py

clean:
	rm -rf $(VENV) .imageflow test-artifacts
