"""Colab notebooks from the chapters: ``make colab`` writes ``_build/colab/<chapter>.ipynb``.

The chapters in ``notebooks/`` are written for Jupyter Book: their Markdown is MyST (roles such
as ``{cite}`` and ``{numref}``, directives such as ```` ```{exercise} ````), their figure captions
live in cell metadata, and their solutions sit in plain view between ``{solution-start}`` and
``{solution-end}``. Colab renders none of that. This tool writes, from each chapter, a notebook
that Colab shows as the book does (derived, never committed; the publish workflow pushes
``_build/colab`` to the ``colab`` branch, where the site's Colab buttons point):

- **Markdown without MyST.** Citations become author-year text, ``(Ulyanov et al., 2018)``, read
  from ``book/references.bib``, with a "References" list at the end. ``{numref}`` becomes
  "Figure 5.2" and ``{eq}`` becomes "(5.1)", numbered the way the book numbers them: the
  chapter's number in the table of contents (``_toc.yml``; numbering runs on across parts, as
  ``html.use_multitoc_numbering`` makes it), then the figure's place among the chapter's
  captioned figures (``numfig_secnum_depth: 1`` in ``_config.yml``). Labelled equations keep
  their number as ``\\tag{5.1}``. ``{doc}`` becomes a link to the page on the published site
  (``https://OWNER.github.io/REPO/<page>.html``, from ``repository.url``). Admonitions and
  dropdowns become quoted blocks with a bold title; exercises become an "Exercise 5.1" heading.
  Math stays as it is.
- **Figure captions**, which the book reads from a code cell's ``mystnb.figure`` metadata,
  become a Markdown cell under that code cell.
- **Cells the book hides.** A Markdown cell tagged ``remove-cell`` (a slide's speaker notes) is
  left out, as on the page. A code cell tagged ``remove-cell``, ``remove-input``, ``hide-input``
  or ``hide-cell`` stays (it must run) in Colab's form view, folded as on the page.
- **Solutions folded.** Each solution gets a heading cell, "Solution to Exercise 5.1", whose
  section starts collapsed: the notebook metadata ``colab.collapsed_sections`` lists it. Colab
  honours that list when it opens a notebook (googlecolab/colabtools issue 438, where a
  maintainer confirms the collapsed state is saved there). Inside, each solution code cell is
  in Colab's form view: its first line is ``#@title Solution`` and its metadata has
  ``"cellView": "form"``, so Colab shows the title and hides the code until it is
  double-clicked, and "Run all" still runs it. This is how Colab's own example notebooks fold
  code (googlecolab/colabtools, ``notebooks/Gemini_and_Stable_Diffusion.ipynb``).
- **A GPU runtime.** The notebook metadata holds ``"accelerator": "GPU"`` and
  ``"colab": {"gpuType": "T4"}``, the format Colab itself writes (same notebook), and a
  ``python3`` kernelspec.
- **A pinned install.** The setup cell installs ``dipnb`` at the commit that built the site
  (``git rev-parse HEAD``, or ``--ref``): ``%pip install -q "dipnb @ git+URL@<sha>"``.
- **Results that survive a disconnect.** One opt-in line in the setup cell,
  ``KEEP_RESULTS_ON_DRIVE = False``: set to True, it mounts Google Drive and points
  ``DIPNB_CACHE`` at ``MyDrive/dipnb/results``.

Cells the converter makes or changes carry ``metadata.dipnb``: ``role`` (``setup``,
``exercise``, ``solution-heading``, ``caption``, ``references``), ``exercise`` (an exercise's
label) and, on every cell of a solution, ``solution`` (the label of its exercise).
``tools/student.py`` reads them to write the student notebooks.

A construct the converter does not know fails the notebook with one line naming the notebook,
the cell and the construct; nothing is written for that notebook (each one is written to a
temporary file and renamed only when it is complete). ``python tools/colab.py --help``.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

TOOLS = Path(__file__).resolve().parent
if str(TOOLS) not in sys.path:  # the URL helpers live beside this file
    sys.path.insert(0, str(TOOLS))
import sync_colab_url as urls  # noqa: E402

ROOT = TOOLS.parent

__all__ = [
    "ConvertError",
    "Book",
    "load_book",
    "convert_notebook",
    "write_notebook",
    "colab_setup",
    "build_ref",
    "main",
]

DRIVE_CACHE = "/content/drive/MyDrive/dipnb/results"
SWITCH = "KEEP_RESULTS_ON_DRIVE"

# Directives shown as a quoted block: name -> default title (None: the title is the argument).
ADMONITIONS = {
    "note": "Note",
    "warning": "Warning",
    "tip": "Tip",
    "important": "Important",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "hint": "Hint",
    "seealso": "See also",
    "admonition": None,
    "dropdown": None,
    "topic": None,
    "sidebar": None,
    "margin": None,
}
# Code cells whose code the book does not show: folded in Colab's form view too (they still run).
FOLDED_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
CODE_DIRECTIVES = {"code-block", "code", "sourcecode"}
EXERCISE_DIRECTIVES = {"exercise", "exercise-start", "exercise-end", "solution", "solution-start", "solution-end"}
KNOWN_DIRECTIVES = sorted(set(ADMONITIONS) | CODE_DIRECTIVES | EXERCISE_DIRECTIVES | {"math"})
CITE_ROLES = {
    "cite", "cite:p", "cite:ps", "cite:t", "cite:ts", "cite:ct", "cite:cts", "cite:alp", "cite:alps",
    "cite:author", "cite:authors", "cite:year", "cite:yearpar",
}
OTHER_ROLES = {"numref", "ref", "eq", "doc", "math", "sub", "sup", "abbr", "term"}
KNOWN_ROLES = sorted(CITE_ROLES | OTHER_ROLES)

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[^{}\s]+)\}[ \t]*(?P<arg>.*)$")
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
TARGET_LINE = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
COMMENT_LINE = re.compile(r"^[ \t]*%")
BLOCK_BREAK = re.compile(r"^[ \t]*\+\+\+")
HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$")
MATH_OPEN = re.compile(r"^(?P<indent>[ \t]*)\$\$")
MATH_LABEL = re.compile(r"\$\$[ \t]*\((?P<label>[^()\s]+)\)[ \t]*$")
# Inline: a role, an inline code span, inline or display math, a link; tried in this order.
INLINE = re.compile(
    r"(?P<role>\{(?P<rname>[A-Za-z][\w:.+-]*)\}(?P<rticks>`+)(?P<rbody>.+?)(?P=rticks))"
    r"|(?P<code>(?P<cticks>`+).+?(?P=cticks))"
    r"|(?P<math>\$\$.+?\$\$|\$[^$\n]+\$)"
    r"|(?P<link>(?P<bang>!?)\[(?P<ltext>[^\]\n]*)\]\((?P<lurl>[^)\s]+)\))",
    re.S,
)
SUBSTITUTION = re.compile(r"\{\{.*?\}\}", re.S)
TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
INSTALL_LINE = re.compile(
    r'^(?P<indent>[ \t]*)%pip install (?P<flags>[^"\n]*)"dipnb\s*@\s*git\+(?P<url>[^"@\s]+)(@[^"\s]+)?"[^\n]*$', re.M
)


class ConvertError(Exception):
    """A chapter holds something the converter cannot turn into Colab Markdown.

    ``str(error)`` is one line: the notebook, the cell index, the construct, and why.
    """

    def __init__(self, notebook: str, cell: int | None, construct: str, why: str):
        self.notebook, self.cell, self.construct, self.why = notebook, cell, construct, why
        where = f"{notebook}, cell {cell}" if cell is not None else notebook
        super().__init__(f"{where}: {construct}: {why}")


# ------------------------------------------------------------------------------------------
# The book: chapter numbers, figure/equation/exercise numbers, page titles, the bibliography.


@dataclass(frozen=True)
class Target:
    """Something a role can point at: a numbered figure, equation or exercise, or a section."""

    kind: str  # "figure" | "equation" | "exercise" | "section"
    doc: str  # the page that holds it, e.g. "notebooks/capacity"
    number: str | None  # "5.2" (None: unnumbered, or a section)
    text: str  # caption, section title or exercise title ("" if none)


@dataclass
class Book:
    """What the converter needs to know about the whole book."""

    root: Path
    repo: str  # https://github.com/OWNER/REPO
    site: str  # https://OWNER.github.io/REPO/
    title: str
    chapter_numbers: dict[str, str | None]  # docname -> "5" (None: not numbered)
    titles: dict[str, str]  # docname -> page title, every page of the book
    targets: dict[str, Target]  # label -> target, over every chapter
    bib: object  # pybtex BibliographyData
    figures: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # doc -> [(cell, number, label)]

    def page_url(self, doc: str, label: str | None = None) -> str:
        url = f"{self.site}{doc}.html"
        if not label:
            return url
        target = self.targets.get(label)
        anchor = f"equation-{label}" if target is not None and target.kind == "equation" else label
        return f"{url}#{anchor}"


def _strip_ext(path: str) -> str:
    for ext in (".ipynb", ".md"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def _toc_numbers(toc: dict, multitoc: bool) -> dict[str, str | None]:
    """Chapter number of every top-level entry of ``_toc.yml`` (None outside numbered parts)."""
    parts = toc.get("parts") or [{"chapters": toc.get("chapters") or [], "numbered": toc.get("numbered", False)}]
    numbers: dict[str, str | None] = {}
    count = 0
    for part in parts:
        if not multitoc:
            count = 0
        for chapter in part.get("chapters") or []:
            doc = chapter.get("file")
            if not doc:
                continue
            if part.get("numbered"):
                count += 1
                numbers[_strip_ext(doc)] = str(count)
            else:
                numbers[_strip_ext(doc)] = None
    return numbers


def _md_title(text: str) -> str | None:
    for line in text.splitlines():
        m = HEADING.match(line)
        if m and len(m.group("hashes")) == 1:
            return m.group("text").strip()
    return None


def _notebook_title(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            title = _md_title(cell.source)
            if title:
                return title
    return None


# Numbered things in a chapter's Markdown, in order of appearance.
_EVENTS = re.compile(
    r"(?P<eq>\$\$[ \t]*\((?P<eqlabel>[^()\s]+)\)[ \t]*$)"
    r"|(?P<dir>^[ \t]*(?:`{3,}|~{3,}|:{3,})\{(?P<dname>[\w:-]+)\}(?P<darg>[^\n]*)\n"
    r"(?P<dopts>(?:[ \t]*:[\w-]+:[^\n]*\n)*))"
    r"|(?P<target>^[ \t]*\((?P<tlabel>[^()\s]+)\)=[ \t]*\n(?:[ \t]*\n)*#+[ \t]+(?P<heading>[^\n]+))",
    re.M,
)


def _options(block: str) -> dict[str, str]:
    opts = {}
    for line in block.splitlines():
        m = OPTION.match(line)
        if m:
            opts[m.group("key")] = m.group("value").strip()
    return opts


def _number(prefix: str | None, n: int) -> str:
    return f"{prefix}.{n}" if prefix else str(n)


def _scan_chapter(doc: str, nb, prefix: str | None, targets: dict[str, Target], figures: list) -> None:
    """Record the chapter's figures, labelled equations, exercises and section targets."""
    n_fig = n_eq = n_ex = 0
    for i, cell in enumerate(nb.cells):
        if "remove-cell" in (cell.metadata.get("tags") or []):
            continue  # not on the page, so not numbered
        if cell.cell_type == "code":
            fig = (cell.metadata.get("mystnb") or {}).get("figure") or {}
            if fig.get("caption"):
                n_fig += 1
                number = _number(prefix, n_fig)
                label = fig.get("name") or ""
                figures.append((i, number, label))
                if label:
                    targets[label] = Target("figure", doc, number, fig["caption"])
            continue
        if cell.cell_type != "markdown":
            continue
        for m in _EVENTS.finditer(cell.source):
            if m.group("eq"):
                n_eq += 1
                targets[m.group("eqlabel")] = Target("equation", doc, _number(prefix, n_eq), "")
            elif m.group("dir"):
                name, opts = m.group("dname"), _options(m.group("dopts") or "")
                if name == "math" and opts.get("label"):
                    n_eq += 1
                    targets[opts["label"]] = Target("equation", doc, _number(prefix, n_eq), "")
                elif name in ("exercise", "exercise-start"):
                    number = None
                    if "nonumber" not in opts:
                        n_ex += 1
                        number = _number(prefix, n_ex)
                    if opts.get("label"):
                        targets[opts["label"]] = Target("exercise", doc, number, m.group("darg").strip())
            elif m.group("target"):
                targets[m.group("tlabel")] = Target("section", doc, None, m.group("heading").strip())


