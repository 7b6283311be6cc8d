"""The slide decks of ``make slides`` in a real browser (Chromium through Playwright), over the site
served on 127.0.0.1 by the same server as ``tests/test_browser.py`` (``make book`` and
``make slides`` first; ``make test`` does all three).

For every chapter's deck: no request leaves the deck's own folder (``slides/``: the deck must
work from a USB stick), no console error, every image decodes, every formula is typeset, every
widget renders; the arrow keys walk through the deck from the first slide to the last and back;
moving each slider inside a slide switches its picture (and does not move the deck); choosing
another option of a toggle switches its picture; and the speaker view (key ``S``) opens and
shows the notes of the slide. A screenshot of each deck's first slide and of each slide with a
widget goes to ``_build/screenshots/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_browser import SCREENSHOTS, SITE, PageVisit, browser, site_url  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import slides  # noqa: E402

pytestmark = pytest.mark.browser

CHAPTERS = slides.chapters(ROOT)
DECKS = SITE / "slides"

# The pictures a widget box shows now (images hidden by a Stack or on another slide do not count).
VISIBLE_PICTURES = (
    "el => Array.from(el.querySelectorAll('img'))"
    ".filter(i => i.offsetParent !== null && i.getBoundingClientRect().width > 0).map(i => i.src)"
)
CHANGED = (
    "([el, before]) => { const now = Array.from(el.querySelectorAll('img'))"
    ".filter(i => i.offsetParent !== null && i.getBoundingClientRect().width > 0).map(i => i.src);"
    " return now.length > 0 && JSON.stringify(now) !== JSON.stringify(before); }"
)


def _open(browser, site_url, chapter) -> PageVisit:  # noqa: F811 - the fixtures imported above
    if not (SITE / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` first")
    assert (DECKS / f"{chapter}.html").is_file(), f"{DECKS}/{chapter}.html is missing: run `make slides`"
    visit = PageVisit(browser, site_url, f"slides/{chapter}.html")
    visit.page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
    return visit


def _indices(page) -> tuple[int, int, int]:
    i = page.evaluate("() => Reveal.getIndices()")
    return i["h"], i["v"] or 0, -1 if i.get("f") is None else i["f"]


def _go(page, section) -> None:
    """Show the slide that holds ``section`` (an element handle), with all its fragments."""
    page.evaluate(
        "s => { const i = Reveal.getIndices(s); Reveal.slide(i.h, i.v || 0, 1e3); }", section.element_handle()
    )
    # Waits for the slide to be shown, not for a fixed time (the deck has no transition).
    page.wait_for_function("s => s.classList.contains('present')", arg=section.element_handle(), timeout=5_000)


def _press(page, key: str, before: tuple[int, int, int]) -> tuple[int, int, int]:
    """Presses ``key`` and returns the deck's position once it has left ``before``; ``before``
    itself if the key did not move the deck within 5 s."""
    page.keyboard.press(key)
    moved = (
        "b => { const i = Reveal.getIndices(), f = i.f === undefined || i.f === null ? -1 : i.f;"
        " return i.h !== b[0] || (i.v || 0) !== b[1] || f !== b[2]; }"
    )
    try:
        page.wait_for_function(moved, arg=list(before), timeout=5_000)
    except Exception:
        pass
    return _indices(page)


def _outside_folder(visit: PageVisit, requests: list[str]) -> list[str]:
    """The requests that leave ``slides/``: the deck's folder (blob: URLs carry only the origin)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(visit.site_url))
    inside = (f"{visit.site_url}/slides/", f"blob:{origin}/", "data:", "about:blank")
    return [u for u in requests if not u.startswith(inside)]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_deck(browser, site_url, chapter):  # noqa: F811 - the fixtures imported above
    visit = _open(browser, site_url, chapter)
    page = visit.page
    problems: list[str] = []
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"slides__{chapter}.png"))
        n_slides = page.evaluate("() => Reveal.getTotalSlides()")
        if n_slides < 3:
            problems.append(f"only {n_slides} slides")

        # Images decode; formulas are typeset; widgets render.
        broken = page.evaluate(
            "() => Array.from(document.querySelectorAll('.slides img'))"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).length"
        )
        if broken:
            problems.append(f"{broken} images did not load")
        math = page.evaluate(
            "() => { const m = Array.from(document.querySelectorAll('.slides .math'))"
            ".filter(e => !e.closest('aside.notes'));"
            " return [m.length, m.filter(e => e.querySelector('mjx-container')).length,"
            " document.querySelectorAll('.slides mjx-merror').length]; }"
        )
        if math[1] < math[0] or math[2]:
            problems.append(f"{math[0]} formulas, {math[1]} typeset, {math[2]} MathJax errors")
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        rendered = page.locator(".slides .widget-subarea > *").count()
        if rendered < views:
            problems.append(f"{views} widgets saved in the deck but {rendered} rendered")

        # The arrow keys walk through the deck to its last slide, and back.
        page.evaluate("() => { Reveal.slide(0, 0); document.activeElement && document.activeElement.blur(); }")
        seen = [_indices(page)]
        for _ in range(200):
            if page.evaluate("() => Reveal.isLastSlide() && !Reveal.availableFragments().next"):
                break
            routes = page.evaluate("() => Reveal.availableRoutes()")
            now = _press(page, "ArrowDown" if routes["down"] else "ArrowRight", seen[-1])
            if now == seen[-1]:
                problems.append(f"an arrow key did not move the deck from slide {now}")
                break
            seen.append(now)
        else:
            problems.append("200 key presses did not reach the last slide")
        if len({h for h, _, _ in seen}) != page.evaluate("() => Reveal.getHorizontalSlides().length"):
            problems.append(f"the arrow keys skipped horizontal slides: {sorted({h for h, _, _ in seen})}")
        if _press(page, "ArrowLeft", seen[-1]) == seen[-1]:
            problems.append("ArrowLeft did not go back")

        # Every slider inside a slide switches its picture, and the deck stays where it is.
        handles = page.locator(".slides .widget-subarea .noUi-handle")
        for i in range(handles.count()):
            handle = handles.nth(i)
            section = handle.locator("xpath=ancestor::section[1]")
            _go(page, section)
            page.screenshot(path=str(SCREENSHOTS / f"slides__{chapter}__slider{i + 1}.png"))
            box = handle.locator("xpath=ancestor::div[contains(@class, 'widget-subarea')][1]")
            where = _indices(page)
            moved = False
            for key in ("ArrowRight", "ArrowLeft"):  # a slider at its last value only moves left
                before = box.evaluate(VISIBLE_PICTURES)
                handle.focus()
                handle.press(key)
                try:
                    page.wait_for_function(CHANGED, arg=[box.element_handle(), before], timeout=5_000)
                    moved = True
                    break
                except Exception:
                    continue
            if not moved:
                problems.append(f"slider {i + 1}: the picture did not change when the slider moved")
            if _indices(page) != where:
                problems.append(f"slider {i + 1}: the arrow key moved the deck too ({where} -> {_indices(page)})")

        # Another option of a toggle switches the picture too.
        groups = page.locator(".slides .widget-toggle-buttons")
        for i in range(groups.count()):
            group = groups.nth(i)
            others = group.locator("button:not(.mod-active)")
            if not others.count():
                continue
            _go(page, group.locator("xpath=ancestor::section[1]"))
            box = group.locator("xpath=ancestor::div[contains(@class, 'widget-subarea')][1]")
            before = box.evaluate(VISIBLE_PICTURES)
            others.first.click()
            try:
                page.wait_for_function(CHANGED, arg=[box.element_handle(), before], timeout=5_000)
            except Exception:
                problems.append(f"toggle {i + 1}: the picture did not change for another option")

        # Every request the deck started has ended (late console messages come with them).
        page.wait_for_load_state("networkidle")
        problems += [f"request left the deck's folder: {u}" for u in _outside_folder(visit, visit.requests)]
        problems += visit.errors
        assert not problems, f"slides/{chapter}.html:\n  " + "\n  ".join(problems)
    finally:
        visit.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_speaker_view_shows_the_notes(browser, site_url, chapter):  # noqa: F811 - the fixtures imported above
    visit = _open(browser, site_url, chapter)
    page = visit.page
    requests: list[str] = []
    visit.context.on("request", lambda r: requests.append(r.url))
    try:
        notes = page.locator(".slides section aside.notes")
        assert notes.count(), f"{chapter}: the deck has no speaker notes"
        first = notes.first
        expected = " ".join(first.evaluate("e => e.textContent").split())[:40]
        _go(page, first.locator("xpath=ancestor::section[1]"))
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        with visit.context.expect_page(timeout=10_000) as popup_info:
            page.keyboard.press("s")
        popup = popup_info.value
        popup.wait_for_function(
            "t => { const n = document.querySelector('.speaker-controls-notes');"
            " return n && n.textContent.replace(/\\s+/g, ' ').includes(t); }",
            arg=expected,
            timeout=15_000,
        )
        popup.close()
        outside = _outside_folder(visit, requests)
        assert not outside, f"{chapter}: the speaker view fetched from outside the deck's folder: {outside}"
        assert not visit.errors, visit.errors
    finally:
        visit.close()
