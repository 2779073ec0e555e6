# Two commands a newcomer needs: `make dev` (the whole flow on the embedded local stack) and `make test`.
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python

.PHONY: dev test test-fast bench bench-smoke mutate install clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

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

bench: $(VENV)/.installed
	$(PY) -m benchmarks

bench-smoke: $(VENV)/.installed
	$(PY) -m benchmarks --smoke

# Hand-made mutants (scripts/mutants.py): each breaks one claim in a scratch copy; every one must be KILLED.
mutate: $(VENV)/.installed
	$(PY) scripts/mutants.py

clean:
	rm -rf $(VENV) .imageflow test-artifacts