def load_book(root: Path = ROOT) -> Book:
    """Read ``_config.yml``, ``_toc.yml``, every page title, every chapter's numbered targets."""
    from pybtex.database import parse_file

    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    toc = yaml.safe_load((root / "_toc.yml").read_text()) or {}
    repo = urls.repository_url(root / "_config.yml")
    multitoc = bool((config.get("html") or {}).get("use_multitoc_numbering", True))
    numbers = _toc_numbers(toc, multitoc)
    titles: dict[str, str] = {}
    for md in sorted((root / "book").glob("*.md")):
        title = _md_title(md.read_text())
        if title:
            titles[f"book/{md.stem}"] = title
    targets: dict[str, Target] = {}
    figures: dict[str, list] = {}
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        doc = f"notebooks/{path.stem}"
        nb = nbformat.read(path, as_version=4)
        titles[doc] = _notebook_title(nb) or path.stem
        figures[doc] = []
        _scan_chapter(doc, nb, numbers.get(doc), targets, figures[doc])
    bibfiles = (config.get("bibtex_bibfiles") or ["book/references.bib"])
    bib = parse_file(str(root / bibfiles[0]))
    for extra in bibfiles[1:]:
        for key, entry in parse_file(str(root / extra)).entries.items():
            bib.entries[key] = entry
    return Book(
        root=root,
        repo=repo,
        site=urls.site_url(repo),
        title=str(config.get("title") or ""),
        chapter_numbers=numbers,
        titles=titles,
        targets=targets,
        bib=bib,
        figures=figures,
    )


