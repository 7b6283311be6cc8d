"""A small Sphinx extension for the book (loaded through ``_config.yml``'s ``local_extensions``).

It keeps the site offline and adds one directive to the API reference page.

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
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective, switch_source_input
from sphinx.util.nodes import nested_parse_with_titles


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


def setup(app):
    app.add_directive("dipnb-submodules", SubmodulesDirective)
    app.connect("html-page-context", drop_cdn_links)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
