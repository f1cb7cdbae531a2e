# The two commands a newcomer needs: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-dev run test test-only lint format bench chromium lock messages clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --disable-pip-version-check -c requirements.lock -e .
	@touch $@

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed
	@$(PIP) install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

run: install
	@$(PY) -m console.launcher run

test: install-dev lint chromium test-only

# The suite on SQLite, then again on PostgreSQL when one answers; always against a real Redis.
test-only: install-dev
	@$(PY) -m console.launcher test $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run -v 0
	$(VENV)/bin/mypy .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install-dev
	@$(PY) -m bench $(BENCH_ARGS)

# Browser tests drive Debian's Chromium; install it once when it is missing (needs root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Chromium for the browser tests (apt-get, as root)"; \
		apt-get install -y -q chromium >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

# Regenerate the pinned versions after changing dependencies in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -e '.[dev]'
	{ echo "# Pinned versions of every dependency (pip constraints). Regenerate with: make lock"; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock
	rm -rf .lock-venv

# Compile the translations (needs GNU gettext); the compiled .mo files are committed.
messages: install-dev
	$(PY) manage.py makemessages -l zh_Hans --no-obsolete --ignore '.venv/*' --ignore 'var/*' \
		--ignore 'bench/*' --ignore 'tests/*'
	$(PY) manage.py compilemessages --ignore '.venv/*'
	$(PY) -m console.i18n_check

clean:
	rm -rf $(VENV) var/staticfiles var/test_yunying.sqlite3
