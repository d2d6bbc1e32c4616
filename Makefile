# The two README commands: `make quickstart` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test test-fast browser
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo 'installing noisyctl and its dependencies (PyTorch is large: a few minutes the first time)'
	$(BIN)/python -m pip install --progress-bar on -e '.[test]'
	touch $@

quickstart: setup
	$(BIN)/noisyctl run recipes/quickstart.yaml

# The HTML report is checked in a real headless browser: Debian's chromium, installed when
# missing and possible (root with apt-get); otherwise that one test says why it is skipped.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; } ; } || \
	  echo "note: no chromium; the HTML report's browser test will be skipped"

test: setup browser
	$(BIN)/python -m pytest

# While working: everything but the tests marked slow (about 90 s on 2 cores). CI runs `make test`.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"
