"""The Colab notebooks (``tools/colab.py``), the student notebooks (``tools/student.py``) and the
site's Colab buttons (``tools/dipnb_book.py``).

Executing the notebooks is nbval's job (``make nbval-colab``); these checks read them.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ids = [p.stem for p in NOTEBOOKS]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return sys.modules[name]


urls = _load_tool("sync_colab_url")
colab = _load_tool("colab")
student = _load_tool("student")
REPO = urls.repository_url(ROOT / "_config.yml")
SITE = urls.site_url(REPO)
REF = "0123456789abcdef0123456789abcdef01234567"  # a fixed commit for the checks that do not need git


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``make colab`` and ``make student`` into a temporary folder: {chapter: (colab nb, student nb)}."""
    out = tmp_path_factory.mktemp("build")
    assert colab.main(["--out", str(out / "colab"), "--ref", REF]) == 0
    assert student.main(["--src", str(out / "colab"), "--out", str(out / "student")]) == 0
    def read(folder, p):
        return nbformat.read(out / folder / p.name, as_version=4)

    return {p.stem: (read("colab", p), read("student", p)) for p in NOTEBOOKS}


@pytest.fixture(scope="module")
def book():
    return colab.load_book(ROOT)


def _markdown(nb) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


# ---------------------------------------------------------------------------------------------
# No MyST left.

