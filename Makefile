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

test: $(VENV)/.installed
	bash scripts/ensure-chromium.sh && bash scripts/ensure-services.sh
	$(PY) -m pytest

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
