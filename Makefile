# Two commands set everything up:  `make lab` (open the lessons)  and  `make test` (run every test).
# Both create or update the virtual environment in .venv first; a second run reuses it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# Where a CPU-only torch comes from when PyPI would give a CUDA build (Linux): e.g.
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: install lab test unit lessons bench budget budget-from-tests lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
		-e '.[test]'
	touch $(STAMP)

install: $(STAMP)            ## create/update .venv with the package and its dependencies

lab: $(STAMP)                ## open JupyterLab on lessons/ (make lab ARGS=--no-browser on a server)
	$(BIN)/sparsity-lab lab $(ARGS)

test: $(STAMP)               ## every test: unit tests, every lesson under nbval, browser tests
	$(BIN)/python -m pytest $(ARGS)

unit: $(STAMP)               ## the unit tests alone
	$(BIN)/python -m pytest tests/unit $(ARGS)

lessons: $(STAMP)            ## every lesson under nbval
	$(BIN)/python -m pytest lessons $(ARGS)

bench: $(STAMP)              ## dense vs compacted latency (about 2 minutes)
	$(BIN)/sparsity-lab bench compaction $(ARGS)

budget: $(STAMP)             ## each lesson's wall time and peak memory: target 60 s / 1.5 GB, fails over 90 s or 1.5 GB
	$(BIN)/sparsity-lab budget lessons

budget-from-tests: $(STAMP)  ## the same table from the wall times and peaks `make test` recorded while nbval ran the lessons
	$(BIN)/sparsity-lab budget --from test-output/budget.json lessons

lint: $(STAMP)
	$(BIN)/ruff check sparsity_lab tests

clean:
	rm -rf $(VENV) build *.egg-info

.PHONY: browser-deps
browser-deps:                ## Chromium for tests/browser: the system package (Playwright never downloads a browser)
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y --no-install-recommends chromium chromium-driver