# ------------------------------------------------------------------------------------------
# Markdown: MyST in, CommonMark + dollar math out.


@dataclass
class Text:
    text: str


@dataclass
class Exercise:
    label: str
    heading: str  # "Exercise 5.1" or "Exercise 5.1 (title)"
    body: str
    gated: bool = False  # exercise-start: the body continues in the following cells


@dataclass
class ExerciseEnd:
    pass


@dataclass
class SolutionStart:
    label: str  # the exercise's label


@dataclass
class SolutionEnd:
    pass


@dataclass
class Solution:
    label: str
    body: str


@dataclass
class Context:
    """The state of one notebook's conversion."""

    book: Book
    doc: str  # "notebooks/capacity"
    name: str  # the notebook's path as shown in errors
    cell: int | None = None
    cited: list[str] = field(default_factory=list)
    level: int = 1  # level of the last heading of the chapter's own text

    def fail(self, construct: str, why: str) -> ConvertError:
        return ConvertError(self.name, self.cell, construct, why)


def _last_names(person) -> str:
    from pybtex.richtext import Text as RichText

    parts = list(person.prelast_names) + list(person.last_names)
    return RichText.from_latex(" ".join(parts)).render_as("text")


def _authors(entry, full: bool) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_names(p) for p in persons]
    if not names:
        return str(entry.fields.get("title", entry.key))
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    if not full:
        return f"{names[0]} et al."
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def _cite(role: str, body: str, ctx: Context) -> str:
    keys = [k.strip() for k in body.split(",") if k.strip()]
    entries = []
    for key in keys:
        if key not in ctx.book.bib.entries:
            raise ctx.fail(f"{{{role}}}`{body}`", f"unknown citation key {key!r} (not in book/references.bib)")
        entries.append(ctx.book.bib.entries[key])
        if key not in ctx.cited:
            ctx.cited.append(key)
    full = role in ("cite:ps", "cite:ts", "cite:cts", "cite:alps", "cite:authors")
    years = [str(e.fields.get("year", "n.d.")) for e in entries]
    names = [_authors(e, full) for e in entries]
    if role in ("cite", "cite:p", "cite:ps"):
        return "(" + "; ".join(f"{n}, {y}" for n, y in zip(names, years, strict=True)) + ")"
    if role in ("cite:t", "cite:ts", "cite:ct", "cite:cts"):
        return ", ".join(f"{n} ({y})" for n, y in zip(names, years, strict=True))
    if role in ("cite:alp", "cite:alps"):
        return "; ".join(f"{n}, {y}" for n, y in zip(names, years, strict=True))
    if role in ("cite:author", "cite:authors"):
        return ", ".join(names)
    if role == "cite:year":
        return ", ".join(years)
    return "(" + ", ".join(years) + ")"  # cite:yearpar


