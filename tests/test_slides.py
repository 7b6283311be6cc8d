"""The slide decks of ``make slides`` (``tools/slides.py``), without a browser.

What a deck takes from a chapter (which cells, in which order, outputs only), the errors that
stop the build before anything is written (no slide metadata, an executed copy that does not
match the chapter), the MyST roles on a slide, the speaker notes (the teaching page's text), the
links to every deck, and, when the decks are built, that a deck fetches nothing outside its folder.
The decks in a real browser: ``tests/test_slides_browser.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dipnb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import slides  # noqa: E402

CHAPTERS = slides.chapters(ROOT)
TEACHING = ROOT / "book" / "teaching.md"
DECKS = ROOT / "_build" / "html" / "slides"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC"  # 1x1


def _meta(kind: str, **extra) -> dict:
    return {"slideshow": {"slide_type": kind, **extra}}


def _renderer(**numbers) -> slides.MystRenderer:
    refs = slides.Refs(
        numbers={"fig-a": "Fig. 2.3", "eq-b": "(2.1)", **numbers},
        pages={"fig-a": "notebooks/alpha", "eq-b": "notebooks/alpha"},
        titles={"notebooks/alpha": "Alpha chapter"},
        citations={"ulyanov2018deep": "Ulyanov et al., 2018"},
    )
    return slides.MystRenderer(refs)


def _figure_cell(source: str, meta: dict, *, stdout: str = "", stderr: str = "") -> nbformat.NotebookNode:
    cell = new_code_cell(source, metadata=meta)
    outs = []
    if stdout:
        outs.append(new_output("stream", name="stdout", text=stdout))
    if stderr:
        outs.append(new_output("stream", name="stderr", text=stderr))
    outs.append(new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}))
    cell.outputs = outs
    return cell


def _print_cell(source: str, meta: dict, stdout: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source, metadata=meta)
    cell.outputs = [new_output("stream", name="stdout", text=stdout)]
    return cell


def _toy_notebook() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# Alpha chapter\n\nIntro paragraph.\n\nSecond paragraph.",
                          metadata=_meta("slide", excerpt=[0, 2])),
        new_markdown_cell("Prose that only the book shows."),
        _figure_cell("secret_plot_code()", _meta("-"), stdout="printed beside the figure\n", stderr="a warning\n"),
        new_markdown_cell("The claim, as a fragment.", metadata=_meta("fragment")),
        _print_cell("print_result()", _meta("-"), "dipnb: denoising [quick]: computing on cpu\ngain: 6.1 dB\n"),
        new_markdown_cell("Say this out loud.", metadata={**_meta("notes"), "tags": ["remove-cell"]}),
        new_markdown_cell("## Below", metadata=_meta("subslide")),
        _figure_cell("another_plot()", _meta("-")),
        new_markdown_cell("A skipped cell.", metadata=_meta("skip")),
        new_markdown_cell("## Second slide with {numref}`fig-a` and $a<b$", metadata=_meta("slide")),
    ])


# --------------------------------------------------------------------------------------------
# The chapters' slide metadata


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_marks_a_deck(chapter):
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    cells = slides.deck_cells(nb, chapter)
    kinds = [k for _, _, k in cells]
    assert kinds[0] == "slide", f"{chapter}: the deck should start with a slide, not {kinds[0]!r}"
    figures = [c for _, c, k in cells if c.cell_type == "code" and k != "notes"]
    assert len(figures) >= 3, f"{chapter}: a deck should show at least 3 outputs of the chapter, got {len(figures)}"
    notes = [c for _, c, k in cells if k == "notes"]
    assert notes, f"{chapter}: no speaker notes"
    for c in notes:
        assert "remove-cell" in c.metadata.get("tags", []), f"{chapter}: a notes cell would show in the book"
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.get("outputs"), f"{chapter}: stored with outputs"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_speaker_notes_are_the_teaching_pages_notes(chapter):
    teaching = _norm(TEACHING.read_text())
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    for c in nb.cells:
        if c.metadata.get("slideshow", {}).get("slide_type") == "notes":
            assert _norm(c.source) in teaching, f"{chapter}: these notes are not on the teaching page:\n{c.source}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_deck_is_linked_from_its_chapter_and_the_teaching_page(chapter):
    link = f'href="../slides/{chapter}.html"'
    assert link in TEACHING.read_text(), f"book/teaching.md does not link the {chapter} deck"
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    assert any(c.cell_type == "markdown" and link in c.source and "remove-cell" not in c.metadata.get("tags", [])
               for c in nb.cells), f"{chapter}: no visible cell links its deck"


# --------------------------------------------------------------------------------------------
# Bad input: one line, nothing written


def test_a_chapter_without_slide_metadata_fails_and_names_it(tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / "gp-prior.ipynb", as_version=4)
    for c in nb.cells:
        c.metadata.pop("slideshow", None)
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nbformat.write(nb, nbs / "gp-prior.ipynb")
    out = tmp_path / "decks"
    with pytest.raises(ConfigError, match=r"^gp-prior: no cell has slide metadata"):
        slides.build(["gp-prior"], notebooks=nbs, build_dir=tmp_path / "build", out=out, log=lambda s: None)
    assert not out.exists(), "nothing may be written when a chapter has no slide metadata"

    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "slides.py"), "gp-prior", "--notebooks", str(nbs),
         "--build", str(tmp_path / "build"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gp-prior" in lines[0] and "slide metadata" in lines[0], proc.stderr
    assert not out.exists()


def test_unknown_chapter_and_unknown_slide_type_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown chapter 'nope'; chapters: quickstart"):
        slides.build(["nope"], build_dir=tmp_path, out=tmp_path / "o", log=lambda s: None)
    nb = new_notebook(cells=[new_markdown_cell("# T", metadata=_meta("title"))])
    with pytest.raises(ConfigError, match=r"toy: cell 0 has slide_type 'title'; allowed: slide, subslide"):
        slides.deck_cells(nb, "toy")
    nb = new_notebook(cells=[new_markdown_cell("# T", metadata=_meta("notes"))])
    with pytest.raises(ConfigError, match="only speaker notes"):
        slides.deck_cells(nb, "toy")
    nb = new_notebook(cells=[new_markdown_cell("# T", metadata=_meta("slide", excerpt=[-1]))])
    with pytest.raises(ConfigError, match="excerpt must be a non-empty list"):
        slides.deck_cells(nb, "toy")


def test_a_code_cell_without_outputs_cannot_be_a_slide():
    nb = new_notebook(cells=[new_code_cell("x = 1", metadata=_meta("slide"))])
    with pytest.raises(ConfigError, match="toy: cell 0: a code cell on a slide shows its outputs only"):
        slides.build_deck(nb, "toy", _renderer())


def test_the_executed_copy_must_have_the_chapters_code(tmp_path):
    nb = _toy_notebook()
    build = tmp_path / "_build"
    with pytest.raises(ConfigError, match=r"alpha: the chapter has not been executed .* run `make book` first"):
        slides.executed_notebook(nb, "alpha", build)
    executed = _toy_notebook()
    executed.cells[1].source = "Markdown edited since the build: fine."
    executed.cells[2].metadata = {}  # metadata edited since the build: fine
    executed.metadata["widgets"] = {slides.WIDGET_STATE: {"state": {}}}
    copy_dir = build / "jupyter_execute" / "notebooks"
    copy_dir.mkdir(parents=True)
    nbformat.write(executed, copy_dir / "alpha.ipynb")
    source = _toy_notebook()
    for c in source.cells:
        if c.cell_type == "code":
            c.outputs = []
    merged = slides.executed_notebook(source, "alpha", build)
    assert merged.cells[1].source == "Prose that only the book shows."
    assert merged.cells[2].metadata == _meta("-") and merged.cells[2].outputs == executed.cells[2].outputs
    assert "widgets" in merged.metadata
    source.cells[7].source = "another_plot(changed=True)"
    with pytest.raises(ConfigError, match="alpha: no executed copy .* has the chapter's current code"):
        slides.executed_notebook(source, "alpha", build)


# --------------------------------------------------------------------------------------------
# What a deck contains


class _Sections(HTMLParser):
    """The nesting of <section> elements and the text inside each <aside class="notes">."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.tree: list[int] = []  # number of vertical slides per horizontal slide
        self.notes: list[str] = []
        self._in_notes = False

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.depth += 1
            if self.depth == 1:
                self.tree.append(0)
            else:
                self.tree[-1] += 1
        if tag == "aside" and ("class", "notes") in attrs:
            self._in_notes = True
            self.notes.append("")

    def handle_endtag(self, tag):
        if tag == "section":
            self.depth -= 1
        if tag == "aside":
            self._in_notes = False

    def handle_data(self, data):
        if self._in_notes:
            self.notes[-1] += data


