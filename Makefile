# Two commands for a fresh machine:
#   make report   -> creates .venv, installs, runs the default FP16/b1.58/a4.8 study into reports/
#   make test     -> creates .venv, installs, runs the test suite (Triton kernels interpreted on CPU)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: report test install clean

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

test: $(STAMP)
	TRITON_INTERPRET=1 $(PY) -m pytest -q -n 2

clean:
	rm -rf $(VENV) build *.egg-info
