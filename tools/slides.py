"""Build one reveal.js deck per chapter from the executed chapters: ``make slides``.

The decks are made from the same notebooks as the book, so the lecture and the book cannot drift
apart: which cells become slides is set in each chapter with the cell metadata Jupyter uses for
slideshows, and the outputs are those of the book's own execution (``make book``), so every
figure and number on a slide is the one on the chapter's page.

**Which cells, and how.** ``cell.metadata.slideshow.slide_type`` is one of

- ``slide``: starts a new slide; ``subslide``: starts a new slide below the current one
  (reveal.js's vertical slides); ``fragment``: appears on the current slide at the next key press;
  ``-``: continues the current slide (or fragment); ``notes``: speaker notes of the current slide
  (reveal.js's notes plugin shows them in the speaker view, key ``S``); ``skip``: left out.

Unlike nbconvert's slides exporter, a cell *without* a ``slide_type`` is left out too: a chapter
has far more cells than a lecture has slides, and a cell added to the book later must not appear
in the middle of a slide by accident. Code cells show their outputs only, never their input: the
figure, a table, a widget; or, from a cell that prints and displays nothing richer, the printed
one-line result (``stdout``, without the engine's own ``dipnb: ...`` progress lines; ``stderr``
is always left out). Two
optional keys next to ``slide_type`` trim a cell without changing the book:
``excerpt`` (Markdown cells): the indices of the top-level blocks to show (``[0]`` is a
heading alone, ``[0, 1]`` the heading and the first paragraph); ``outputs`` (code cells): the
indices of the outputs to show. A chapter with no slide metadata is an error that names it: no
empty deck is ever written.

**Where the outputs come from.** ``_build/jupyter_execute/notebooks/<chapter>.ipynb``, the
executed copy Jupyter Book writes, or else the newest copy of that chapter in Jupyter Book's
execution cache (``_build/.jupyter_cache``). Either must have the same code cells as the chapter
(metadata and Markdown may differ); otherwise ``make book`` has to run first, and this script
says so. MyST roles in the Markdown are resolved against the built site: ``{numref}`` and
``{eq}`` get the numbers the book gives them, ``{doc}`` the page's title, ``{cite}`` the
author-year label of ``book/references.bib``.

**Offline.** Each deck is one HTML file (figures inline) in ``_build/html/slides/``, beside its
own copies of reveal.js (``reveal.js/``, from ``tools/node_modules``, pinned by
``tools/package-lock.json``), MathJax 3 and the ipywidgets HTML manager (``vendor/``, the same
files the book serves, from ``_build/site-assets``). A deck fetches nothing outside that folder,
so the folder works from a USB stick, and its static sliders work inside a slide.

Usage: ``python tools/slides.py [CHAPTER ...] [--build DIR] [--out DIR] [--notebooks DIR]``.
Bad input (an unknown chapter, a chapter without slide metadata, an executed copy that does not
match the chapter) stops before anything is written, with one line; the exit status is 2.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.colon_fence import colon_fence_plugin
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.myst_blocks import myst_block_plugin
from mdit_py_plugins.myst_role import myst_role_plugin

from dipnb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "notes", "skip")
SHOWN_TYPES = ("slide", "subslide", "fragment", "-")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# Richest first: the one representation of an output a slide shows.
MIME_ORDER = (WIDGET_VIEW, "text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown",
              "text/latex", "text/plain")
REVEAL_FILES = ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css", "dist/plugin/notes.js", "LICENSE")
__all__ = ["chapters", "deck_cells", "executed_notebook", "Refs", "MystRenderer", "build_deck", "build", "main"]


# ---------------------------------------------------------------------------------------------
# The chapters and their slide metadata


def chapters(root: Path = ROOT) -> list[str]:
    """The chapters of ``_toc.yml``, in book order (``quickstart``, ``gp-prior``, ...)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            f = str(node.get("file", ""))
            if f.startswith("notebooks/"):
                found.append(f.removeprefix("notebooks/").removesuffix(".ipynb"))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)

    walk(toc)
    return found


