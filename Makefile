# Two commands for a fresh machine:
#   make report   -> creates .venv, installs, runs the default FP16/b1.58/a4.8 study into reports/
#   make test     -> creates .venv, installs, runs the linter and the test suite (Triton kernels interpreted on CPU)
# Also: make lint (ruff only), make docs (regenerate the generated documents), make bench-sim (simulator speed),
#       make serving (the study's serving runs into reports/serving/, resumable: up-to-date runs are skipped),
#       make notebook (installs JupyterLab and opens notebooks/).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: report test lint docs bench-sim serving notebook install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first (a local wheel on our machines), so pip never pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(VENV)/bin/bitsim report

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	TRITON_INTERPRET=1 $(PY) -m pytest -q -n 2

docs: $(STAMP)
	$(VENV)/bin/bitsim docs tables
	$(VENV)/bin/bitsim docs limits
	$(VENV)/bin/bitsim docs graph

bench-sim: $(STAMP)
	$(PY) benchmarks/bench_sim.py

serving: $(STAMP)
	$(VENV)/bin/bitsim serve reports/specs/serving/*.yaml -o reports/serving --small

notebook: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,notebook]'
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build *.egg-info