def test_a_deck_shows_what_the_metadata_says():
    page, stats = slides.build_deck(_toy_notebook(), "alpha", _renderer())
    parsed = _Sections()
    parsed.feed(page)
    # slide 1 has a subslide ("Below"), slide 2 stands alone
    assert parsed.tree == [2, 0], parsed.tree
    assert stats["slides"] == 3 and stats["figures"] == 2 and stats["notes"] == 1
    assert [n.strip() for n in parsed.notes] == ["Say this out loud."]
    assert "secret_plot_code" not in page and "another_plot" not in page, "code input must not reach a slide"
    assert "gain: 6.1 dB" in page, "a printed one-line result belongs on the slide"
    assert "computing on cpu" not in page, "the engine's progress lines do not"
    assert "printed beside the figure" not in page, "a figure cell shows its figure, not its prints"
    assert "a warning" not in page, "stderr never shows"
    assert "Prose that only the book shows." not in page and "A skipped cell." not in page
    assert "Intro paragraph." not in page and "Second paragraph." in page, "excerpt [0, 2]"
    assert '<div class="fragment">' in page and "The claim, as a fragment." in page
    # the one figure of each subslide stretches over the height the rest leaves
    assert page.count('<img class="figure r-stretch"') == 2
    assert '<a href="../notebooks/alpha.html#fig-a">Fig. 2.3</a>' in page
    assert r"\(a&lt;b\)" in page
    for asset in ("reveal.js/reveal.js", "reveal.js/plugin/notes.js", "vendor/mathjax/tex-mml-chtml.js",
                  "vendor/jupyter-widgets/embed.js", "vendor/dipnb-widgets-shim.js"):
        assert f'src="{asset}"' in page, asset