def _target(label: str, ctx: Context, construct: str, kinds: tuple[str, ...]) -> Target:
    target = ctx.book.targets.get(label)
    if target is None:
        raise ctx.fail(construct, f"no figure, equation, exercise or section of the book is labelled {label!r}")
    if target.kind not in kinds:
        raise ctx.fail(construct, f"{label!r} is a {target.kind}; this role points at a {' or '.join(kinds)}")
    return target


def _default_text(target: Target) -> str:
    if target.kind == "figure":
        return f"Figure {target.number}"
    if target.kind == "equation":
        return f"({target.number})"
    if target.kind == "exercise":
        return f"Exercise {target.number}" if target.number else "Exercise"
    return target.text


def _link(text: str, target: Target, label: str, ctx: Context) -> str:
    """Plain text for a target in this chapter; a link to the site for one elsewhere."""
    if target.doc == ctx.doc:
        return text
    return f"[{text}]({ctx.book.page_url(target.doc, label)})"


def _role(name: str, body: str, ctx: Context) -> str:
    construct = f"{{{name}}}`{body}`"
    if name in CITE_ROLES:
        return _cite("cite" if name == "cite" else name, body, ctx)
    titled = TITLED.match(body)
    title, label = (titled.group("title"), titled.group("target").strip()) if titled else (None, body.strip())
    if name == "numref":
        target = _target(label, ctx, construct, ("figure", "equation", "exercise"))
        if title:
            text = title.replace("%s", str(target.number)).replace("{number}", str(target.number))
            text = text.replace("{name}", target.text)
        else:
            text = _default_text(target) if target.kind != "equation" else f"Equation {target.number}"
        return _link(text, target, label, ctx)
    if name == "ref":
        target = _target(label, ctx, construct, ("figure", "equation", "exercise", "section"))
        return _link(title or _default_text(target), target, label, ctx)
    if name == "eq":
        target = _target(label, ctx, construct, ("equation",))
        return _link(title or f"({target.number})", target, label, ctx)
    if name == "doc":
        doc = label.split("#")[0]
        here = posixpath.dirname(ctx.doc)
        doc = _strip_ext(doc[1:] if doc.startswith("/") else posixpath.normpath(posixpath.join(here, doc)))
        if doc not in ctx.book.titles:
            raise ctx.fail(construct, f"the book has no page {doc!r}")
        return f"[{title or ctx.book.titles[doc]}]({ctx.book.page_url(doc)})"
    if name == "math":
        return f"${body}$"
    if name in ("sub", "sup"):
        return f"<{name}>{body}</{name}>"
    if name in ("abbr", "term"):
        return title or body
    raise ctx.fail(construct, f"unknown role {{{name}}}; known roles: {', '.join(KNOWN_ROLES)}")