def _slideshow(cell) -> dict:
    meta = cell.get("metadata", {}).get("slideshow")
    return meta if isinstance(meta, dict) else {}


def deck_cells(nb, chapter: str) -> list[tuple[int, dict, str]]:
    """The cells of ``nb`` that the deck uses: ``(index, cell, slide_type)``, in notebook order.

    Raises:
        ConfigError: no cell carries slide metadata, a ``slide_type`` is unknown, an ``excerpt``
            or ``outputs`` key is malformed, or nothing but notes would be shown.
    """
    found = []
    for i, cell in enumerate(nb.cells):
        meta = _slideshow(cell)
        if "slide_type" not in meta:
            continue
        kind = meta["slide_type"]
        if kind not in SLIDE_TYPES:
            raise ConfigError(f"{chapter}: cell {i} has slide_type {kind!r}; allowed: {', '.join(SLIDE_TYPES)}")
        for key in ("excerpt", "outputs"):
            if key in meta and not (
                isinstance(meta[key], list) and meta[key] and all(isinstance(v, int) and v >= 0 for v in meta[key])
            ):
                raise ConfigError(f"{chapter}: cell {i}: slideshow.{key} must be a non-empty list of indices >= 0,"
                                  f" got {meta[key]!r}")
        if kind != "skip":
            found.append((i, cell, kind))
    if not found:
        raise ConfigError(
            f"{chapter}: no cell has slide metadata, so there is no deck to build; mark the cells the lecture"
            f" shows with metadata.slideshow.slide_type ({', '.join(SLIDE_TYPES)})"
        )
    if not any(kind in SHOWN_TYPES for _, _, kind in found):
        raise ConfigError(f"{chapter}: only speaker notes carry slide metadata; the deck would show nothing")
    return found


