"""A small Sphinx extension for the book (loaded through ``_config.yml``'s ``local_extensions``).

It keeps the site offline, points the Colab buttons at the Colab notebooks, and adds two
directives.

Matplotlib's JavaScript animations (``to_jshtml``) link Font Awesome 4 from a CDN for the icons
of their buttons. The theme already ships Font Awesome (which still knows the version-4 names),
so :func:`drop_cdn_links` removes that link from every page as it is written, and
:func:`drop_duplicate_scripts` removes a script that sphinx-thebe writes twice.

The directive (reStructuredText, so inside an ``{eval-rst}`` block of a MyST page)::

    .. dipnb-submodules:: dipnb.experiments
       :skip: engine cache
       :heading: ~

documents every module of a package with ``automodule`` (one section per module), so an
experiment module or a plot module that a new chapter adds appears without editing the page.

**Colab buttons.** The theme's Colab button would open the chapter's source notebook, whose
MyST Markdown Colab cannot render. :func:`colab_buttons` points it instead at the chapter's Colab
notebook (``tools/colab.py``), which the publish workflow pushes to the ``colab`` folder of the
``colab`` branch (``launch_buttons.colab_branch`` in ``_config.yml``)::

    https://colab.research.google.com/github/OWNER/REPO/blob/colab/colab/<chapter>.ipynb

The URL follows from ``repository.url``, still the one place it is written. The directive
``{dipnb-colab-links}`` (on the teaching page) lists every chapter with its Colab notebook and
its student notebook (``student/<chapter>.ipynb`` of the same branch).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective, switch_source_input
from sphinx.util.nodes import nested_parse_with_titles

_TOOLS = Path(__file__).resolve().parent
if str(_TOOLS) not in sys.path:  # the URL helpers live beside this file
    sys.path.insert(0, str(_TOOLS))
import sync_colab_url as urls  # noqa: E402


class SubmodulesDirective(SphinxDirective):
    """``automodule`` with ``:members:`` for each public submodule of a package."""

    required_arguments = 1
    option_spec = {"skip": directives.unchanged, "heading": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        pkg_name = self.arguments[0]
        pkg = importlib.import_module(pkg_name)
        skip = set((self.options.get("skip") or "").split())
        underline = self.options.get("heading") or "^"
        lines: list[str] = []
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if mod.name.startswith("_") or mod.name in skip:
                continue
            full = f"{pkg_name}.{mod.name}"
            title = f"``{full}``"
            lines += [title, underline * len(title), "", f".. automodule:: {full}", "   :members:", ""]
        if not lines:
            return []
        container = nodes.section()
        container.document = self.state.document
        content = StringList(lines, source=self.get_source_info()[0])
        with switch_source_input(self.state, content):
            nested_parse_with_titles(self.state, content, container)
        return container.children


# <link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/...">
_FONT_AWESOME_CDN = re.compile(
    r'<link\s+rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/[^"]*"\s*/?>'
)


def drop_cdn_links(app, pagename, templatename, context, doctree) -> None:
    """Remove the Font Awesome CDN link that Matplotlib animations put in a page's body."""
    body = context.get("body")
    if isinstance(body, str) and "maxcdn.bootstrapcdn.com/font-awesome" in body:
        context["body"] = _FONT_AWESOME_CDN.sub("", body)


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep one copy of each script of a page.

    sphinx-thebe registers its inline configuration (``const THEBE_JS_URL = ...``) both with the
    application and with the builder; with Sphinx 7 the two copies differ only in ``None`` against
    ``""`` as the file name, so both are written and the second ``const`` is a SyntaxError in
    every page. Runs after the other handlers (priority 900), editing the page's list in place.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", js) or "", tuple(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def _colab_settings(config) -> tuple[str, str]:
    """``(repository URL, Colab branch)`` from the theme options Jupyter Book fills from ``_config.yml``."""
    options = getattr(config, "html_theme_options", None) or {}
    repo = str(options.get("repository_url") or "").rstrip("/")
    branch = str((options.get("launch_buttons") or {}).get("colab_branch") or urls.DEFAULT_COLAB_BRANCH)
    return repo, branch


def colab_buttons(app, pagename, templatename, context, doctree) -> None:
    """Point a chapter's Colab button at its Colab notebook on the ``colab`` branch.

    Runs after the theme has built its launch buttons (priority 501), editing them in place.
    Pages outside ``notebooks/`` keep what the theme made (it makes no Colab button for them).
    """
    if not pagename.startswith("notebooks/"):
        return
    repo, branch = _colab_settings(app.config)
    if not repo:
        return
    url = urls.colab_notebook_url(repo, pagename.split("/", 1)[1], "colab", branch)
    for group in context.get("header_buttons") or []:
        if not isinstance(group, dict) or group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons") or []:
            if isinstance(button, dict) and button.get("text") == "Colab":
                button["url"] = url


class ColabLinksDirective(SphinxDirective):
    """A list of the chapters, each with its Colab notebook and its student notebook."""

    def run(self) -> list[nodes.Node]:
        repo, branch = _colab_settings(self.config)
        if not repo:
            raise self.error("dipnb-colab-links needs repository.url in _config.yml")
        toc = yaml.safe_load((Path(self.env.srcdir) / "_toc.yml").read_text()) or {}
        parts = toc.get("parts") or [{"chapters": toc.get("chapters") or []}]
        chapters = [
            str(ch["file"]).removesuffix(".ipynb")
            for part in parts
            for ch in part.get("chapters") or []
            if str(ch.get("file", "")).startswith("notebooks/")
        ]
        items = nodes.bullet_list()
        for doc in chapters:
            name = doc.split("/", 1)[1]
            para = nodes.paragraph()
            para += addnodes.pending_xref(
                "", nodes.inline(text=name), refdomain="std", reftype="doc", reftarget=f"/{doc}",
                refdoc=self.env.docname, refexplicit=False, refwarn=True,
            )
            para += nodes.Text(": ")
            for n, (folder, text) in enumerate((("colab", "Colab notebook"), ("student", "student notebook"))):
                if n:
                    para += nodes.Text(", ")
                uri = urls.colab_notebook_url(repo, name, folder, branch)
                para += nodes.reference(text, text, refuri=uri)
            items += nodes.list_item("", para)
        return [items]


def setup(app):
    app.add_directive("dipnb-submodules", SubmodulesDirective)
    app.add_directive("dipnb-colab-links", ColabLinksDirective)
    app.connect("html-page-context", drop_cdn_links)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("html-page-context", colab_buttons, priority=600)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
