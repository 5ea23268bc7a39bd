# The two commands of the README: `make run` and `make test`. Both create .venv if missing
# and (re)build the package when native or Cython sources change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEPS   := $(VENV)/.deps-stamp
BUILT  := $(VENV)/.build-stamp
SOURCES := $(shell find native python -name '*.rs' -o -name '*.pyx' -o -name '*.pxd' 2>/dev/null) \
           Cargo.toml Cargo.lock setup.py pyproject.toml

.PHONY: run test test-rust test-python bench build clean

$(DEPS): requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Editable install: setuptools-rust builds aurum._native (release, LTO) and Cython builds
# the kernels in place under python/aurum/.
$(BUILT): $(DEPS) $(SOURCES)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
	@touch $@

build: $(BUILT)

run: $(BUILT)
	$(VENV)/bin/aurum demo

test: test-rust test-python

test-rust:
	cargo test --locked

test-python: $(BUILT)
	$(PY) -m pytest

# NautilusTrader pins pandas<3, so it gets its own venv; the comparison is optional and the
# bench reports "not installed" if it cannot be installed here.
NAUTILUS_VENV := .venv-nautilus
NAUTILUS_PIN  := nautilus_trader==1.221.0

$(NAUTILUS_VENV)/.stamp:
	@test -x $(NAUTILUS_VENV)/bin/python || $(PYTHON) -m venv $(NAUTILUS_VENV)
	-$(NAUTILUS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(NAUTILUS_PIN) && touch $@

bench: $(BUILT) $(NAUTILUS_VENV)/.stamp
	cargo bench --bench pipeline
	AURUM_NAUTILUS_PYTHON=$(NAUTILUS_VENV)/bin/python $(PY) bench/bench_decode_book.py --out bench/results/latest.md
	$(PY) bench/bench_decision.py

clean:
	rm -rf build target python/aurum/*.so python/aurum/kernels/*.so python/aurum/kernels/*.c $(BUILT)
