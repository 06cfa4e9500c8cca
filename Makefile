# Tensorgate: `make dev` starts the local stack, `make test` runs the suite. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install dev test test-fast test-pillow-simd fuzz lint format bench zoo clean

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

# The preprocessing tests on Pillow-SIMD, the Pillow build the worker image installs. This compiles it
# (a C compiler and the libjpeg, zlib, libtiff and libwebp headers); the venv borrows .venv's other packages.
SIMD_VENV := .venv-pillow-simd
PILLOW_SIMD := 12.1.1.post0
test-pillow-simd: $(STAMP)
	@test -x $(SIMD_VENV)/bin/python || $(PYTHON) -m venv $(SIMD_VENV)
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_path('purelib'))" \
		> "$$($(SIMD_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")/tensorgate-venv.pth"
	$(SIMD_VENV)/bin/python -c "import importlib.metadata as m; m.version('pillow-simd')" 2>/dev/null \
		|| CC="cc -mavx2" $(SIMD_VENV)/bin/pip install --quiet --no-deps --no-cache-dir pillow-simd==$(PILLOW_SIMD)
	PYTHONPATH=layers/preprocessing:shared:local:client $(SIMD_VENV)/bin/python -m pytest tests/unit/preprocessing -q

# Schemathesis against the local stack: every phase, the coverage phase's boundary and negative cases too, and
# 500 examples per operation (`make test` runs 20, without the coverage phase); FUZZ_SEED replays a run.
fuzz: $(STAMP)
	TENSORGATE_FUZZ_EXAMPLES=$${TENSORGATE_FUZZ_EXAMPLES:-500} TENSORGATE_FUZZ_SEED=$(FUZZ_SEED) \
		TENSORGATE_FUZZ_PHASES=$${TENSORGATE_FUZZ_PHASES:-examples,coverage,fuzzing,stateful} \
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
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/pagination.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/upload_memory.py
	$(BIN)/python bench/datasets.py

# The conversion zoo's full matrix: keras.applications families × every upload format (ZOO_ARGS=--every: all of them).
zoo: $(STAMP)
	$(BIN)/python bench/zoo.py $(ZOO_ARGS)

clean:
	rm -rf $(VENV) $(SIMD_VENV) .pytest_cache .ruff_cache .mypy_cache .aws-sam
