"""The built book in a real browser: Debian's Chromium driven by Playwright, over the site served
on 127.0.0.1 (``make book`` first; ``make test`` does both).

The site is served only under ``/REPO/`` (the repository's name in ``_config.yml``), the way
GitHub Pages serves a project site at ``https://OWNER.github.io/REPO/``; every other path is a
404, so a page that reaches for the server's root fails here as it would there.

For every page of ``_toc.yml`` it checks that the page loads with no console error and without a
single request leaving the site's folder, that every image has loaded, that every widget rendered, that
moving each slider (or choosing another option of a toggle) changes the picture shown, that each
animation advances when played, and that every chapter has its Colab link. A screenshot of each
page goes to ``_build/screenshots/``. A static pass over every HTML and CSS file of the site also
looks for absolute URLs in anything the browser would fetch, and for root-absolute ones
(``/path``) anywhere, links included. (``DIPNB_BOOK_HTML`` and
``DIPNB_BOOK_SCREENSHOTS`` point the test at another build.)
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
# The built site and where screenshots go (override to test a site built elsewhere).
SITE = Path(os.environ.get("DIPNB_BOOK_HTML", ROOT / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("DIPNB_BOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDGET_ERRORS = ("widget could not be rendered", "error displaying widget", "failed to create view")


def toc_pages() -> list[str]:
    """Every page of the book, as docnames (``book/intro``, ``notebooks/quickstart`` ...)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(str(node["file"]).removesuffix(".md").removesuffix(".ipynb"))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)

    walk(toc)
    return pages