def test_myst_roles_on_a_slide():
    r = _renderer()
    html = r.render("See {numref}`fig-a`, {numref}`Figure %s <fig-a>`, {eq}`eq-b`, {doc}`/notebooks/alpha`,"
                    " {doc}`that page </notebooks/alpha>` and {cite}`ulyanov2018deep`.")
    assert '<a href="../notebooks/alpha.html#fig-a">Fig. 2.3</a>' in html
    assert '<a href="../notebooks/alpha.html#fig-a">Figure 2.3</a>' in html
    assert '<a href="../notebooks/alpha.html#eq-b">(2.1)</a>' in html
    assert '<a href="../notebooks/alpha.html">Alpha chapter</a>' in html
    assert '<a href="../notebooks/alpha.html">that page</a>' in html
    assert "[Ulyanov et al., 2018]" in html
    block = r.render("$$\nx^2 < 1\n$$ (eq-b)")
    assert r"\[x^2 &lt; 1 \tag{2.1}\]" in block
    with pytest.raises(ConfigError, match="the label 'fig-missing' is not in the built book"):
        r.render("{numref}`fig-missing`")
    with pytest.raises(ConfigError, match=r"where: excerpt \[3\] asks for block 3, but the cell has 2 blocks"):
        r.render("# H\n\npara", excerpt=[3], where="where")
    box = r.render("```{admonition} In the paper\n:class: note\nText $x$.\n```")
    assert 'class="box note"' in box and "In the paper" in box and r"\(x\)" in box
    assert r.render("```{solution-start} ex\n:class: dropdown\n```") == ""


def test_widget_state_keeps_what_the_views_need():
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    state = {"version_major": 2, "version_minor": 0, "state": {
        "box": model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_stack"]),
        "slider": model("SelectionSliderModel", layout="IPY_MODEL_lay"),
        "stack": model("StackModel", children=["IPY_MODEL_img"]),
        "img": model("ImageModel"),
        "lay": model("LayoutModel"),
        "link": model("LinkModel", source=["IPY_MODEL_slider", "index"], target=["IPY_MODEL_stack", "selected_index"]),
        "other": model("IntSliderModel"),
        "other_link": model("LinkModel", source=["IPY_MODEL_other", "value"], target=["IPY_MODEL_img", "x"]),
    }}
    kept = slides._widget_state(state, ["box"])["state"]
    assert set(kept) == {"box", "slider", "stack", "img", "lay", "link"}


# --------------------------------------------------------------------------------------------
# The built decks (after `make slides`)


class _Fetched(HTMLParser):
    FETCHING = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        value = dict(attrs).get(self.FETCHING.get(tag, ""))
        if value:
            self.urls.append(value)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_built_deck_fetches_only_from_its_folder(chapter):
    deck = DECKS / f"{chapter}.html"
    if not deck.is_file():
        pytest.skip(f"{deck} is not built: run `make slides`")
    parser = _Fetched()
    parser.feed(deck.read_text())
    assert parser.urls
    for url in parser.urls:
        if url.startswith("data:"):
            continue
        assert not re.match(r"^([a-z]+:|/|\.\./)", url), f"{chapter}: the deck fetches {url} from outside its folder"
        assert (DECKS / url).is_file(), f"{chapter}: {url} is missing from {DECKS}"
    for css in DECKS.rglob("*.css"):
        for m in re.finditer(r"url\(\s*['\"]?([^)'\"]+)", css.read_text(errors="replace")):
            assert m.group(1).startswith("data:") or not re.match(r"^([a-z]+:|/)", m.group(1)), f"{css}: {m.group(1)}"