def _inline(text: str, ctx: Context) -> str:
    """Roles to plain Markdown; code spans and math untouched; book-relative links to the site."""

    def repl(m: re.Match) -> str:
        if m.group("role"):
            return _role(m.group("rname"), m.group("rbody"), ctx)
        if m.group("link"):
            url = m.group("lurl")
            if re.match(r"^[a-z][a-z0-9+.-]*:|^#", url, re.I):
                return m.group(0)
            if m.group("bang"):
                raise ctx.fail(m.group(0), "an image with a relative path, which Colab cannot load")
            path, _, anchor = url.partition("#")
            doc = _strip_ext(posixpath.normpath(posixpath.join(posixpath.dirname(ctx.doc), path)))
            if doc not in ctx.book.titles:
                raise ctx.fail(m.group(0), f"a link to {url!r}, which is not a page of the book")
            return f"[{m.group('ltext')}]({ctx.book.page_url(doc)}{'#' + anchor if anchor else ''})"
        return m.group(0)

    out = INLINE.sub(repl, text)
    # What remains outside code and math must hold no role and no substitution.
    rest = INLINE.sub(lambda m: "" if (m.group("code") or m.group("math")) else m.group(0), out)
    sub = SUBSTITUTION.search(rest)
    if sub:
        raise ctx.fail(sub.group(0), "a MyST substitution, which has no value outside the book")
    return out


def _find_close(lines: list[str], start: int, fence: str) -> int | None:
    char, width = fence[0], len(fence)
    close = re.compile(rf"^[ \t]*{re.escape(char)}{{{width},}}[ \t]*$")
    for j in range(start, len(lines)):
        if close.match(lines[j]):
            return j
    return None


def _dedent(lines: list[str], indent: str) -> list[str]:
    return [line[len(indent):] if line.startswith(indent) else line.lstrip(" \t") for line in lines]


def _split_options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """Directive options (``:key: value`` lines or a ``---`` YAML block) and the content after them."""
    opts: dict[str, str] = {}
    if body and body[0].strip() == "---":
        for j in range(1, len(body)):
            if body[j].strip() == "---":
                data = yaml.safe_load("\n".join(body[1:j])) or {}
                return {str(k): "" if v is None else str(v) for k, v in data.items()}, body[j + 1 :]
        return opts, body
    i = 0
    while i < len(body):
        m = OPTION.match(body[i])
        if not m:
            break
        opts[m.group("key")] = m.group("value").strip()
        i += 1
    return opts, body[i:]


def _quote(title: str, body: str, indent: str) -> str:
    lines = [f"**{title}**"] + (["", *body.strip("\n").split("\n")] if body.strip() else [])
    return "\n".join(f"{indent}> {line}" if line.strip() else f"{indent}>" for line in lines)


def _text_only(segments: list, ctx: Context, construct: str) -> str:
    for seg in segments:
        if not isinstance(seg, Text):
            raise ctx.fail(construct, "an exercise or solution inside it, which Colab cannot fold there")
    return "\n".join(seg.text for seg in segments)


def _exercise_heading(label: str, arg: str, ctx: Context) -> str:
    target = ctx.book.targets.get(label) if label else None
    number = target.number if target is not None and target.doc == ctx.doc else None
    heading = f"Exercise {number}" if number else "Exercise"
    return f"{heading} ({arg})" if arg else heading


def _directive(name: str, arg: str, fence: str, body: list[str], indent: str, ctx: Context) -> list:
    construct = f"{fence}{{{name}}}"
    opts, content = _split_options(body)
    if name in ADMONITIONS:
        title = ADMONITIONS[name]
        if title is None:
            title = arg.strip() or ("Details" if name == "dropdown" else "")
            if not title:
                raise ctx.fail(construct, "an admonition without a title")
        elif arg.strip():
            content = [arg.strip(), *content]
        inner = _text_only(convert_markdown("\n".join(content), ctx, depth=1), ctx, construct)
        return [Text(_quote(_inline(title, ctx), inner, indent))]
    if name in CODE_DIRECTIVES:
        return [Text("\n".join([f"{indent}```{arg.strip()}", *[indent + line for line in content], f"{indent}```"]))]
    if name == "math":
        lines = [f"{indent}$$", *[indent + line for line in content]]
        if opts.get("label"):
            target = _target(opts["label"], ctx, construct, ("equation",))
            lines.append(f"{indent}\\tag{{{target.number}}}")
        return [Text("\n".join([*lines, f"{indent}$$"]))]
    if name in ("exercise", "exercise-start"):
        if indent:
            raise ctx.fail(construct, "an indented exercise; exercises must start at the left margin")
        label = opts.get("label", "")
        inner = _text_only(convert_markdown("\n".join(content), ctx, depth=1), ctx, construct)
        return [Exercise(label, _exercise_heading(label, arg.strip(), ctx), inner, gated=name == "exercise-start")]
    if name == "exercise-end":
        return [ExerciseEnd()]
    if name in ("solution", "solution-start"):
        label = arg.strip()
        target = ctx.book.targets.get(label)
        if target is None or target.kind != "exercise":
            raise ctx.fail(construct, f"a solution to {label!r}, which is not the label of an exercise")
        if indent:
            raise ctx.fail(construct, "an indented solution; solutions must start at the left margin")
        if name == "solution-start":
            return [SolutionStart(label)]
        inner = _text_only(convert_markdown("\n".join(content), ctx, depth=1), ctx, construct)
        return [Solution(label, inner)]
    if name == "solution-end":
        return [SolutionEnd()]
    raise ctx.fail(construct, f"unknown directive; known directives: {', '.join(KNOWN_DIRECTIVES)}")


