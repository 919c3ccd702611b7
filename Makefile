# Two entry points: `make run` (the dashboard) and `make test` (lint + the whole test suite).
# Both create .venv on first use and reinstall only when a requirements file or
# pyproject.toml changed: the stamp files below carry those files as prerequisites.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip --disable-pip-version-check
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run serve test lint format pytest unit app e2e security wheel-check clean

help:
	@echo "make run    start the dashboard (streamlit run app.py) on the bundled default dataset"
	@echo "make serve  serve a class: WORKERS Streamlit processes (default: one per core) behind nginx on :8501"
	@echo "make test   ruff check, ruff format --check, then pytest (unit, app, e2e)"
	@echo "make format apply ruff's formatter and safe lint fixes"
	@echo "make wheel-check  build the alliance_core wheel, install it without Streamlit, run docs/engine.md"
	@echo "make clean  remove .venv and caches"

# The venv itself. Debian/Ubuntu split venv+ensurepip into python3-venv: without it
# `python3 -m venv` leaves a half-made .venv with no pip, so check first and remove
# the leftover if creation fails anyway.
$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { \
		echo "error: Python 3.11 or newer is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1))." >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
		echo "error: '$(PYTHON) -m venv' is not available." >&2; \
		echo "       On Debian/Ubuntu run: sudo apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "error: could not create $(VENV); on Debian/Ubuntu run: sudo apt-get install python3-venv" >&2; exit 1; }

# Runtime: pinned requirements plus alliance_core in editable mode (one resolver pass,
# so the pins in requirements.txt win over the loose names in pyproject.toml).
$(RUN_STAMP): requirements.txt pyproject.toml | $(VPY)
	$(PIP) install --quiet -r requirements.txt -e .
	@touch $@

# Test tools on top of the runtime.
$(DEV_STAMP): requirements-dev.txt $(RUN_STAMP)
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@

# Plotly's basic bundle, which draws the dashboard's charts (pages/_ui/chart.py), fetched from
# the npm registry and checked against its published SHA-512. Without it (no network) the
# dashboard still runs and draws with st.plotly_chart: a failed fetch is reported, not fatal.
CHART_BUNDLE := static/plotly-basic.min.js
$(CHART_BUNDLE): scripts/fetch_plotly_bundle.py
	-$(PYTHON) scripts/fetch_plotly_bundle.py

run: $(RUN_STAMP) $(CHART_BUNDLE)
	$(VPY) -m streamlit run app.py

# Several Streamlit processes behind nginx (deploy/serve.sh; see docs/serving.md).
WORKERS ?= $(shell nproc)
serve: $(RUN_STAMP) $(CHART_BUNDLE)
	WORKERS=$(WORKERS) PYTHON=$(VPY) deploy/serve.sh

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The whole suite in one pytest run; the JUnit report lets .ci/run check that no
# browser test or metafor comparison was skipped.
pytest: $(DEV_STAMP) $(CHART_BUNDLE)
	@mkdir -p artifacts
	$(VPY) -m pytest --junitxml=artifacts/junit.xml $(PYTEST_ARGS)

test: lint pytest

# Single layers, for working on one of them.
unit app e2e security: $(DEV_STAMP) $(CHART_BUNDLE)
	$(VPY) -m pytest tests/$@ $(PYTEST_ARGS)

# The wheel of alliance_core in a clean venv without Streamlit runs docs/engine.md's examples.
wheel-check: $(DEV_STAMP)
	BUILD_PYTHON=$(VPY) BASE_PYTHON=$(PYTHON) scripts/check_wheel.sh

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache .hypothesis *.egg-info
