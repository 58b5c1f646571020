# RAMster — every target works from a fresh clone with Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF    := $(BIN)/buf

.DEFAULT_GOAL := help
.PHONY: help setup run test lint typecheck unit proto configdoc bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[node,etcd,dev,test,bench]'
	touch $(STAMP)

# buf (proto lint and breaking checks, buf.yaml) from npm into .buf/, linked beside the venv's
# Python, where the tests look for their tools (tests/support/tools.py).
$(BUF): $(STAMP) Makefile
	npm install --prefix .buf --no-audit --no-fund --no-save --loglevel=error @bufbuild/buf@$(BUF_VERSION)
	ln -sf ../../.buf/node_modules/.bin/buf $(BUF)
	touch $(BUF)

setup: $(STAMP) $(BUF) ## create .venv and install RAMster with every extra: node, etcd, dev, test, bench; buf

run: $(STAMP) ## run the main job: the RAMster demo
	$(BIN)/ramster demo

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ramster nodemanager

unit: $(STAMP) ## the unit tests and the contract suites only
	$(BIN)/pytest tests/unit tests/contract

test: lint $(BUF) ## lint, type-check and run every test
	$(BIN)/pytest

proto: $(STAMP) ## regenerate ramster/api/v1 from proto/ (the generated code is committed)
	$(BIN)/python tools/protogen.py

configdoc: $(STAMP) ## regenerate docs/configuration.md from the command line's flags and the module params
	$(BIN)/python -m ramster.cli.configdoc > docs/configuration.md

bench: $(STAMP) ## run the benchmarks (with Redis and memcached as references) and print tables
	@command -v redis-server >/dev/null && command -v memcached >/dev/null || { \
	  echo "installing the reference servers: Debian redis-server and memcached"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server memcached; }
	$(BIN)/python -m tests.bench

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