def convert_markdown(text: str, ctx: Context, depth: int = 0) -> list:
    """One Markdown cell's MyST as Colab Markdown, split at exercises and solutions.

    Returns a list of :class:`Text`, :class:`Exercise`, :class:`ExerciseEnd`,
    :class:`SolutionStart`, :class:`SolutionEnd` and :class:`Solution` segments.
    Raises :class:`ConvertError` for a construct it does not know.
    """
    lines = text.split("\n")
    segments: list = []
    out: list[str] = []
    buffer: list[str] = []

    def flush_buffer() -> None:
        if buffer:
            out.append(_inline("\n".join(buffer), ctx))
            buffer.clear()

    def flush_text() -> None:
        flush_buffer()
        joined = "\n".join(out).strip("\n")
        if joined.strip():
            segments.append(Text(joined))
        out.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE_OPEN.match(line)
        if fence and not (fence.group("fence")[0] == "`" and "`" in fence.group("info")):
            indent, mark, info = fence.group("indent"), fence.group("fence"), fence.group("info").strip()
            close = _find_close(lines, i + 1, mark)
            directive = DIRECTIVE_INFO.match(info)
            if directive:
                construct = f"{mark}{{{directive.group('name')}}}"
                if close is None:
                    raise ctx.fail(construct, f"an unclosed fence: no closing {mark} line")
                body = _dedent(lines[i + 1 : close], indent)
                result = _directive(directive.group("name"), directive.group("arg"), mark, body, indent, ctx)
                if all(isinstance(r, Text) for r in result):
                    flush_buffer()
                    out.extend(r.text for r in result)
                else:
                    flush_text()
                    segments.extend(result)
                i = close + 1
                continue
            if mark[0] == ":":
                raise ctx.fail(line.strip(), "a colon fence without a {directive}")
            flush_buffer()  # a code block: copied as it is
            end = close if close is not None else len(lines) - 1
            out.extend(lines[i : end + 1])
            i = end + 1
            continue
        math = MATH_OPEN.match(line)
        if math:
            flush_buffer()
            rest = line[math.end() :]
            end = i if "$$" in rest else None
            if end is None:
                end = next((j for j in range(i + 1, len(lines)) if "$$" in lines[j]), None)
            if end is None:
                raise ctx.fail("$$", "display math without a closing $$")
            block = lines[i : end + 1]
            label = MATH_LABEL.search(block[-1])
            if label:  # $$ ... $$ (label): the book's number as a \tag
                target = _target(label.group("label"), ctx, f"$$ ({label.group('label')})", ("equation",))
                before = block[-1][: label.start()].rstrip()
                tag = f"\\tag{{{target.number}}}"
                if len(block) == 1:
                    block = [f"{before} {tag} $$"]
                else:
                    indent = math.group("indent")
                    block = [*block[:-1], *([before] if before.strip() else []), f"{indent}{tag}", f"{indent}$$"]
            out.extend(block)
            i = end + 1
            continue
        if TARGET_LINE.match(line) or COMMENT_LINE.match(line) or BLOCK_BREAK.match(line):
            i += 1
            continue
        heading = HEADING.match(line)
        if heading and depth == 0:
            ctx.level = len(heading.group("hashes"))
        buffer.append(line)
        i += 1
    flush_text()
    return segments


# ------------------------------------------------------------------------------------------
# The setup cell: a pinned install and the opt-in Drive cache.


