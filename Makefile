# isobox: two commands for a newcomer (as root on Debian 12): `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint unit integration bench clean

setup:
	bash scripts/setup

demo: setup
	bash scripts/demo

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	cd src && ../$(VENV)/bin/lint-imports --config ../pyproject.toml

unit: setup
	$(PY) -m pytest -q tests/unit

test: setup lint
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
