# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATA := data/machine_temperature_system_failure.csv
DEMO_MODEL := models/demo
# The demo model uses the detector's defaults, the configuration `anomaly bench` measures
# (tests/test_cli.py checks what they find on the bundled data).
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: install run demo-model test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

$(DEMO_MODEL)/detector.json: | $(VENV)/.installed
	$(PY) -m anomaly train $(DEMO_DATA) --model $(DEMO_MODEL) --duplicates mean \
		--normal-end "2013-12-10 06:20"

demo-model: $(DEMO_MODEL)/detector.json
	$(PY) -m anomaly score $(DEMO_DATA) --model $(DEMO_MODEL) --duplicates mean \
		--out models/demo_scores.csv --events models/demo_events.csv

run: demo-model
	$(PY) -m anomaly dashboard --address $(ADDRESS) --port $(PORT)

# Two pytest-xdist workers (CI has two cores), a test file per worker at a time so module fixtures
# (the fitted tiny models) are built once; `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= 2

test: $(VENV)/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15  # the slowest, to watch the 20-minute CI budget

lint: $(VENV)/.installed  # what CI checks: ruff's lint rules and its formatting (config in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(VENV)/.installed
	$(PY) bench/perf.py

clean:
	rm -rf $(VENV) models tests/artifacts .pytest_cache