def colab_setup(source: str, repo: str, ref: str) -> str | None:
    """The setup cell for Colab, or None when ``source`` has no ``dipnb @ git+URL`` install line.

    The install line is pinned to ``ref``; an opt-in switch (``KEEP_RESULTS_ON_DRIVE = False``)
    goes before the Colab guard, and under the install line a block that, when the switch is
    True, mounts Google Drive and points ``DIPNB_CACHE`` at a folder there.
    """
    m = INSTALL_LINE.search(source)
    if not m:
        return None
    indent = m.group("indent")
    lines = source.split("\n")
    k = source[: m.start()].count("\n")
    flags = m.group("flags").strip()
    lines[k] = f'{indent}%pip install {flags + " " if flags else ""}"dipnb @ git+{repo}@{ref}"'
    drive = [
        f"{indent}if {SWITCH}:",
        f"{indent}    import os",
        f"{indent}    from google.colab import drive",
        f'{indent}    drive.mount("/content/drive")',
        f'{indent}    os.environ["DIPNB_CACHE"] = "{DRIVE_CACHE}"',
    ]
    lines[k + 1 : k + 1] = drive
    guard = k
    for j in range(k - 1, -1, -1):  # the `if "google.colab" in sys.modules:` the install sits under
        stripped = lines[j].lstrip(" \t")
        if stripped and len(lines[j]) - len(stripped) < len(indent):
            guard = j
            break
    pad = lines[guard][: len(lines[guard]) - len(lines[guard].lstrip(" \t"))]
    lines[guard:guard] = [
        f"{pad}# True: keep the results in your Google Drive, so that they survive a disconnect.",
        f"{pad}{SWITCH} = False",
    ]
    return "\n".join(lines)


