# Tensorgate: `make dev` starts the local stack, `make test` runs the suite. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install dev test test-fast fuzz lint format bench zoo clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/tensorgate-dev

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not e2e"

# Schemathesis against the local stack, 500 examples per operation (`make test` runs 20); FUZZ_SEED replays a run.
fuzz: $(STAMP)
	TENSORGATE_FUZZ_EXAMPLES=$${TENSORGATE_FUZZ_EXAMPLES:-500} TENSORGATE_FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/python -m pytest tests/e2e/test_fuzz.py -s

lint: $(STAMP)
	$(BIN)/ruff check shared layers functions local client tests bench
	$(BIN)/ruff format --check shared layers functions local client tests bench
	$(BIN)/mypy shared layers functions local client
	$(BIN)/cfn-lint template.yaml

format: $(STAMP)
	$(BIN)/ruff format shared layers functions local client tests bench
	$(BIN)/ruff check --fix shared layers functions local client tests bench

bench: $(STAMP)
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/convert.py
	$(BIN)/python bench/convert.py --pytorch
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/upload_memory.py
	$(BIN)/python bench/datasets.py

# The conversion zoo's full matrix: keras.applications families × every upload format (ZOO_ARGS=--every: all of them).
zoo: $(STAMP)
	$(BIN)/python bench/zoo.py $(ZOO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .aws-sam
