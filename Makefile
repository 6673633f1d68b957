# Everything a fresh machine needs: `make demo` and `make test` install into .venv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-fast bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first and pinned: the versions this project is tested with, taken from the local disk
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[cpu,ui,api,formats,clip,ray,test]'
	touch $@

install: $(VENV)/.installed

# Build the demo zoo, index it and start the app; `make demo ARGS=--no-app` prints a sample search instead.
demo: install
	$(BIN)/zoo2vec demo $(ARGS)

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not integration" $(ARGS)

# The full benchmark (bench zoo, ground truth, every baseline): writes bench/RESULTS.md, results.json, plots.
bench: install
	$(BIN)/zoo2vec eval $(ARGS)