def build_ref(root: Path = ROOT) -> str:
    """The commit the site is built from: ``git rev-parse HEAD`` in ``root``."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot read the commit with `git rev-parse HEAD` ({exc}); pass --ref SHA_OR_TAG") from exc
    return out.stdout.strip()


# ------------------------------------------------------------------------------------------
# A chapter as a Colab notebook.


def _cell_id(chapter: str, n: int) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{chapter}-{n}")[:64]


def _references(ctx: Context) -> str:
    from pybtex.plugin import find_plugin

    style = find_plugin("pybtex.style.formatting", "plain")()
    backend = find_plugin("pybtex.backends", "markdown")()
    entries = [ctx.book.bib.entries[k] for k in ctx.cited]
    items = [" ".join(fe.text.render(backend).split("\n")) for fe in style.format_entries(entries)]
    return "## References\n\n" + "\n".join(f"- {item}" for item in items)


def _banner(book: Book, doc: str) -> str:
    return (
        f"*A chapter of [{book.title}]({book.site}): [this chapter on the site]({book.page_url(doc)}), "
        "with every figure drawn. Run the cells in order; the first one sets things up.*"
    )


def convert_notebook(path: Path, book: Book, ref: str, name: str | None = None):
    """The Colab notebook of the chapter at ``path`` (an nbformat NotebookNode; nothing is written).

    ``ref`` is the commit or tag the install line pins. Raises :class:`ConvertError`.
    """
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    name = name or str(path)
    chapter = Path(path).stem
    doc = f"notebooks/{chapter}"
    src = nbformat.read(path, as_version=4)
    ctx = Context(book=book, doc=doc, name=name)
    cells: list = []
    collapsed: list[str] = []
    solution: dict | None = None  # {"label", "level", "heading": index in cells}
    exercise_open: tuple[str, int] | None = None  # (label, cell) of an exercise-start not yet ended
    setup_done = False
    captions = {i: number for i, number, _ in book.figures.get(doc, [])}

    def add(cell, role: str | None = None, exercise: str | None = None):
        n = len(cells)
        cell["id"] = _cell_id(chapter, n)
        cell.metadata["id"] = cell["id"]
        meta = {}
        if role:
            meta["role"] = role
        if exercise:
            meta["exercise"] = exercise
        if solution is not None:  # every cell of a solution names its exercise
            meta["solution"] = solution["label"]
        if meta:
            cell.metadata["dipnb"] = meta
        cells.append(cell)
        return cell

    def number_of(label: str) -> str:
        target = book.targets[label]
        return f"Exercise {target.number}" if target.number else "the exercise"

    def open_solution(label: str, construct: str):
        nonlocal solution
        if solution is not None:
            raise ctx.fail(construct, f"a solution opened inside the solution to {solution['label']!r}")
        level = min(ctx.level + 1, 6)
        solution = {"label": label, "level": level, "start": len(cells), "cell": ctx.cell}
        heading = add(new_markdown_cell(f"{'#' * level} Solution to {number_of(label)}"), role="solution-heading")
        collapsed.append(heading["id"])

    def close_solution(construct: str):
        nonlocal solution
        if solution is None:
            raise ctx.fail(construct, "a solution-end without a solution-start")
        solution["end"] = len(cells)
        regions.append(solution)
        solution = None

    regions: list[dict] = []
    for i, cell in enumerate(src.cells):
        ctx.cell = i
        tags = list(cell.metadata.get("tags") or [])
        if cell.cell_type == "markdown" and "remove-cell" in tags:
            continue  # not on the page (speaker notes, for one): not in the notebook either
        if cell.cell_type == "markdown":
            for seg in convert_markdown(cell.source, ctx):
                if isinstance(seg, Text):
                    add(new_markdown_cell(seg.text))
                elif isinstance(seg, Exercise):
                    if solution is not None:
                        raise ctx.fail("```{exercise}", "an exercise inside a solution")
                    level = min(ctx.level + 1, 6)
                    body = f"\n\n{seg.body}" if seg.body.strip() else ""
                    add(new_markdown_cell(f"{'#' * level} {seg.heading}{body}"), role="exercise", exercise=seg.label)
                    if seg.gated:
                        exercise_open = (seg.label, i)
                elif isinstance(seg, ExerciseEnd):
                    if exercise_open is None:
                        raise ctx.fail("```{exercise-end}", "an exercise-end without an exercise-start")
                    exercise_open = None
                elif isinstance(seg, SolutionStart):
                    open_solution(seg.label, "```{solution-start}")
                elif isinstance(seg, SolutionEnd):
                    close_solution("```{solution-end}")
                elif isinstance(seg, Solution):
                    open_solution(seg.label, "```{solution}")
                    if seg.body.strip():
                        add(new_markdown_cell(seg.body))
                    close_solution("```{solution}")
        elif cell.cell_type == "code":
            source = cell.source
            role = None
            if not setup_done:
                setup = colab_setup(source, book.repo, ref)
                if setup is not None:
                    source, role, setup_done = setup, "setup", True
            folded = solution is not None or bool(FOLDED_TAGS & set(tags))
            if solution is not None:
                source = "#@title Solution\n" + source
            elif folded:
                source = "#@title Code the book hides\n" + source
            new = new_code_cell(source)
            if tags:
                new.metadata["tags"] = tags
            if folded:
                new.metadata["cellView"] = "form"
            add(new, role=role)
            if i in captions:
                fig = cell.metadata["mystnb"]["figure"]
                caption = _inline(str(fig["caption"]), ctx)
                add(new_markdown_cell(f"**Figure {captions[i]}.** {caption}"), role="caption")
        else:
            add(nbformat.v4.new_raw_cell(cell.source))
    if solution is not None:
        ctx.cell = solution["cell"]
        raise ctx.fail("```{solution-start}", f"the solution to {solution['label']!r} is never closed (solution-end)")
    if exercise_open is not None:
        ctx.cell = exercise_open[1]
        raise ctx.fail("```{exercise-start}", f"the exercise {exercise_open[0]!r} is never closed (exercise-end)")
    ctx.cell = None
    if not setup_done:
        raise ctx.fail("setup cell", 'no code cell installs "dipnb @ git+URL"; the chapter needs its setup cell')
    if ctx.cited:
        add(new_markdown_cell(_references(ctx)), role="references")

    # A collapsed section runs to the next heading of its level or above: end each solution there.
    for region in reversed(regions):
        end, level = region["end"], region["level"]
        nxt = cells[end] if end < len(cells) else None
        m = HEADING.match(nxt.source.split("\n")[0]) if nxt is not None and nxt.cell_type == "markdown" else None
        if nxt is not None and not (m and len(m.group("hashes")) <= level):
            cells.insert(end, new_markdown_cell(f"{'#' * level} Continued"))
    for n, cell in enumerate(cells):  # ids after the insertions; keep the collapsed list in step
        old = cell.get("id")
        cell["id"] = _cell_id(chapter, n)
        cell.metadata["id"] = cell["id"]
        if old in collapsed:
            collapsed[collapsed.index(old)] = cell["id"]

    first = next((c for c in cells if c.cell_type == "markdown"), None)
    if first is not None:
        lines = first.source.split("\n")
        at = next((j + 1 for j, line in enumerate(lines) if HEADING.match(line)), 0)
        lines[at:at] = ["", _banner(book, doc)] if at else [_banner(book, doc), ""]
        first.source = "\n".join(lines)

    nb = new_notebook(cells=cells)
    nb.metadata = {
        "accelerator": "GPU",
        "colab": {"provenance": [], "gpuType": "T4", "toc_visible": True, "collapsed_sections": collapsed},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def write_notebook(nb, out: Path) -> None:
    """Write ``nb`` to ``out`` atomically: a temporary file in the same folder, then a rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="chapters to convert (default: every notebooks/*.ipynb)")
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "colab", help="output folder (default: _build/colab)")
    p.add_argument("--ref", help="commit or tag the install line pins (default: git rev-parse HEAD)")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    ref = args.ref or build_ref(args.root)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", ref):
        print(f"--ref {ref!r}: a commit SHA or a tag name (letters, digits, . _ / -)", file=sys.stderr)
        return 2
    book = load_book(args.root)
    paths = args.notebooks or sorted((args.root / "notebooks").glob("*.ipynb"))
    failed = 0
    for path in paths:
        try:
            shown = path.relative_to(args.root) if path.is_absolute() and path.is_relative_to(args.root) else path
            nb = convert_notebook(path, book, ref, name=str(shown))
        except ConvertError as exc:
            print(f"colab: {exc} (nothing written for {path.name})", file=sys.stderr)
            failed += 1
            continue
        write_notebook(nb, args.out / path.name)
    print(f"{len(paths) - failed} Colab notebooks in {args.out}, install pinned at {ref}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
