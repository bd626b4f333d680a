# The two commands of the README: `make demo` and `make test`. Everything else is what they need (docs/development.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The first Python >= 3.12 found: on PATH, then under pyenv.
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$(ls -d $$(pyenv root 2>/dev/null || echo ~/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: demo test lint check screenshots venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 is needed (Django 6): install python3.12 or newer." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: venv
	@./devstack/require-services.sh --cluster
	$(PY) -m devstack.demo

test: lint
	@./devstack/require-services.sh --postgres --chromium --cluster
	$(PY) -m pytest

# The house's style, in seconds and without servers: lint, format, one-way imports (pyproject.toml [tool.importlinter]),
# types (the clients fully; pyproject.toml [tool.mypy]), and the docs site (mkdocs.yml) built with strict link checking
# into a throwaway directory.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	@site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && \
		NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir "$$site" && echo "docs: mkdocs build --strict ok"

# The fast tier, in seconds, with no server: tests/unit/ (pure functions, forms, rules). Browsers and API fuzzing
# are not in it, so their pytest plugins are not loaded.
check: venv
	ORGDNS_TEST_TIER=fast $(PY) -m pytest tests/unit -p no:playwright -p no:schemathesis

screenshots: venv
	@./devstack/require-services.sh --chromium --cluster
	$(PY) -m devstack.screenshots

clean:
	rm -rf $(VENV) .sandbox .pytest_cache .mypy_cache .import_linter_cache orgdns.egg-info