def _code_sources(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _merge(nb, executed) -> nbformat.NotebookNode:
    """``nb`` (its Markdown and metadata) with the outputs and widget state of ``executed``."""
    merged = copy.deepcopy(nb)
    done = iter([c for c in executed.cells if c.cell_type == "code"])
    for cell in merged.cells:
        if cell.cell_type == "code":
            cell.outputs = next(done).get("outputs", [])
    if "widgets" in executed.metadata:
        merged.metadata["widgets"] = executed.metadata["widgets"]
    return merged


def _cached_copies(cache_dir: Path, chapter: str) -> list:
    """The chapter's notebooks in Jupyter Book's execution cache, newest first."""
    if not (cache_dir / "global.db").is_file():
        return []
    try:
        from jupyter_cache import get_cache
    except ImportError:  # pragma: no cover - jupyter-cache comes with jupyter-book
        return []
    cache = get_cache(str(cache_dir))
    records = [r for r in cache.list_cache_records() if Path(r.uri).name == f"{chapter}.ipynb"]
    records.sort(key=lambda r: r.created, reverse=True)
    return [cache.get_cache_bundle(r.pk).nb for r in records]


def executed_notebook(nb, chapter: str, build: Path) -> nbformat.NotebookNode:
    """``nb`` with the outputs the book build computed for it.

    Looks in ``build/jupyter_execute/notebooks/<chapter>.ipynb``, then in ``build/.jupyter_cache``,
    for an executed copy whose code cells are the same as ``nb``'s.

    Raises:
        ConfigError: no executed copy, or none with the chapter's current code (run ``make book``).
    """
    want = _code_sources(nb)
    candidates = []
    path = build / "jupyter_execute" / "notebooks" / f"{chapter}.ipynb"
    if path.is_file():
        candidates.append(nbformat.read(path, as_version=4))
    candidates += _cached_copies(build / ".jupyter_cache", chapter)
    for executed in candidates:
        if _code_sources(executed) == want:
            return _merge(nb, executed)
    if not candidates:
        raise ConfigError(f"{chapter}: the chapter has not been executed ({path} is missing); run `make book` first")
    raise ConfigError(f"{chapter}: no executed copy in {build} has the chapter's current code; run `make book` first")


# ---------------------------------------------------------------------------------------------
# References of the built book: figure and equation numbers, page titles, citations


@dataclass
class Refs:
    """What MyST roles point at, read from the built site (or given directly, in tests).

    Attributes:
        numbers: label -> number text as the book shows it (``"Fig. 3.2"``, ``"(2.1)"``).
        pages: label -> page (``"notebooks/capacity"``) holding it, for links.
        titles: page (``"notebooks/capacity"``) -> its title.
        citations: BibTeX key -> author-year label (``"Ulyanov et al., 2018"``).
    """

    numbers: dict[str, str] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    citations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_site(cls, site: Path, root: Path = ROOT) -> Refs:
        """Numbers from the HTML pages of ``site``; titles from the sources; citations from the .bib."""
        from bs4 import BeautifulSoup

        refs = cls()
        for page in sorted(site.glob("notebooks/*.html")) + sorted(site.glob("book/*.html")):
            doc = page.relative_to(site).with_suffix("").as_posix()
            soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
            for fig in soup.select("figure[id]"):
                num = fig.select_one(".caption-number")
                if num:
                    refs.numbers[fig["id"]] = num.get_text().strip()
                    refs.pages[fig["id"]] = doc
            for eq in soup.select("[id^=equation-]"):
                num = eq.select_one(".eqno")
                if num:
                    label = eq["id"].removeprefix("equation-")
                    refs.numbers[label] = re.sub(r"\s+", "", num.get_text()).rstrip("#¶")
                    refs.pages[label] = doc
        for nb_path in sorted((root / "notebooks").glob("*.ipynb")):
            nb = nbformat.read(nb_path, as_version=4)
            refs.titles[f"notebooks/{nb_path.stem}"] = _first_heading("\n".join(
                c.source for c in nb.cells if c.cell_type == "markdown")) or nb_path.stem
        for md in sorted((root / "book").glob("*.md")):
            refs.titles[f"book/{md.stem}"] = _first_heading(md.read_text()) or md.stem
        bib = root / "book" / "references.bib"
        if bib.is_file():
            refs.citations = _citations(bib)
        return refs


def _first_heading(markdown: str) -> str | None:
    m = re.search(r"^#\s+(.+?)\s*$", markdown, flags=re.M)
    return m.group(1) if m else None


def _citations(bib: Path) -> dict[str, str]:
    """BibTeX key -> ``"Ulyanov et al., 2018"`` (the book's author-year style)."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(bib)).entries.items():
        last = [" ".join(p.last_names) for p in entry.persons.get("author", [])]
        last = [re.sub(r"[{}]", "", n) for n in last]
        year = entry.fields.get("year", "n.d.")
        who = (last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2
               else f"{last[0]} et al." if last else key)
        out[key] = f"{who}, {year}"
    return out


# ---------------------------------------------------------------------------------------------
# MyST Markdown -> HTML for a slide


class MystRenderer:
    """Renders the book's MyST Markdown for a slide: math for MathJax, roles resolved, directives boxed.

    Links point into the book relative to the deck (``../notebooks/<chapter>.html``), so they work
    wherever the site is served. Unknown roles render their text; unknown directives their body.
    """

    def __init__(self, refs: Refs):
        self.refs = refs
        md = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "linkify"])
        md.use(dollarmath_plugin, allow_labels=True, allow_space=True, double_inline=False)
        md.use(amsmath_plugin).use(myst_role_plugin).use(myst_block_plugin).use(colon_fence_plugin)
        md.use(deflist_plugin)
        rules = md.add_render_rule
        rules("math_inline", lambda *a: self._math(a[1][a[2]].content, display=False))
        rules("math_inline_double", lambda *a: self._math(a[1][a[2]].content, display=True))
        rules("math_block", lambda *a: self._math(a[1][a[2]].content, display=True))
        rules("math_block_label", lambda *a: self._math(a[1][a[2]].content, display=True, label=a[1][a[2]].info))
        rules("amsmath", lambda *a: self._math(a[1][a[2]].content, display=True))
        rules("myst_role", lambda *a: self._role(a[1][a[2]].meta.get("name", ""), a[1][a[2]].content))
        rules("fence", lambda *a: self._fence(a[1][a[2]]))
        rules("colon_fence", lambda *a: self._fence(a[1][a[2]]))
        for name in ("myst_target", "myst_line_comment", "myst_block_break"):
            rules(name, lambda *a: "")
        self.md = md

    # -- Markdown ---------------------------------------------------------------------------
    def blocks(self, source: str) -> list[list]:
        """The top-level blocks of ``source`` (heading, paragraph, list, math, directive...) as token lists."""
        out: list[list] = []
        depth = 0
        for tok in self.md.parse(source):
            if depth == 0:
                out.append([])
            out[-1].append(tok)
            depth += tok.nesting
        return [b for b in out if not all(t.type in ("myst_target", "myst_line_comment") for t in b)]

    def render(self, source: str, excerpt: Sequence[int] | None = None, where: str = "") -> str:
        """HTML of ``source``, or of the top-level blocks listed in ``excerpt`` only.

        Raises:
            ConfigError: an ``excerpt`` index past the last block.
        """
        blocks = self.blocks(source)
        if excerpt is not None:
            bad = [i for i in excerpt if i >= len(blocks)]
            if bad:
                raise ConfigError(f"{where}: excerpt {list(excerpt)} asks for block {bad[0]}, but the cell has"
                                  f" {len(blocks)} blocks (0..{len(blocks) - 1})")
            blocks = [blocks[i] for i in excerpt]
        tokens = [t for b in blocks for t in b]
        return self.md.renderer.render(tokens, self.md.options, {})

    # -- pieces -----------------------------------------------------------------------------
    def _math(self, tex: str, display: bool, label: str | None = None) -> str:
        tex = tex.strip()
        if label and label in self.refs.numbers:
            tex += r" \tag{" + self.refs.numbers[label].strip("()") + "}"
        if display:
            return f'<div class="math">\\[{html.escape(tex, quote=False)}\\]</div>\n'
        return f'<span class="math">\\({html.escape(tex, quote=False)}\\)</span>'

    def _link(self, doc: str, anchor: str | None, text: str) -> str:
        href = f"../{doc}.html" + (f"#{anchor}" if anchor else "")
        return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'

    def _role(self, name: str, content: str) -> str:
        m = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>", content)
        text, target = (m.group(1), m.group(2)) if m else (None, content)
        refs = self.refs
        if name in ("numref", "eq", "ref") and target in refs.numbers:
            number = refs.numbers[target]
            shown = text.replace("%s", number.split()[-1]) if text else number
            return self._link(refs.pages[target], target, shown)
        if name in ("numref", "eq"):
            raise ConfigError(f"{{{name}}}`{content}`: the label {target!r} is not in the built book")
        if name == "doc":
            doc = target.lstrip("/").removesuffix(".md").removesuffix(".ipynb")
            return self._link(doc, None, text or refs.titles.get(doc, doc))
        if name == "cite":
            keys = [k.strip() for k in target.split(",")]
            return "[" + "; ".join(html.escape(refs.citations.get(k, k)) for k in keys) + "]"
        if name == "math":
            return self._math(content, display=False)
        return f"<em>{html.escape(text or target)}</em>"

    def _fence(self, tok) -> str:
        info = tok.info.strip()
        m = re.fullmatch(r"\{([\w:-]+)\}\s*(.*)", info)
        if not m:
            lang = html.escape(info.split()[0]) if info else ""
            return f'<pre class="code"><code class="{lang}">{html.escape(tok.content)}</code></pre>\n'
        name, argument = m.group(1), m.group(2)
        lines = tok.content.splitlines()
        options = {}
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            key, _, value = lines.pop(0)[1:].partition(":")
            options[key] = value.strip()
        body = "\n".join(lines)
        if name in ("solution-start", "solution-end", "code-cell"):
            return ""
        if name in ("math", "amsmath"):
            label = options.get("label")
            return self._math(body, display=True, label=label)
        inner = MystRenderer.render(self, body)
        if name == "exercise":
            return f'<div class="box exercise"><p class="box-title">Exercise</p>{inner}</div>\n'
        title = argument or name.capitalize()
        return (f'<div class="box {html.escape(options.get("class", name))}"><p class="box-title">'
                f'{self.md.renderInline(title)}</p>{inner}</div>\n')


# ---------------------------------------------------------------------------------------------
# Outputs of a code cell


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


ENGINE_LOG = re.compile(r"^dipnb: .*$\n?", re.M)  # the experiments' progress lines


def _is_rich(out) -> bool:
    data = out.get("data", {})
    return any(m in data for m in MIME_ORDER[:-2])


def _output_html(out, renderer: MystRenderer, alt: str) -> tuple[str, str] | None:
    """``(kind, html)`` of one output, or None for what slides leave out (stderr, empty text)."""
    kind = out.get("output_type")
    if kind == "stream":
        text = ENGINE_LOG.sub("", _text(out.get("text", "")))
        if out.get("name") != "stdout" or not text.strip():
            return None
        return "text", f'<pre class="result">{html.escape(text.rstrip())}</pre>'
    if kind == "error":
        raise ConfigError(f"a cell's output is an error ({out.get('ename')}); the book build would have failed")
    data = out.get("data", {})
    mime = next((m for m in MIME_ORDER if m in data), None)
    if mime is None:
        return None
    value = data[mime]
    if mime == WIDGET_VIEW:
        view = value if isinstance(value, dict) else json.loads(_text(value))
        return "widget", (f'<div class="widget-output"><script type="{WIDGET_VIEW}">'
                          f"{json.dumps(view)}</script></div>")
    if mime == "text/html":
        return "html", f'<div class="html-output">{_text(value)}</div>'
    if mime == "image/svg+xml":
        return "figure", f'<div class="figure">{_text(value)}</div>'
    if mime in ("image/png", "image/jpeg"):
        b64 = re.sub(r"\s+", "", _text(value))
        return "figure", f'<img class="figure" src="data:{mime};base64,{b64}" alt="{html.escape(alt)}">'
    if mime == "text/markdown":
        return "text", f'<div class="md-output">{renderer.render(_text(value))}</div>'
    if mime == "text/latex":
        return "text", f'<div class="math">{html.escape(_text(value))}</div>'
    text = _text(value).strip()
    return ("text", f'<pre class="result">{html.escape(text)}</pre>') if text else None


# ---------------------------------------------------------------------------------------------
# The deck


@dataclass
class _Subslide:
    parts: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    in_fragment: bool = False


def _widget_ids(view_html: str) -> list[str]:
    return re.findall(r'"model_id":\s*"([\w-]+)"', view_html)


def _widget_state(state: Mapping, roots: Iterable[str]) -> dict:
    """The part of a notebook's widget state that the views ``roots`` need, their links included.

    A view needs every model it references, recursively (children, layouts, styles). The links
    (``jslink``) that make a static slider switch its picture are referenced by no view; they are
    kept when both of their ends are kept.
    """
    models = state.get("state", {})

    def refs(key: str) -> set[str]:
        return {k for k in re.findall(r"IPY_MODEL_([\w-]+)", json.dumps(models[key])) if k in models}

    keep: set[str] = set()
    todo = [r for r in roots if r in models]
    while todo:
        while todo:
            key = todo.pop()
            if key not in keep:
                keep.add(key)
                todo += list(refs(key) - keep)
        todo = [k for k, m in models.items() if k not in keep and m.get("model_name", "").endswith("LinkModel")
                and refs(k) and refs(k) <= keep]
    return {"version_major": state.get("version_major", 2), "version_minor": state.get("version_minor", 0),
            "state": {k: v for k, v in models.items() if k in keep}}


def _section(sub: _Subslide) -> str:
    parts = list(sub.parts)
    figures = [i for i, k in enumerate(sub.kinds) if k == "figure"]
    # One figure, outside any fragment: reveal.js stretches it over the height the rest leaves.
    if len(figures) == 1 and parts[figures[0]].startswith('<img class="figure"'):
        parts[figures[0]] = parts[figures[0]].replace('<img class="figure"', '<img class="figure r-stretch"', 1)
    notes = "".join(sub.notes)
    aside = f'\n<aside class="notes">{notes}</aside>' if notes else ""
    return "<section>\n" + "\n".join(parts) + aside + "\n</section>"


def build_deck(nb, chapter: str, renderer: MystRenderer) -> tuple[str, dict]:
    """The deck of one executed chapter: ``(html, stats)``; stats count slides, figures, widgets and notes.

    Raises:
        ConfigError: see :func:`deck_cells`; also a deck with no visible content.
    """
    cells = deck_cells(nb, chapter)
    slides: list[list[_Subslide]] = []
    widget_roots: list[str] = []
    stats = {"slides": 0, "figures": 0, "widgets": 0, "notes": 0, "math": 0}
    title = _first_heading("\n".join(c.source for c in nb.cells if c.cell_type == "markdown")) or chapter
    for index, cell, kind in cells:
        meta = _slideshow(cell)
        where = f"{chapter}: cell {index}"
        if kind == "slide" or not slides:
            slides.append([_Subslide()])
        elif kind == "subslide":
            slides[-1].append(_Subslide())
        sub = slides[-1][-1]
        if kind == "notes":
            if cell.cell_type != "markdown":
                raise ConfigError(f"{where}: speaker notes must be a Markdown cell")
            sub.notes.append(renderer.render(cell.source, meta.get("excerpt"), where))
            stats["notes"] += 1
            continue
        pieces: list[tuple[str, str]] = []
        if cell.cell_type == "markdown":
            pieces.append(("text", f'<div class="md">{renderer.render(cell.source, meta.get("excerpt"), where)}</div>'))
        elif cell.cell_type == "code":
            outputs = cell.get("outputs", [])
            chosen = meta.get("outputs")
            if chosen is not None:
                bad = [i for i in chosen if i >= len(outputs)]
                if bad:
                    raise ConfigError(f"{where}: outputs {chosen} asks for output {bad[0]}, but the executed cell"
                                      f" has {len(outputs)}")
                outputs = [outputs[i] for i in chosen]
            elif any(_is_rich(o) for o in outputs):
                outputs = [o for o in outputs if _is_rich(o)]  # the figure, not the prints around it
            caption = cell.metadata.get("mystnb", {}).get("figure", {}).get("caption", "")
            for out in outputs:
                try:
                    piece = _output_html(out, renderer, re.sub(r"[{}`]", "", caption))
                except ConfigError as err:
                    raise ConfigError(f"{where}: {err}") from None
                if piece:
                    pieces.append(piece)
            if not pieces:
                raise ConfigError(f"{where}: a code cell on a slide shows its outputs only, and this one has none")
        if kind == "fragment":
            sub.in_fragment = True
            pieces = [("fragment", '<div class="fragment">' + "\n".join(h for _, h in pieces) + "</div>")]
        elif kind == "-" and sub.in_fragment and sub.parts:
            # nbconvert's rule: a continuation after a fragment belongs to that fragment
            last = sub.parts.pop()
            sub.kinds.pop()
            pieces = [("fragment", last.removesuffix("</div>") + "\n".join(h for _, h in pieces) + "</div>")]
        else:
            sub.in_fragment = False
        for k, h in pieces:
            sub.parts.append(h)
            sub.kinds.append(k)
            stats["figures"] += h.count('class="figure')
            ids = _widget_ids(h)
            stats["widgets"] += len(ids)
            widget_roots += ids
    empty = [f"{h + 1}.{v + 1}" for h, subs in enumerate(slides) for v, s in enumerate(subs) if not s.parts]
    if empty:
        raise ConfigError(f"{chapter}: slide {empty[0]} would show nothing but notes; give it content or merge it")
    sections = []
    for subs in slides:
        stats["slides"] += len(subs)
        inner = [_section(s) for s in subs]
        sections.append(inner[0] if len(inner) == 1 else "<section>\n" + "\n".join(inner) + "\n</section>")
    state = ""
    if widget_roots:
        if "widgets" not in nb.metadata or WIDGET_STATE not in nb.metadata["widgets"]:
            raise ConfigError(f"{chapter}: the deck shows widgets but the executed chapter saved no widget state")
        missing = [w for w in widget_roots if w not in nb.metadata["widgets"][WIDGET_STATE].get("state", {})]
        if missing:
            raise ConfigError(f"{chapter}: widget {missing[0]} is not in the executed chapter's widget state")
        wstate = _widget_state(nb.metadata["widgets"][WIDGET_STATE], widget_roots)
        state = json.dumps(wstate).replace("</", "<\\/")
        state = f'<script type="{WIDGET_STATE}">{state}</script>'
    body = "\n".join(sections)
    stats["math"] = body.count('class="math"')
    page = _PAGE.format(title=html.escape(title), chapter=html.escape(chapter), slides=body, state=state,
                        css=_CSS, js=_JS)
    return page, stats


# ---------------------------------------------------------------------------------------------
# Assets and the whole build


def copy_assets(out: Path, node_modules: Path, site_assets: Path, shim: Path) -> str:
    """Copy reveal.js, MathJax, the widget manager and its MathJax shim into ``out``; returns a summary.

    Raises:
        ConfigError: a package or the site assets are missing (``npm ci`` / ``make assets`` first).
    """
    reveal = node_modules / "reveal.js"
    if not (reveal / "package.json").is_file():
        raise ConfigError(f"{reveal} is missing: run `npm ci --prefix tools` (make book does)")
    if not (site_assets / "vendor" / "versions.json").is_file():
        raise ConfigError(f"{site_assets}/vendor is missing: run `make assets` (make book does)")
    versions = json.loads((site_assets / "vendor" / "versions.json").read_text())
    versions["reveal.js"] = json.loads((reveal / "package.json").read_text())["version"]
    stamp = out / "vendor" / "versions.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == versions and (out / "reveal.js" / "reveal.js").is_file():
        return f"assets up to date ({versions})"
    for sub in ("reveal.js", "vendor"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    for rel in REVEAL_FILES:
        target = out / "reveal.js" / Path(rel).relative_to("dist" if rel.startswith("dist/") else ".")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(reveal / rel, target)
    shutil.copytree(site_assets / "vendor", out / "vendor")
    shutil.copy2(shim, out / "vendor" / shim.name)
    stamp.write_text(json.dumps(versions, indent=1) + "\n")
    return f"assets copied ({versions})"


def build(names: Sequence[str], *, root: Path = ROOT, build_dir: Path | None = None, out: Path | None = None,
          notebooks: Path | None = None, log=print) -> dict[str, dict]:
    """Write the deck of each chapter in ``names`` (all chapters if empty); returns the stats per chapter.

    Every chapter is checked (slide metadata, executed copy, references) before any file is written.

    Raises:
        ConfigError: an unknown chapter or any of the errors of :func:`build_deck` and
            :func:`executed_notebook`.
    """
    build_dir = build_dir or root / "_build"
    out = out or build_dir / "html" / "slides"
    notebooks = notebooks or root / "notebooks"
    known = chapters(root)
    names = list(names) or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown chapter {unknown[0]!r}; chapters: {', '.join(known)}")
    sources = {}
    for name in names:
        path = notebooks / f"{name}.ipynb"
        if not path.is_file():
            raise ConfigError(f"{name}: {path} does not exist")
        sources[name] = nbformat.read(path, as_version=4)
        deck_cells(sources[name], name)  # fails before anything is read from the build
    site = build_dir / "html"
    if not (site / "index.html").is_file():
        raise ConfigError(f"the book is not built ({site}/index.html is missing); run `make book` first")
    renderer = MystRenderer(Refs.from_site(site, root))
    decks = {}
    for name in names:
        decks[name] = build_deck(executed_notebook(sources[name], name, build_dir), name, renderer)
    out.mkdir(parents=True, exist_ok=True)
    log(copy_assets(out, root / "tools" / "node_modules", build_dir / "site-assets",
                    root / "book" / "static" / "dipnb-widgets-shim.js"))
    stats = {}
    for name, (page, s) in decks.items():
        (out / f"{name}.html").write_text(page)
        s["kB"] = round(len(page.encode()) / 1024)
        stats[name] = s
        log(f"{name}: {s['slides']} slides, {s['figures']} figures, {s['widgets']} widgets, {s['notes']} notes,"
            f" {s['kB']} kB -> {out / name}.html")
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("chapters", nargs="*", help="chapters to build (default: every chapter of _toc.yml)")
    p.add_argument("--build", type=Path, default=ROOT / "_build", help="the book's build folder")
    p.add_argument("--out", type=Path, default=None, help="where the decks go (default: BUILD/html/slides)")
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="the chapters' folder")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        stats = build(args.chapters, build_dir=args.build, out=args.out, notebooks=args.notebooks)
    except ConfigError as err:
        print(f"slides: {err}", file=sys.stderr)
        return 2
    print(f"{len(stats)} decks in {time.perf_counter() - t0:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------
# The page. Paths are relative to the deck's folder: nothing is fetched from outside it.

_CSS = """
.reveal { font-size: 26px; }
.reveal h1, .reveal h2, .reveal h3 { text-transform: none; }
.reveal h1 { font-size: 1.9em; } .reveal h2 { font-size: 1.45em; } .reveal h3 { font-size: 1.2em; }
.reveal .slides section { text-align: left; }
.reveal .slides section .md p, .reveal .slides section .md li { line-height: 1.3; }
.reveal .slides section .md p { margin: 0.4em 0; }
.reveal ol, .reveal ul { display: block; margin-left: 1.2em; }
.reveal img.figure { display: block; margin: 0.3em auto; max-width: 100%; max-height: 560px; object-fit: contain; }
.reveal pre.result { width: 100%; font-size: 0.72em; box-shadow: none; background: #f6f6f6; padding: 0.4em 0.6em;
  margin: 0.3em 0; max-height: 9em; overflow: auto; white-space: pre-wrap; }
.reveal pre.code { font-size: 0.55em; box-shadow: none; background: #f6f6f6; padding: 0.4em; }
.reveal .md-output table, .reveal .md table { font-size: 0.72em; }
.reveal .box { border-left: 5px solid #2a76dd; background: #f3f7fd; padding: 0.2em 0.8em; margin: 0.4em 0;
  font-size: 0.8em; }
.reveal .box-title { font-weight: 600; margin: 0.2em 0; }
.reveal .widget-output { display: flex; justify-content: center; font-size: 16px; zoom: 1.3; }
.reveal .html-output { font-size: 16px; display: flex; justify-content: center; zoom: 1.35; }
.reveal .back { position: fixed; bottom: 8px; left: 12px; font-size: 14px; z-index: 30; }
.reveal .back a { color: #888; }
"""

_JS = """
Reveal.initialize({
  hash: true, width: 1280, height: 760, margin: 0.03, center: false, transition: "none",
  plugins: [RevealNotes],
  // Arrow keys on a widget (a slider's handle) move the widget, not the deck.
  keyboardCondition: function (event) {
    var t = event.target;
    return !(t && t.closest && t.closest(".widget-output, .html-output"));
  }
}).then(function () {
  var mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(function () { Reveal.layout(); }); }
  window.addEventListener("load", function () { Reveal.layout(); });
  document.documentElement.setAttribute("data-deck-ready", "1");
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} (slides)</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="reveal.js/reveal.css">
<link rel="stylesheet" href="reveal.js/theme/white.css">
<style>{css}</style>
<script>
window.MathJax = {{
  tex: {{ inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: true }},
  options: {{ ignoreHtmlClass: "notes|tex2jax_ignore" }}
}};
</script>
<script defer src="vendor/mathjax/tex-mml-chtml.js"></script>
<script src="vendor/dipnb-widgets-shim.js"></script>
<script src="vendor/jupyter-widgets/embed.js"></script>
</head>
<body>
<div class="reveal">
<div class="slides">
{slides}
</div>
<div class="back"><a href="../notebooks/{chapter}.html">the chapter in the book</a> &middot; S: speaker notes</div>
</div>
{state}
<script src="reveal.js/reveal.js"></script>
<script src="reveal.js/plugin/notes.js"></script>
<script>{js}</script>
</body>
</html>
"""


if __name__ == "__main__":
    sys.exit(main())
