# restrike — see README.md. Everything installs itself: a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages the tests need: a virtual X server, the browser Playwright drives (never a
# download), and the X11 libraries QtWebEngine's xcb platform needs beyond PyQt6's wheels.
APT_TEST := xvfb xauth chromium libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 \
            libxcb-xkb1 libxcb-render-util0 libxcb-image0 libxcb-shape0 libxcb-randr0 \
            libnss3 libasound2 libegl1 libgl1 libdbus-1-3 libfontconfig1 fonts-dejavu-core \
            obs-studio ffmpeg mpv postgresql
APT_RUN  := libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-xkb1 \
            libxcb-render-util0 libxcb-image0 libxcb-shape0 libxcb-randr0 libnss3 libasound2 \
            libegl1 libgl1 libdbus-1-3 libfontconfig1

.PHONY: run demo test test-fast lint screenshots bench venv apt-run apt-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' -e examples/restrike-event-counter
	touch $(STAMP)

venv: $(STAMP)

apt-run:
	@bash scripts/apt-ensure.sh $(APT_RUN)

apt-test:
	@bash scripts/apt-ensure.sh $(APT_TEST)

## make run: install and start the app, listening for the PSS feed on UDP 6000
run: venv apt-run
	$(VENV)/bin/restrike $(ARGS)

## make demo: the app on a throwaway data dir with the simulated match feed
demo: venv apt-run
	$(VENV)/bin/restrike --demo --data-dir "$$(mktemp -d)" $(ARGS)

## make lint: type check (mypy, config in pyproject.toml) the app's packages and lint (ruff) them,
## the tests, the benches and the examples
# mypy checks the package by its installed name (restrike.host, ...); ruff reads the folders
LINT_PATHS := restrike host plugins pss tests bench examples
lint: venv
	$(VENV)/bin/mypy -p restrike
	$(VENV)/bin/ruff check $(LINT_PATHS)

## make test: install test needs (apt + pip), lint, and run the whole suite under Xvfb
test: venv apt-test lint
	RESTRIKE_LOAD_PLUGINS= xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m pytest -q $(PYTEST_ARGS)

## make screenshots: refresh docs/screenshots/ (the tests alone write theirs to a temp dir)
screenshots: venv apt-test
	RESTRIKE_LOAD_PLUGINS= RESTRIKE_SCREENSHOTS=docs/screenshots xvfb-run -a \
		-s "-screen 0 1600x1000x24" $(PY) -m pytest -q tests/e2e/test_screens.py \
		-k screenshots $(PYTEST_ARGS)

test-fast: venv
	RESTRIKE_LOAD_PLUGINS= $(PY) -m pytest -q -m "not e2e and not slow" $(PYTEST_ARGS)

bench: venv
	$(PY) bench/ingest.py
	$(PY) bench/database.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
