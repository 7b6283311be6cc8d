# Two commands do everything on a fresh Linux machine with Python 3.11:
#   make book   create .venv, install, execute the chapters (quick profile), build the HTML
#   make test   the whole test suite in the same environment
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Results of experiments are cached here, so a rebuild after a prose edit takes seconds.
export DIPNB_CACHE ?= $(CURDIR)/.cache/results
export DIPNB_PROFILE ?= quick
export MPLBACKEND ?= Agg

.PHONY: install book test unit nbval lint bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

unit: $(STAMP)
	$(PY) -m pytest -q tests -m "not browser"

nbval: $(STAMP)
	DIPNB_PROGRESS=0 $(PY) -m pytest -q --nbval-lax notebooks/

lint: $(STAMP)
	$(VENV)/bin/ruff check dipnb tests benchmarks

book: $(STAMP)
	DIPNB_PROGRESS=0 $(VENV)/bin/jupyter-book build . --path-output _build
	@echo "The book is at $(CURDIR)/_build/_build/html/index.html"

test: lint unit nbval

bench: $(STAMP)
	$(PY) benchmarks/step.py

clean:
	rm -rf _build .cache/results
