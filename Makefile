# zss -- run `make help` for the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build to install; override on a machine with another CUDA, e.g.
# make install TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint demo bench record clean

help: ## Show this help (the times: docs/running.md, Timings)
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install zss editable with the dev extras

demo: $(STAMP) ## Train + evaluate SZN offline on generated data (about 1 min on 2 idle cores)
	$(PY) -m zss.run +experiment=demo $(DEMO_ARGS)

# pytest-xdist workers; each module's tests stay in one worker (its shared runs are made once)
TEST_WORKERS ?= 2

test: $(STAMP) ## Run the whole test suite, 2 workers, about 9 min on 2 idle cores (TEST_WORKERS=N; installs first when needed)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) ## The unit tests (tests/unit), about 35 s: for development
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile tests/unit $(PYTEST_ARGS)

lint: $(STAMP) ## Lint with ruff
	$(VENV)/bin/ruff check .

bench: $(STAMP) ## Run the CPU benchmarks, about 12 min on 2 idle cores (figures: benchmarks/README.md)
	$(PY) benchmarks/run_all.py $(BENCH)

record: $(STAMP) ## Re-run demo + demo_density and rewrite experiments/results/, about 1.5 min on 2 idle cores (RECORD="name ...")
	$(PY) experiments/record.py $(RECORD)

clean: ## Remove caches and Hydra outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache outputs multirun
