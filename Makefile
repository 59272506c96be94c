# Two commands do all the set-up: `make demo` (main job) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genprior-installed

.PHONY: demo test setup data lint format benchmark clean

demo: setup data
	$(BIN)/genprior cs --quick --out runs/demo

test: setup data lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/ruff check src tests benchmarks scripts

format: setup
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	sh scripts/install-torch.sh $(BIN)/pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

data: setup
	sh scripts/get-mnist.sh $(BIN)/genprior

benchmark: setup data
	$(BIN)/python benchmarks/solver_speed.py --quick

clean:
	rm -rf $(VENV) third_party runs
