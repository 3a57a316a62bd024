# Two commands set up a machine: `make run` starts everything, `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

.PHONY: run test install migrate clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

# The demo account sends to the local sink on 127.0.0.1:1025, which the SMTP destination guard refuses.
run: export SMTP_ALLOW_PRIVATE_HOSTS = 1
run: migrate
	$(BIN)/python manage.py setup_schedules
	$(BIN)/python manage.py setup_demo
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