# Fenced code, inline code and math are taken out first: what they hold is not Markdown.
_CODE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})(?![ \t]*\{).*?^[ \t]*\1[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"(?<![`}])(`+)(?!`)[^\n]+?(?<!`)\1(?!`)")  # not a role's `target`
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
MYST_PATTERNS = {
    "role": re.compile(r"\{[A-Za-z][\w:.+-]*\}`"),
    "directive fence": re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*\{", re.M),
    "colon fence": re.compile(r"^[ \t]*:{3,}", re.M),
    "target": re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$", re.M),
    "directive option": re.compile(r"^[ \t]*:(label|class|name|nonumber|open|hidden):", re.M),
    "substitution": re.compile(r"\{\{.*?\}\}", re.S),
    "comment line": re.compile(r"^%", re.M),
    "block break": re.compile(r"^\+\+\+", re.M),
    "role or directive name": re.compile(
        r"\{(cite(:\w+)?|numref|doc|eq|ref|math|exercise|solution(-start|-end)?|admonition|note|dropdown)\}"
    ),
}
EQUATION_LABEL = re.compile(r"\$\$[ \t]*\([^()\s]+\)[ \t]*$", re.M)


def myst_left(text: str) -> list[str]:
    """Names of the MyST patterns found in Markdown ``text`` (outside code and math)."""
    found = ["equation label"] if EQUATION_LABEL.search(text) else []
    bare = _MATH.sub("", _INLINE_CODE.sub("", _CODE_FENCE.sub("", text)))
    return found + [name for name, pattern in MYST_PATTERNS.items() if pattern.search(bare)]


def _myst_parser():
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    extensions = {"dollarmath", "amsmath", "colon_fence", "substitution", "deflist"}
    return create_md_parser(MdParserConfig(enable_extensions=extensions), RendererHTML)


MYST_TOKENS = {
    "myst_role", "myst_target", "myst_line_comment", "myst_block_break", "math_block_label",
    "substitution_block", "substitution_inline", "colon_fence",
}


def myst_tokens(md, text: str) -> list[str]:
    """MyST tokens a MyST-aware markdown-it parser finds in ``text``: roles, targets, directives..."""
    found = []

    def walk(tokens):
        for t in tokens:
            if t.type in MYST_TOKENS or (t.type == "fence" and t.info.strip().startswith("{")):
                found.append(f"{t.type} {t.info or t.content[:40]!r}".strip())
            if t.children:
                walk(t.children)

    walk(md.parse(text))
    return found


def test_the_detectors_see_myst():
    """The two checks below find each construct in a chapter's source (so they can fail)."""
    md = _myst_parser()
    source = "\n\n".join(s for p in NOTEBOOKS for _, s in _markdown(nbformat.read(p, as_version=4)))
    assert {"role", "directive fence", "directive option", "equation label"} <= set(myst_left(source))
    kinds = {t.split()[0] for t in myst_tokens(md, source)}
    assert {"myst_role", "fence", "math_block_label"} <= kinds
    for snippet in ("(sec-x)=\n# T", "% a comment", "+++", ":::{tip}\nx\n:::", "{{ name }}"):
        assert myst_left(snippet) and myst_tokens(md, snippet), snippet
    assert not myst_left("Code `{cite}`x`` and math $\\begin{cases}a\\end{cases}$ stay.")


@pytest.mark.parametrize("chapter", ids)
def test_no_myst_left(built, chapter):
    nb = built[chapter][0]
    md = _myst_parser()
    for i, text in _markdown(nb):
        assert not myst_left(text), f"{chapter}.ipynb cell {i}: MyST left ({myst_left(text)}):\n{text[:400]}"
        assert not myst_tokens(md, text), f"{chapter}.ipynb cell {i}: MyST tokens {myst_tokens(md, text)}"


@pytest.mark.parametrize("chapter", ids)
def test_citations_become_author_year_with_references(built, book, chapter):
    src = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    keys = []
    for cell in src.cells:
        text = cell.source + str(((cell.metadata.get("mystnb") or {}).get("figure") or {}).get("caption", ""))
        for m in re.finditer(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            keys += [k.strip() for k in m.group(1).split(",")]
    nb = built[chapter][0]
    refs = [c for c in nb.cells if (c.metadata.get("dipnb") or {}).get("role") == "references"]
    if not keys:
        assert not refs
        return
    assert len(refs) == 1 and refs[0] is nb.cells[-1], f"{chapter}: one References cell, at the end"
    assert refs[0].source.startswith("## References")
    items = [line for line in refs[0].source.splitlines() if line.startswith("- ")]
    assert len(items) == len(set(keys)), f"{chapter}: {len(items)} references for {len(set(keys))} cited keys"
    text = "\n".join(s for _, s in _markdown(nb))
    for key in set(keys):
        entry = book.bib.entries[key]
        first = colab._last_names(entry.persons["author"][0])
        year = entry.fields["year"]
        cited = rf"[(;] ?{re.escape(first)}[^();]*, {year}[;)]"  # (A et al., 2019; B and C, 2020)
        assert re.search(cited, text), f"{chapter}: no ({first} ..., {year})"
        assert any(first in item and year in item for item in items), f"{chapter}: {key} not in the references"


def test_cite_variants_and_admonitions_convert():
    book = colab.load_book(ROOT)
    ctx = colab.Context(book=book, doc="notebooks/decoupling-1d", name="x.ipynb")
    text = (
        "{cite:t}`ulyanov2018deep` and {cite:p}`chakrabarty2019spectral,ulyanov2018deep`.\n\n"
        "```{admonition} In the paper\n:class: note\nBody with $x$.\n```\n\n"
        ":::{dropdown} More\nHidden text.\n:::\n\n"
        "```{note}\nA note.\n```\n\n"
        "```{math}\n:label: eq-decoupling-target\ny = 1\n```\n\n"
        "See {doc}`capacity`, {doc}`the errata </book/errata>` and [the API](../book/api.md).\n\n"
        "(some-target)=\n% a comment\n```{code-block} python\nprint({1: 2})\n```\n"
    )
    (seg,) = colab.convert_markdown(text, ctx)
    out = seg.text
    assert "Ulyanov et al. (2018) and (Chakrabarty and Maji, 2019; Ulyanov et al., 2018)." in out
    assert "> **In the paper**\n>\n> Body with $x$." in out
    assert "> **More**\n>\n> Hidden text." in out and "> **Note**\n>\n> A note." in out
    assert "$$\ny = 1\n\\tag{5.1}\n$$" in out  # the label's number in the book
    assert f"[{book.titles['notebooks/capacity']}]({SITE}notebooks/capacity.html)" in out
    assert f"[the errata]({SITE}book/errata.html)" in out and f"[the API]({SITE}book/api.html)" in out
    assert "```python\nprint({1: 2})\n```" in out and "some-target" not in out and "a comment" not in out


def test_figure_equation_and_exercise_numbers_follow_the_toc(built, book):
    """Chapter k of the numbered parts (in _toc.yml order) numbers its figures k.1, k.2, ..."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]
    for k, doc in enumerate(numbered, start=1):
        chapter = doc.split("/")[-1]
        if chapter not in built:
            continue
        src = nbformat.read(ROOT / f"{doc}.ipynb", as_version=4)
        src.cells = [c for c in src.cells if "remove-cell" not in (c.metadata.get("tags") or [])]  # not on the page
        nb = built[chapter][0]
        n_fig = sum(bool(((c.metadata.get("mystnb") or {}).get("figure") or {}).get("caption")) for c in src.cells)
        captions = [c.source for c in nb.cells if (c.metadata.get("dipnb") or {}).get("role") == "caption"]
        assert [re.match(r"\*\*Figure ([\d.]+)\.\*\*", s).group(1) for s in captions] == [
            f"{k}.{n}" for n in range(1, n_fig + 1)
        ], chapter
        n_eq = sum(len(EQUATION_LABEL.findall(c.source)) for c in src.cells if c.cell_type == "markdown")
        tags = re.findall(r"\\tag\{([\d.]+)\}", "\n".join(s for _, s in _markdown(nb)))
        assert tags == [f"{k}.{n}" for n in range(1, n_eq + 1)], chapter
        n_ex = sum(len(re.findall(r"^```\{exercise\}", c.source, re.M)) for c in src.cells)
        heads = [c.source.split("\n")[0] for c in nb.cells if (c.metadata.get("dipnb") or {}).get("role") == "exercise"]
        assert [h.lstrip("# ") for h in heads] == [f"Exercise {k}.{n}" for n in range(1, n_ex + 1)], chapter


@pytest.mark.parametrize("chapter", ids)
def test_captions_sit_under_their_figure(built, chapter):
    src = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    nb = built[chapter][0]
    code_out = [c for c in nb.cells if c.cell_type == "code"]
    code_src = [c for c in src.cells if c.cell_type == "code"]
    assert len(code_out) == len(code_src)
    for c_src, c_out in zip(code_src, code_out, strict=True):
        caption = ((c_src.metadata.get("mystnb") or {}).get("figure") or {}).get("caption")
        after = nb.cells[nb.cells.index(c_out) + 1] if nb.cells.index(c_out) + 1 < len(nb.cells) else None
        is_caption = after is not None and (after.metadata.get("dipnb") or {}).get("role") == "caption"
        assert is_caption == bool(caption), f"{chapter}: caption cell after {c_src.source[:60]!r}"
        if caption:  # the caption's words, whatever roles in it became
            plain = re.sub(r"\{[\w:]+\}`[^`]*`", "", caption)
            for word in re.findall(r"[A-Za-z]{5,}", plain)[:12]:
                assert word in after.source, f"{chapter}: {word!r} of the caption is missing"
        assert "mystnb" not in c_out.metadata


def _book_build(tmp_path: Path) -> Path:
    """A two-part book of three small chapters, built by Jupyter Book with the real numbering settings."""
    real = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx_config = real["sphinx"]["config"]
    config = {
        "title": "Numbering",
        "execute": {"execute_notebooks": "off"},
        "parse": real["parse"],
        "repository": real["repository"],
        "launch_buttons": real["launch_buttons"],
        "html": {"use_multitoc_numbering": real["html"].get("use_multitoc_numbering", True)},
        "bibtex_bibfiles": ["book/references.bib"],
        "sphinx": {
            "extra_extensions": ["sphinx_exercise"],
            "local_extensions": {"dipnb_book": str(ROOT / "tools")},
            "config": {k: sphinx_config[k] for k in ("numfig", "numfig_secnum_depth", "bibtex_reference_style")},
        },
    }
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "One", "numbered": True, "chapters": [{"file": "notebooks/alpha"}]},
            {"caption": "Two", "numbered": True, "chapters": [{"file": "notebooks/beta"}, {"file": "notebooks/gamma"}]},
            {"caption": "Appendix", "chapters": [{"file": "book/errata"}]},
        ],
    }
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "errata.md").write_text("# Errata\n\n```{dipnb-colab-links}\n```\n")
    (tmp_path / "book" / "references.bib").write_text((ROOT / "book" / "references.bib").read_text())
    (tmp_path / "notebooks").mkdir()
    png = (  # a 1x1 PNG, so that the figure cells have an image to caption
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    def figure(name, caption=True):
        cell = new_code_cell("1", execution_count=1, outputs=[new_output("display_data", data={"image/png": png})])
        if caption:
            cell.metadata["mystnb"] = {"figure": {"caption": f"Caption of {name}.", "name": name}}
        return cell

    setup = new_code_cell(f'import sys\nif "google.colab" in sys.modules:\n    %pip install -q "dipnb @ git+{REPO}"')
    chapters = {
        "alpha": [
            new_markdown_cell(
                "# Alpha\n\nSee {numref}`fig-alpha-2`, {numref}`fig-beta-1`, {eq}`eq-alpha-b`, "
                "{ref}`alpha-ex2` and {numref}`Figure %s <fig-gamma-1>`.\n\n"
                "$$\nx = 1\n$$ (eq-alpha-a)\n\n$$\ny = 2\n$$\n\n$$ z = 3 $$ (eq-alpha-b)"
            ),
            setup,
            figure("fig-alpha-1"),
            figure("fig-alpha-unnamed", caption=False),
            figure("fig-alpha-2"),
            new_markdown_cell("## Exercises\n\n```{exercise}\n:label: alpha-ex1\nOne.\n```"),
            new_markdown_cell("```{exercise} With a title\n:label: alpha-ex2\nTwo.\n```"),
        ],
        "beta": [
            new_markdown_cell("# Beta\n\n```{math}\n:label: eq-beta-a\nw = 4\n```\n\nThen {eq}`eq-beta-a`."),
            setup,
            figure("fig-beta-1"),
        ],
        "gamma": [new_markdown_cell("# Gamma\n\n$$\nv = 5\n$$ (eq-gamma-a)"), setup, figure("fig-gamma-1")],
    }
    for name, cells in chapters.items():
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    jb = Path(sys.executable).parent / "jupyter-book"
    run = subprocess.run([str(jb), "build", "-W", "-q", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return tmp_path / "_build" / "html"


def test_numbers_match_a_real_jupyter_book_build(tmp_path):
    """Figure, equation and exercise numbers and reference texts are those Jupyter Book prints."""
    html_dir = _book_build(tmp_path)
    book = colab.load_book(tmp_path)
    for name in ("alpha", "beta", "gamma"):
        html = (html_dir / "notebooks" / f"{name}.html").read_text()
        nb = colab.convert_notebook(tmp_path / "notebooks" / f"{name}.ipynb", book, REF)
        text = "\n".join(s for _, s in _markdown(nb))
        fig_html = re.findall(r'<span class="caption-number">Fig\. ([\d.]+) </span>', html)
        fig_colab = re.findall(r"\*\*Figure ([\d.]+)\.\*\*", text)
        assert fig_colab == fig_html, name
        ex_html = re.findall(r'<span class="caption-number">Exercise ([\d.]+) </span>', html)
        ex_colab = re.findall(r"^#+ Exercise ([\d.]+)", text, re.M)
        assert ex_colab == ex_html, name
        eq_html = re.findall(r'<span class="eqno">\(([\d.]+)\)', html)
        eq_colab = re.findall(r"\\tag\{([\d.]+)\}", text)
        assert eq_colab == eq_html, name
        if name == "alpha":  # references: the numbers the book prints, as text or as links
            refs = re.findall(r'<span class="std std-numref">([^<]+)</span>', html)
            assert refs[:2] == ["Fig. 1.2", "Fig. 2.1"] and "Exercise 1.2" in refs and "Figure 3.1" in refs
            assert "See Figure 1.2, [Figure 2.1](" in text and "(1.2)," in text and "Exercise 1.2" in text
            assert f"[Figure 3.1]({SITE}notebooks/gamma.html#fig-gamma-1)" in text
            assert re.search(r'href="#equation-eq-alpha-b">\(1\.2\)</a>', html)
    # The Colab button of a chapter opens its Colab notebook; the links list names both versions.
    owner, repo = urls.repo_slug(REPO)
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["launch_buttons"]["colab_branch"]
    base = f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}"
    html = (html_dir / "notebooks" / "beta.html").read_text()
    assert set(re.findall(r'https://colab\.research\.google\.com[^"]*', html)) == {f"{base}/colab/beta.ipynb"}
    links = (html_dir / "book" / "errata.html").read_text()
    for name in ("alpha", "beta", "gamma"):
        assert f'href="{base}/colab/{name}.ipynb"' in links and f'href="{base}/student/{name}.ipynb"' in links


# ---------------------------------------------------------------------------------------------
# Metadata, the pinned install, the Drive switch.


@pytest.mark.parametrize("chapter", ids)
def test_colab_metadata(built, chapter):
    nb = built[chapter][0]
    nbformat.validate(nb)
    assert nb.metadata["accelerator"] == "GPU"
    assert nb.metadata["colab"]["gpuType"] == "T4"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert all(c.metadata.get("id") == c.get("id") for c in nb.cells)
    assert all(not c.outputs for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("chapter", ids)
def test_install_line_is_pinned(built, chapter):
    nb = built[chapter][0]
    setup = [c for c in nb.cells if (c.metadata.get("dipnb") or {}).get("role") == "setup"]
    assert len(setup) == 1 and setup[0] is next(c for c in nb.cells if c.cell_type == "code")
    installs = [line.strip() for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
                if "pip install" in line]
    assert installs == [f'%pip install -q "dipnb @ git+{REPO}@{REF}"'], installs
    assert "KEEP_RESULTS_ON_DRIVE = False" in setup[0].source.splitlines()


def test_default_ref_is_the_checked_out_commit(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    sha = head.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert colab.main(["--out", str(tmp_path), str(NOTEBOOKS[0])]) == 0
    nb = nbformat.read(tmp_path / NOTEBOOKS[0].name, as_version=4)
    assert f'"dipnb @ git+{REPO}@{sha}"' in nb.cells[[c.cell_type for c in nb.cells].index("code")].source


def _run_setup(source: str, monkeypatch, on_colab: bool) -> tuple[list, list]:
    """Run a setup cell as IPython would, with Colab's modules faked; returns (magics, mounts)."""
    from IPython.core.inputtransformer2 import TransformerManager

    magics, mounts = [], []
    if on_colab:
        drive = types.SimpleNamespace(mount=lambda path: mounts.append(path))
        monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(drive=drive))
        monkeypatch.setitem(sys.modules, "google", types.SimpleNamespace(colab=sys.modules["google.colab"]))
    shell = types.SimpleNamespace(run_line_magic=lambda name, line: magics.append((name, line)))
    code = TransformerManager().transform_cell(source)
    exec(compile(code, "<setup>", "exec"), {"get_ipython": lambda: shell})  # noqa: S102
    return magics, mounts


def test_drive_switch_mounts_drive_and_moves_the_cache_only_when_set(built, monkeypatch, tmp_path):
    setup = next(c.source for c in built["quickstart"][0].cells if c.cell_type == "code")
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("DIPNB_CACHE", cache)
    magics, mounts = _run_setup(setup, monkeypatch, on_colab=False)
    assert magics == [] and mounts == []  # elsewhere the cell installs nothing
    magics, mounts = _run_setup(setup, monkeypatch, on_colab=True)
    assert [m[0] for m in magics] == ["pip"] and mounts == []
    import os

    assert os.environ["DIPNB_CACHE"] == cache  # switched off: the cache stays where it was
    switched = setup.replace("KEEP_RESULTS_ON_DRIVE = False", "KEEP_RESULTS_ON_DRIVE = True")
    magics, mounts = _run_setup(switched, monkeypatch, on_colab=True)
    assert mounts == ["/content/drive"]
    assert os.environ["DIPNB_CACHE"] == colab.DRIVE_CACHE and colab.DRIVE_CACHE.startswith("/content/drive/")


# ---------------------------------------------------------------------------------------------
# Solutions folded.


def _source_solutions(path: Path) -> list[list[int]]:
    """Indices of the cells of each solution in a chapter's source (solution-start ... solution-end)."""
    nb = nbformat.read(path, as_version=4)
    regions, current = [], None
    for i, cell in enumerate(nb.cells):
        if re.search(r"^```\{solution-start\}", cell.source, re.M):
            current = [i]
        elif current is not None:
            current.append(i)
        if current is not None and re.search(r"^```\{solution-end\}", cell.source, re.M):
            regions.append(current)
            current = None
    return regions


@pytest.mark.parametrize("chapter", ids)
def test_solutions_are_folded(built, chapter):
    nb = built[chapter][0]
    n_src = len(_source_solutions(ROOT / "notebooks" / f"{chapter}.ipynb"))
    headings = [c for c in nb.cells if (c.metadata.get("dipnb") or {}).get("role") == "solution-heading"]
    assert len(headings) == n_src
    assert nb.metadata["colab"]["collapsed_sections"] == [c["id"] for c in headings]
    for c in nb.cells:
        if (c.metadata.get("dipnb") or {}).get("solution") and c.cell_type == "code":
            assert c.source.startswith("#@title Solution\n") and c.metadata.get("cellView") == "form"
    for h in headings:  # the collapsed section ends where the solution ends
        level = len(re.match(r"^(#+) ", h.source).group(1))
        i = nb.cells.index(h) + 1
        while i < len(nb.cells) and (nb.cells[i].metadata.get("dipnb") or {}).get("solution"):
            i += 1
        if i < len(nb.cells):
            nxt = nb.cells[i]
            m = re.match(r"^(#+) ", nxt.source) if nxt.cell_type == "markdown" else None
            assert m and len(m.group(1)) <= level, f"{chapter}: cell {i} would fold into the solution"
    shown = [c for c in nb.cells if c.cell_type == "code" and not (c.metadata.get("dipnb") or {}).get("solution")
             and not colab.FOLDED_TAGS & set(c.metadata.get("tags") or [])]
    assert all(c.metadata.get("cellView") != "form" for c in shown)


def test_cells_the_book_hides(book, tmp_path):
    """Speaker notes (Markdown, remove-cell) are left out; hidden code runs, folded."""
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    notes = nbformat.v4.new_markdown_cell("Speaker notes: pause here and ask the room.")
    notes.metadata["tags"] = ["remove-cell"]
    hidden = nbformat.v4.new_code_cell("HIDDEN_VALUE = 3")
    hidden.metadata["tags"] = ["hide-input"]
    nb.cells[2:2] = [notes, hidden]
    path = tmp_path / "quickstart.ipynb"
    nbformat.write(nb, path)
    out = colab.convert_notebook(path, book, REF)
    assert not any("Speaker notes" in c.source for c in out.cells)
    (cell,) = [c for c in out.cells if "HIDDEN_VALUE = 3" in c.source]
    assert cell.source.startswith("#@title ") and cell.metadata["cellView"] == "form"
    assert cell.metadata["tags"] == ["hide-input"]


# ---------------------------------------------------------------------------------------------
# Bad input.

BAD = {
    "unknown directive": ("```{figure} plot.png\n:name: f\nA figure.\n```", "```{figure}"),
    "unknown role": ("A {kbd}`Ctrl` key.", "{kbd}`Ctrl`"),
    "unknown citation": ("As {cite}`nobody2020nothing` says.", "{cite}`nobody2020nothing`"),
    "unknown target": ("See {numref}`fig-does-not-exist`.", "{numref}`fig-does-not-exist`"),
    "unclosed fence": ("```{note}\nNever closed.", "```{note}"),
    "substitution": ("The value is {{ value }}.", "{{ value }}"),
    "unclosed solution": ("```{solution-start} quickstart-ex1\n:class: dropdown\n```", "```{solution-start}"),
    "solution to nothing": ("```{solution-start} no-such-exercise\n```", "```{solution-start}"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unknown_construct_fails_naming_notebook_cell_and_construct(tmp_path, capsys, case):
    text, construct = BAD[case]
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    at = len(nb.cells) - 1
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(text))
    bad = tmp_path / "src" / "mychapter.ipynb"
    bad.parent.mkdir()
    nbformat.write(nb, bad)
    out = tmp_path / "out"
    assert colab.main(["--out", str(out), "--ref", REF, str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "mychapter.ipynb" in err[0] and f"cell {at}" in err[0] and construct in err[0], err[0]
    assert not out.exists() or not any(out.iterdir()), "nothing may be written for a failing notebook"


def test_a_failing_notebook_keeps_its_previous_output(tmp_path):
    """A failed conversion leaves an earlier good output as it was (write to a temp file, rename)."""
    out = tmp_path / "out"
    good = tmp_path / "src" / "quickstart.ipynb"
    good.parent.mkdir()
    good.write_text((ROOT / "notebooks" / "quickstart.ipynb").read_text())
    assert colab.main(["--out", str(out), "--ref", REF, str(good)]) == 0
    before = (out / "quickstart.ipynb").read_bytes()
    nb = nbformat.read(good, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("```{figure} x.png\n```"))
    nbformat.write(nb, good)
    assert colab.main(["--out", str(out), "--ref", "1" * 40, str(good)]) == 2
    assert (out / "quickstart.ipynb").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["quickstart.ipynb"]


def test_bad_ref_is_refused(tmp_path, capsys):
    assert colab.main(["--out", str(tmp_path), "--ref", "main; rm -rf /"]) == 2
    assert "--ref" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Student notebooks.


def _words(text: str) -> list[str]:
    text = re.sub(r"\{[\w:]+\}`([^`]*)`", r" \1 ", text)  # a role's target stays a word, as in the output
    return re.findall(r"[a-z0-9]+", text.lower())


def _shingles(text: str, n: int = 6) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _solution_parts(path: Path):
    """(code lines, prose shingles) of a chapter's solutions that appear nowhere else in it."""
    nb = nbformat.read(path, as_version=4)
    inside = {i for region in _source_solutions(path) for i in region}
    sol_code, other_code, sol_prose, other_prose = set(), set(), set(), set()
    for i, cell in enumerate(nb.cells):
        caption = str(((cell.metadata.get("mystnb") or {}).get("figure") or {}).get("caption", ""))
        if cell.cell_type == "code":
            lines = {line.strip() for line in cell.source.splitlines() if len(line.strip()) >= 12}
            (sol_code if i in inside else other_code).update(lines)
            (sol_prose if i in inside else other_prose).update(_shingles(caption))
        else:
            text = re.sub(r"^```\{[^}]*\}.*$|^:\w+:.*$", "", cell.source, flags=re.M)
            (sol_prose if i in inside else other_prose).update(_shingles(text))
    return sol_code - other_code, sol_prose - other_prose


def _leaks(nb, code: set[str], prose: set) -> list[str]:
    text = "\n".join(c.source for c in nb.cells)
    lines = {line.strip() for line in text.splitlines()}
    return sorted(code & lines) + [" ".join(s) for s in sorted(prose & _shingles(text))]


@pytest.mark.parametrize("chapter", ids)
def test_no_solution_survives_in_the_student_notebook(built, chapter):
    code, prose = _solution_parts(ROOT / "notebooks" / f"{chapter}.ipynb")
    colab_nb, student_nb = built[chapter]
    if _source_solutions(ROOT / "notebooks" / f"{chapter}.ipynb"):
        assert code or prose
        assert _leaks(colab_nb, code, prose), "the check must see the solutions in the Colab notebook"
    leaks = _leaks(student_nb, code, prose)
    assert not leaks, f"{chapter}: solution text in the student notebook: {leaks[:5]}"
    assert not any((c.metadata.get("dipnb") or {}).get("solution") for c in student_nb.cells)


@pytest.mark.parametrize("chapter", ids)
def test_student_notebook_keeps_exercises_with_a_stub_each(built, chapter):
    colab_nb, student_nb = built[chapter]

    def exercises(nb):
        return [c.source for c in nb.cells if (c.metadata.get("dipnb") or {}).get("role") == "exercise"]

    assert exercises(student_nb) == exercises(colab_nb)
    solved = {(c.metadata.get("dipnb") or {}).get("solution") for c in colab_nb.cells} - {None}
    stubs = {}
    for c in student_nb.cells:
        meta = c.metadata.get("dipnb") or {}
        if meta.get("role") == "stub":
            stubs.setdefault(meta["exercise"], []).append(c)
    assert set(stubs) == solved
    for label, cells in stubs.items():
        kinds = {c.cell_type for c in colab_nb.cells if (c.metadata.get("dipnb") or {}).get("solution") == label
                 and (c.metadata.get("dipnb") or {}).get("role") not in ("solution-heading", "caption")}
        assert {c.cell_type for c in cells} == kinds, label
        for c in cells:
            if c.cell_type == "code":
                assert c.source.startswith("# Your code here")
    ids_left = {c["id"] for c in student_nb.cells}
    assert set(student_nb.metadata["colab"]["collapsed_sections"]) <= ids_left
    assert student_nb.metadata["accelerator"] == "GPU" and student_nb.metadata["colab"]["gpuType"] == "T4"


def test_stub_defines_what_later_cells_read(book, tmp_path):
    """A name only the solution defined, read by a later cell, is defined by the stub."""
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    regions = _source_solutions(ROOT / "notebooks" / "quickstart.ipynb")
    code = next(i for i in regions[0] if nb.cells[i].cell_type == "code")
    nb.cells[code].source += "\nanswer_window = (1, 2)"
    nb.cells.insert(regions[0][-1] + 1, nbformat.v4.new_code_cell("print(answer_window, len(good))"))
    path = tmp_path / "quickstart.ipynb"
    nbformat.write(nb, path)
    out = student.student_notebook(colab.convert_notebook(path, book, REF), path.name)
    (stub,) = [c for c in out.cells if (c.metadata.get("dipnb") or {}).get("role") == "stub" and c.cell_type == "code"]
    assert "answer_window = None" in stub.source and "good = None" in stub.source
    ns: dict = {}
    exec(stub.source, ns)  # noqa: S102
    assert ns["answer_window"] is None


def test_student_refuses_a_notebook_that_is_not_a_colab_notebook(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "quickstart.ipynb").write_text((ROOT / "notebooks" / "quickstart.ipynb").read_text())
    assert student.main(["--src", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quickstart.ipynb" in err[0] and "make colab" in err[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The site's Colab buttons.


def test_colab_button_opens_the_colab_notebook():
    book_ext = _load_tool("dipnb_book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["launch_buttons"].get("colab_url"), "the theme makes a Colab button only with colab_url"
    theme = {"repository_url": config["repository"]["url"], "launch_buttons": config["launch_buttons"]}
    app = types.SimpleNamespace(config=types.SimpleNamespace(html_theme_options=theme))

    def context():
        source = "https://colab.research.google.com/github/x/y/blob/main/notebooks/capacity.ipynb"
        return {"header_buttons": [{"label": "launch-buttons", "buttons": [{"text": "Colab", "url": source}]}]}

    ctx = context()
    book_ext.colab_buttons(app, "notebooks/capacity", "page.html", ctx, None)
    url = ctx["header_buttons"][0]["buttons"][0]["url"]
    owner, name = urls.repo_slug(REPO)
    branch = config["launch_buttons"]["colab_branch"]
    assert url == f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/colab/capacity.ipynb"
    other = context()
    book_ext.colab_buttons(app, "book/teaching", "page.html", other, None)
    assert other == context()


def test_urls_follow_from_repository_url():
    assert urls.site_url("https://github.com/Some-Owner/my-book") == "https://some-owner.github.io/my-book/"
    assert urls.site_url("https://github.com/owner/owner.github.io") == "https://owner.github.io/"
    assert urls.colab_notebook_url("https://github.com/o/r", "capacity", "student", "colab") == (
        "https://colab.research.google.com/github/o/r/blob/colab/student/capacity.ipynb"
    )
    with pytest.raises(ValueError, match="github.com/OWNER/NAME"):
        urls.repo_slug("https://gitlab.com/o/r")