def repository_path() -> str:
    """``owner/name`` of the repository in ``_config.yml``."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    return re.sub(r"^https?://github\.com/", "", url).rstrip("/").removesuffix(".git")


PAGES = toc_pages()
# Where GitHub Pages serves a project site: https://OWNER.github.io/REPO/
SUB_PATH = "/" + repository_path().split("/")[-1] + "/"


# --------------------------------------------------------------------------------------------
# Fixtures: the site on 127.0.0.1 and the browser


class _SubPathHandler(SimpleHTTPRequestHandler):
    """Serves the site under ``SUB_PATH`` only; any other path is a 404, ``/REPO`` redirects."""

    def send_head(self):
        path = urlsplit(self.path).path
        if path == SUB_PATH.rstrip("/"):
            self.send_response(301)
            self.send_header("Location", SUB_PATH)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if not path.startswith(SUB_PATH):
            self.send_error(404, f"outside the site's folder {SUB_PATH}")
            return None
        return super().send_head()

    def translate_path(self, path: str) -> str:
        return super().translate_path(path[len(SUB_PATH) - 1 :])

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def site_url():
    """``http://127.0.0.1:PORT/REPO``: the site's folder, served as GitHub Pages serves it."""
    if not (SITE / "index.html").is_file():
        pytest.skip(f"the book is not built ({SITE} has no index.html): run `make book` first")
    handler = functools.partial(_SubPathHandler, directory=str(SITE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{SUB_PATH.rstrip('/')}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


class PageVisit:
    """One page opened in a fresh context, with everything it requested and complained about."""

    def __init__(self, browser, site_url: str, path: str):
        self.site_url = site_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught exception: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} ({r.failure})"))
        self.page.on(
            "response",
            lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )
        self.page.goto(f"{site_url}/{path}", wait_until="load")
        self.settle()

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console error: {msg.text}")

    def settle(self) -> None:
        """Wait for MathJax and the widget manager to finish and the network to go quiet."""
        page = self.page
        page.wait_for_load_state("networkidle")
        page.wait_for_function(
            "() => !window.MathJax || !window.MathJax.startup || window.MathJax.startup.promise"
            " .then(() => true)"
        )
        n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if n_views:
            try:
                page.wait_for_function(
                    "n => document.querySelectorAll('.widget-subarea > *').length >= n", arg=n_views, timeout=30_000
                )
            except Exception:  # reported by the widget check with the counts
                self.errors.append(f"the page's {n_views} widgets did not all render within 30 s")
        page.wait_for_load_state("networkidle")

    def outside_requests(self) -> list[str]:
        """Requests that left the site's folder (another host, or the server's root)."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.site_url))
        local = (self.site_url + "/", f"blob:{origin}/", "data:")
        return [u for u in self.requests if not u.startswith(local)]

    def close(self) -> None:
        self.context.close()


def _html_path(docname: str) -> Path:
    return SITE / f"{docname}.html"


def _visit(browser, site_url: str, docname: str) -> PageVisit:
    if not _html_path(docname).is_file():
        pytest.skip(f"{docname} is in _toc.yml but was not built (see test_every_toc_page_is_built)")
    return PageVisit(browser, site_url, f"{docname}.html")


# --------------------------------------------------------------------------------------------
# The site as a whole


def test_every_toc_page_is_built():
    if not (SITE / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` first")
    missing = [d for d in PAGES if not _html_path(d).is_file()]
    assert not missing, f"pages listed in _toc.yml but missing from {SITE}: {missing}"


class _UrlCollector(HTMLParser):
    """Collects the URLs an HTML page makes the browser fetch (not the links a reader follows)."""

    FETCHING = {
        "script": ("src",),
        "link": ("href",),
        "img": ("src", "srcset"),
        "iframe": ("src",),
        "source": ("src", "srcset"),
        "video": ("src", "poster"),
        "audio": ("src",),
        "embed": ("src",),
        "object": ("data",),
    }

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and (attrs.get("rel") or "") in ("canonical", "alternate", "author", "license"):
            return
        for name in self.FETCHING.get(tag, ()):
            value = attrs.get(name)
            if value:
                self.urls.append((tag, value))


def test_no_absolute_urls_in_what_the_site_fetches():
    if not (SITE / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` first")
    bad = []
    for html in sorted(SITE.rglob("*.html")):
        collector = _UrlCollector()
        collector.feed(html.read_text(errors="replace"))
        rel = html.relative_to(SITE)
        bad += [f"{rel}: <{tag}> {url}" for tag, url in collector.urls if re.match(r"(https?:)?//", url)]
    for css in sorted(SITE.rglob("*.css")):
        text = re.sub(r"/\*.*?\*/", "", css.read_text(errors="replace"), flags=re.S)
        bad += [
            f"{css.relative_to(SITE)}: {m.group(0)}"
            for m in re.finditer(r"(url\(\s*['\"]?|@import\s+['\"])(https?:)?//[^)'\"\s]+", text)
        ]
    assert not bad, "the site would fetch from outside its folder:\n" + "\n".join(bad[:40])


class _RootAbsoluteCollector(HTMLParser):
    """Collects every URL of a page that starts at the server's root (``/path``, not ``//host``)."""

    ATTRS = ("href", "src", "srcset", "action", "data", "poster", "formaction")

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        values = [(name, attrs.get(name) or "") for name in self.ATTRS]
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            # content="0; url=book/intro.html"
            values.append(("refresh", re.sub(r"^[^;]*;\s*url=", "", attrs.get("content") or "", flags=re.I)))
        for name, value in values:
            candidates = [c.strip().split(" ")[0] for c in value.split(",")] if name == "srcset" else [value.strip()]
            self.urls += [(f"<{tag} {name}>", c) for c in candidates if re.match(r"/(?!/)", c)]


def test_no_root_absolute_urls():
    """GitHub Pages serves the site under /REPO/: a URL starting at the root leaves the book."""
    if not (SITE / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` first")
    bad = []
    for html in sorted(SITE.rglob("*.html")):
        collector = _RootAbsoluteCollector()
        collector.feed(html.read_text(errors="replace"))
        bad += [f"{html.relative_to(SITE)}: {where} {url}" for where, url in collector.urls]
    for css in sorted(SITE.rglob("*.css")):
        text = re.sub(r"/\*.*?\*/", "", css.read_text(errors="replace"), flags=re.S)
        bad += [
            f"{css.relative_to(SITE)}: {m.group(0)}"
            for m in re.finditer(r"(url\(\s*['\"]?|@import\s+['\"])/(?!/)[^)'\"\s]*", text)
        ]
    assert not bad, f"root-absolute URLs break under {SUB_PATH}:\n" + "\n".join(bad[:40])


def test_site_is_served_only_under_the_sub_path(site_url):
    """The test server behaves like GitHub Pages for a project site: nothing at the root."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(site_url))
    for url in (f"{origin}/", f"{origin}/index.html", f"{origin}/_static/book.css"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 404, url
    with urllib.request.urlopen(f"{site_url}/_static/book.css", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(site_url, timeout=10) as r:  # /REPO redirects to /REPO/
        assert r.status == 200 and urlsplit(r.geturl()).path == SUB_PATH


def test_served_assets_are_local():
    for rel in ("vendor/mathjax/tex-mml-chtml.js", "vendor/jupyter-widgets/embed.js", "dipnb-widgets-shim.js"):
        if not (SITE / "index.html").is_file():
            pytest.skip("the book is not built: run `make book` first")
        assert (SITE / "_static" / rel).is_file(), f"_static/{rel} is missing: did `make assets` run?"


def test_root_redirects_to_the_introduction(browser, site_url):
    visit = PageVisit(browser, site_url, "")
    try:
        visit.page.wait_for_url(re.compile(re.escape(PAGES[0]) + r"\.html"), timeout=10_000)
        assert not visit.outside_requests()
    finally:
        visit.close()


def test_search_works_offline(browser, site_url):
    visit = PageVisit(browser, site_url, "search.html?q=spectral+bias")
    try:
        results = visit.page.locator("ul.search li")
        results.first.wait_for(timeout=20_000)
        assert results.count() >= 2, "searching for 'spectral bias' should find several pages"
        assert not visit.outside_requests(), visit.outside_requests()
        assert not visit.errors, visit.errors
    finally:
        visit.close()


# --------------------------------------------------------------------------------------------
# Every page


@pytest.mark.parametrize("docname", PAGES)
def test_page(browser, site_url, docname):
    visit = _visit(browser, site_url, docname)
    page = visit.page
    try:
        problems: list[str] = []

        # Images: ask for every image now (lazy ones too), then check each one decoded.
        page.evaluate("() => document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
        page.wait_for_function(
            "() => Array.from(document.images).every(i => i.complete)", timeout=30_000
        )
        broken = page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
            ".map(i => (i.getAttribute('src') || '').slice(0, 80))"
        )
        problems += [f"image did not load: {src}" for src in broken]

        # Widgets: one rendered view per saved view, no error placeholder.
        n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        rendered = page.locator(".widget-subarea > *").count()
        if rendered < n_views:
            problems.append(f"{n_views} widgets saved in the page but {rendered} rendered")
        text = page.locator("body").inner_text().lower()
        problems += [f"widget error placeholder on the page: {e!r}" for e in WIDGET_ERRORS if e in text]
        if page.locator(".widget-subarea .jupyter-widgets-error-widget, .widget-subarea .widget-error").count():
            problems.append("a widget rendered as an error")

        # The screenshot shows the page as a reader first sees it, before the controls are moved.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"{docname.replace('/', '__')}.png"), full_page=True)

        problems += _check_sliders(page)
        problems += _check_toggle_buttons(page)
        problems += _check_animations(page)

        if docname.startswith("notebooks/"):
            problems += _check_colab_link(page, docname)

        # Every request the page started has ended, so the console messages that come with them
        # (a missing favicon, say) are in: an event to wait for, not a fixed time.
        page.wait_for_load_state("networkidle")
        outside = visit.outside_requests()
        problems += [f"request left the site's folder {SUB_PATH}: {u}" for u in outside]
        problems += visit.errors
        assert not problems, f"{docname}:\n  " + "\n  ".join(problems)
    finally:
        visit.close()


def _visible_pictures(box) -> list[str]:
    """The src of every visible <img> inside a widget box (the picture the slider selects)."""
    return box.evaluate(
        "el => Array.from(el.querySelectorAll('img'))"
        ".filter(i => i.offsetParent !== null && i.getBoundingClientRect().width > 0)"
        ".map(i => i.src)"
    )


def _readout(box) -> str:
    readout = box.locator(".widget-readout")
    return readout.first.inner_text() if readout.count() else ""


def _picture_changes(page, box, before, key: str, handle) -> bool:
    """Press ``key`` on the slider handle; True if the visible picture of ``box`` changed."""
    handle.focus()
    handle.press(key)
    try:
        page.wait_for_function(
            "([el, before]) => { const now = Array.from(el.querySelectorAll('img'))"
            ".filter(i => i.offsetParent !== null).map(i => i.src);"
            " return now.length > 0 && JSON.stringify(now) !== JSON.stringify(before); }",
            arg=[box.element_handle(), before],
            timeout=5_000,
        )
        return True
    except Exception:
        return False


def _check_sliders(page) -> list[str]:
    problems = []
    handles = page.locator(".widget-subarea .noUi-handle")
    for i in range(handles.count()):
        handle = handles.nth(i)
        # The widget output the slider belongs to (the slider and the pictures it switches).
        box = handle.locator("xpath=ancestor::div[contains(@class, 'widget-subarea')][1]")
        handle.scroll_into_view_if_needed()
        before = _visible_pictures(box)
        readout_before = _readout(box)
        # A slider that starts at its last value can only move left.
        if not (
            _picture_changes(page, box, before, "ArrowRight", handle)
            or _picture_changes(page, box, before, "ArrowLeft", handle)
        ):
            problems.append(
                f"slider {i + 1}: the picture did not change when the slider moved"
                f" (readout {readout_before!r} -> {_readout(box)!r})"
            )
    return problems


# For the widget output ``el`` (a .widget-subarea), whether each ToggleButtons in it, in page
# order, is linked in the browser (jslink) to something: only those can work without a kernel.
_LINKED_TOGGLES_JS = """el => {
  const tag = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
  const view = el.nextElementSibling;
  if (!tag || !view) return [];
  const state = JSON.parse(tag.textContent).state;
  const id = ref => String(ref).replace('IPY_MODEL_', '');
  const linked = new Set();
  for (const m of Object.values(state)) {
    if (m.model_name === 'LinkModel' || m.model_name === 'DirectionalLinkModel') {
      for (const end of [m.state.source, m.state.target]) { if (end) linked.add(id(end[0])); }
    }
  }
  const out = [];
  const walk = key => {
    const m = state[key];
    if (!m) return;
    if (m.model_name === 'ToggleButtonsModel') out.push(linked.has(key));
    for (const child of (m.state.children || [])) walk(id(child));
  };
  walk(JSON.parse(view.textContent).model_id);
  return out;
}"""


def _check_toggle_buttons(page) -> list[str]:
    """Choosing another option of a linked ToggleButtons control changes the picture too.

    Toggles that are not linked in the browser drive a live kernel only (a chapter's "compute
    off the grid" explorer); in the static page they cannot change anything, so they are skipped.
    """
    problems = []
    boxes = page.locator(".widget-subarea")
    for b in range(boxes.count()):
        box = boxes.nth(b)
        groups = box.locator(".widget-toggle-buttons")
        if not groups.count():
            continue
        linked = box.evaluate(_LINKED_TOGGLES_JS)
        for i in range(groups.count()):
            group = groups.nth(i)
            others = group.locator("button:not(.mod-active)")
            if i >= len(linked) or not linked[i] or not others.count():
                continue
            group.scroll_into_view_if_needed()
            before = _visible_pictures(box)
            others.first.click()
            try:
                page.wait_for_function(
                    "([el, before]) => { const now = Array.from(el.querySelectorAll('img'))"
                    ".filter(i => i.offsetParent !== null).map(i => i.src);"
                    " return now.length > 0 && JSON.stringify(now) !== JSON.stringify(before); }",
                    arg=[box.element_handle(), before],
                    timeout=5_000,
                )
            except Exception:
                problems.append(f"widget {b + 1}, toggle {i + 1}: the picture did not change for another option")
    return problems


def _check_animations(page) -> list[str]:
    problems = []
    animations = page.locator(".animation")
    for i in range(animations.count()):
        anim = animations.nth(i)
        anim.scroll_into_view_if_needed()
        img = anim.locator("img").first
        slider = anim.locator("input.anim-slider").first
        src0, frame0 = img.get_attribute("src"), slider.input_value()
        anim.locator('button[title="Play"]').first.click()
        try:
            page.wait_for_function(
                "([img, src0]) => img.getAttribute('src') !== src0", arg=[img.element_handle(), src0], timeout=5_000
            )
        except Exception:
            problems.append(f"animation {i + 1}: the frame did not change after Play")
            continue
        finally:
            anim.locator('button[title="Pause"]').first.click()
        if slider.input_value() == frame0:
            problems.append(f"animation {i + 1}: the picture changed but the frame counter did not")
    return problems


def colab_url(docname: str) -> str:
    """Where a chapter's Colab button must lead.

    With ``launch_buttons.colab_branch`` in ``_config.yml``: the chapter's Colab notebook on that
    branch (``colab/<chapter>.ipynb``, pushed there by the publish workflow); without it, the
    theme's link to the chapter's source on the repository's branch.
    """
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    base = f"https://colab.research.google.com/github/{repository_path()}/blob/"
    branch = (config.get("launch_buttons") or {}).get("colab_branch")
    if branch:
        return f"{base}{branch}/colab/{docname.split('/')[-1]}.ipynb"
    return f"{base}{config['repository'].get('branch', 'main')}/{docname}.ipynb"


def _check_colab_link(page, docname: str) -> list[str]:
    expected = colab_url(docname)
    hrefs = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
    if expected not in hrefs:
        return [f"no Colab link to {expected} (found {hrefs})"]
    return []
