# The two commands a user needs: `make run` (the wizard in sandbox mode) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
ENV_FILE := var/local.env

.PHONY: run test bench setup system-packages lint messages clean

## make run: set up, migrate, create the first admin, start sandbox + worker + web on :8000.
run: setup $(ENV_FILE)
	set -a; source $(ENV_FILE); set +a; \
	$(MANAGE) migrate --noinput && \
	$(MANAGE) collectstatic --noinput -v 0 && \
	$(MANAGE) ensure_admin && \
	exec $(MANAGE) serve

## make test: set up the same way, then every test (browser tests in headless Chromium).
## Two pytest-xdist processes, each with its own test database, Redis database, Celery worker and
## sandbox: most tests wait on a worker, the sandbox or a browser, so two overlap well on two cores.
## PYTEST_WORKERS=0 runs every test in one process.
PYTEST_WORKERS ?= 2
test: setup system-packages
	WIZARD_TESTING=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## make bench: the benchmarks; writes bench/results.json.
bench: setup
	WIZARD_TESTING=1 $(BIN)/python -m bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

# Secrets for this machine only, made once: Django's key and the key that encrypts connections.
$(ENV_FILE): | setup
	mkdir -p var
	umask 077; $(BIN)/python -c "from cryptography.fernet import Fernet; import secrets; \
	print('DJANGO_SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('WIZARD_ENCRYPTION_KEYS=' + Fernet.generate_key().decode())" > $@

## Debian packages the browser tests need: Chromium, and CJK fonts so Japanese screenshots render.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Install these Debian packages first: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

## make lint: ruff (lint and format) and mypy on the three apps; .ci/run runs it before the tests.
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && WIZARD_TESTING=1 $(BIN)/mypy wizard provisioning sandbox

## Re-extract and compile translations after changing user-facing strings.
messages: setup
	WIZARD_TESTING=1 $(MANAGE) makemessages -l ja --no-obsolete
	WIZARD_TESTING=1 $(MANAGE) compilemessages -l ja --ignore=.venv

clean:
	rm -rf $(VENV) var
