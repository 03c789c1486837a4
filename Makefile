# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   creates the environment if missing, then runs the demo end to end
#   make test   creates the environment if missing, then runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c constraints.txt pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(PY) -m simulator.stats.warm || echo "shard kernel not warmed: its first run compiles it"  # numba, into its cache
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/policysim demo --data data --out demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) demo .pytest_cache
