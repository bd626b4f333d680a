# The two commands of the README: `make demo` and `make test`. Everything else is what they need (docs/development.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The first Python >= 3.12 found: on PATH, then under pyenv.
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$(ls -d $$(pyenv root 2>/dev/null || echo ~/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: demo test lint check check-db check-integration check-pythons screenshots venv lock clean image

venv: $(STAMP)

# The dependencies exactly as locked (versions and hashes: requirements-dev.lock), then orgdns itself, editable.
$(STAMP): pyproject.toml requirements-dev.lock
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 is needed (Django 6): install python3.12 or newer." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call install_locked,$(PY))
	@touch $@

# The lock file into the venv of python $(1): uv first unless the venv has it (the version requirements-dev.lock pins,
# by its hashes, with pip), then everything else with uv, by hash too: seconds where pip takes minutes.
install_locked = { $(1) -m uv --version >/dev/null 2>&1 || \
	$(1) -m pip install -q --no-deps --require-hashes -r <(awk '/^uv==/ {f=1} f {print} f && !/\\$$/ {exit}' requirements-dev.lock); } && \
	$(1) -m uv pip install -q --python $(1) --require-hashes -r requirements-dev.lock && \
	$(1) -m uv pip install -q --python $(1) --no-deps -e .

# The lock files, from pyproject.toml's bounds, every dependency at its newest allowed version: requirements.lock (what
# orgdns runs with: the image, a production install) and requirements-dev.lock (plus the tools and tests). For every
# platform and Python >= 3.12.
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.12 --generate-hashes --upgrade -q
lock: venv
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev -o requirements-dev.lock

demo: venv
	@./devstack/require-services.sh --cluster --directory
	$(PY) -m devstack.demo

# Everything: the house's checks, the fast tier on every Python, then the database and integration tiers in one run
# (what CI runs, .ci/run).
test: lint check-pythons
	@./devstack/require-services.sh --postgres --chromium --cluster --directory --image
	$(PY) -m pytest -m "not fast"

# The house's style, in seconds and without servers: lint, format, one-way imports (pyproject.toml [tool.importlinter]),
# types (mypy with django-stubs; pyproject.toml [tool.mypy]), and the docs site (mkdocs.yml) built with strict link checking
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

# The database tier (656 tests, 3.5 min on a busy 2-core machine): pages, API, permissions, validation and forms on PostgreSQL only, with rows
# made directly; a test of it reaching for AWS, Vault, Redis or a cluster fails at once (tests/conftest.py).
check-db: venv
	@./devstack/require-services.sh --postgres
	ORGDNS_TEST_TIER=database $(PY) -m pytest -m database -p no:playwright

# The integration tier: the real servers (moto, OpenBao, Redis, local Kubernetes clusters running ExternalDNS, slapd
# and Dex, Chromium, podman), for everything that crosses a boundary.
check-integration: venv
	@./devstack/require-services.sh --postgres --chromium --cluster --directory --image
	$(PY) -m pytest -m integration

# Every Python >= 3.12 this machine has (on PATH, then under pyenv), the first found of each version: 3.12=/path ...
PYTHONS = $(shell for p in python3.12 python3.13 python3.14 python3.15 $$(ls -d $$(pyenv root 2>/dev/null || echo ~/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	v=$$($$p -c 'import sys; sys.version_info >= (3, 12) and print("%d.%d" % sys.version_info[:2])' 2>/dev/null) && \
	test -n "$$v" && echo "$$v=$$(command -v $$p)"; done | sort -s -t= -k1,1 -u)

# The fast tier under each of them, each in a venv of its own installed from the lock file (.venv for its own version,
# .venv-3.X for the others).
check-pythons: venv
	@own=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	for pair in $(PYTHONS); do version=$${pair%%=*}; python=$${pair#*=}; venv=.venv-$$version; \
		test "$$version" = "$$own" && venv=$(VENV); \
		echo "== the fast tier on Python $$version ($$venv)"; \
		if [ ! -f $$venv/.installed ] || [ requirements-dev.lock -nt $$venv/.installed ]; then \
			{ test -x $$venv/bin/python || $$python -m venv $$venv; } && \
			{ $(call install_locked,$$venv/bin/python); } && touch $$venv/.installed || exit 1; \
		fi; \
		ORGDNS_TEST_TIER=fast $$venv/bin/python -m pytest -q tests/unit -p no:playwright -p no:schemathesis || exit 1; \
	done

# The OCI image, built here without any registry (image/): localhost/orgdns:latest and dist/orgdns-image.oci.tar.
image:
	@./devstack/require-services.sh --image
	./image/build.sh

screenshots: venv
	@./devstack/require-services.sh --chromium --cluster
	$(PY) -m devstack.screenshots

clean:
	rm -rf $(VENV) .venv-3.* build dist .sandbox .pytest_cache .mypy_cache .import_linter_cache orgdns.egg-info
