# Two commands set up a machine: `make run` starts everything, `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

.PHONY: run serve superuser demo-password test check install migrate clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

# Without DATABASE_URL, `embedded_postgres run` starts the PostgreSQL in var/ for the command and stops it
# afterwards (unless it was already running); with DATABASE_URL it only runs the command.
migrate: install
	$(BIN)/python manage.py embedded_postgres run -- $(BIN)/python manage.py migrate --noinput

# The ports the web server and the SMTP sink listen on (127.0.0.1), for the Procfile and the settings
# (SITE_URL follows WEB_PORT, the demo account and system mail SINK_PORT): `WEB_PORT=8001 make run`.
export WEB_PORT ?= 8000
export SINK_PORT ?= 1025

# The demo account sends to the local sink on 127.0.0.1, which the SMTP destination guard refuses.
# check_ports says which variable to change, in one line, before anything has started.
run: export SMTP_ALLOW_PRIVATE_HOSTS = 1
run: install
	@LOG_LEVEL=WARNING $(BIN)/python manage.py check_ports
	$(BIN)/python manage.py embedded_postgres run -- $(MAKE) --no-print-directory serve

# What `make run` runs while its database is up; with ADMIN_EMAIL set (`ADMIN_EMAIL=you@example.com make run`)
# it also makes the superuser who approves sign-ups, once, printing its password. exec: make waits for honcho itself, which stops its
# processes before the database is stopped, even when a signal reaches the whole process group.
serve:
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_schedules
	$(BIN)/python manage.py setup_demo
	@test -z "$(ADMIN_EMAIL)" || $(BIN)/python manage.py create_admin --if-missing --email "$(ADMIN_EMAIL)" --username "$(or $(ADMIN_USERNAME),admin)"
	PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/honcho start

# A superuser, who approves sign-ups: `make superuser ADMIN_EMAIL=you@example.com [ADMIN_USERNAME=admin]`.
# Its password is generated and printed once. Works beside a running `make run`.
superuser: install
	@test -n "$(ADMIN_EMAIL)" || { echo "usage: make superuser ADMIN_EMAIL=you@example.com [ADMIN_USERNAME=admin]"; exit 2; }
	@LOG_LEVEL=WARNING $(BIN)/python manage.py embedded_postgres run -- $(BIN)/python manage.py migrate --noinput >/dev/null
	@LOG_LEVEL=WARNING $(BIN)/python manage.py embedded_postgres run -- \
		$(BIN)/python manage.py create_admin --email "$(ADMIN_EMAIL)" --username "$(or $(ADMIN_USERNAME),admin)"

# A new password for the demo marketer (its open sessions are logged out); `make run` never changes it.
demo-password: install
	@LOG_LEVEL=WARNING $(BIN)/python manage.py embedded_postgres run -- $(BIN)/python manage.py setup_demo --reset-password

test: install check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The rules the build enforces: lint and format (ruff), types (mypy, strict for the transport and the
# services), and the import contracts between and inside the apps (.importlinter).
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports
	$(BIN)/mypy

# A server still running from var/ would outlive its deleted data directory: stop it first.
clean:
	@test ! -x $(BIN)/python || $(BIN)/python manage.py embedded_postgres stop
	rm -rf $(VENV) var staticfiles .pytest_cache
