"""The chapters as a reader sees them on the site: code that fits the column, widget plumbing folded.

- Every code line fits the content column: at most 88 characters (at a 1400-pixel-wide window
  the theme's code column shows about 90 before it cuts them off on the right).
- A cell whose output is a widget panel (a slider, a toggle, a live explorer, an animation) is
  folded with the ``hide-input`` tag: the reader meets the picture first and can show the code
  with the theme's toggle. The few widget cells left open are listed below, each with its reason.
- A cell that checks a claim (``assert``, ``dipnb.claims.check``) is never folded.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_LINE = 88

# The last statement of a cell that builds a widget panel calls one of these.
WIDGET_CALL = re.compile(r"\b(figure_slider|choice_stack|figure_grid|live_explorer|\w+_slider|animate_\w+)\(")
CHECK = re.compile(r"^\s*assert\b|\bclaims\.check\(", re.M)

# Widget cells deliberately left open: (chapter, cell id) -> why.
OPEN_WIDGET_CELLS = {
    ("upsampling", "75f1bad8"): "it runs the stride grid that the next cells read, not only the slider",
}


def _code_cells(path: Path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _last_statement(source: str) -> str:
    """The cell's last top-level statement with its continuation lines (what the cell displays)."""
    lines = source.rstrip().splitlines()
    start = max((i for i, line in enumerate(lines) if line and not line[0].isspace() and not line.startswith(")")),
                default=0)
    return "\n".join(lines[start:])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_code_lines_fit_the_column(path):
    long = [
        f"cell {c.get('id')} line {i}: {len(line)} characters: {line.strip()[:60]}..."
        for c in _code_cells(path)
        for i, line in enumerate(c.source.splitlines(), 1)
        if len(line) > MAX_LINE
    ]
    assert not long, f"{path.name}: code lines over {MAX_LINE} characters:\n" + "\n".join(long)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_widget_cells_are_folded_and_checks_are_not(path):
    unfolded, folded_checks = [], []
    for c in _code_cells(path):
        folded = "hide-input" in c.metadata.get("tags", [])
        if WIDGET_CALL.search(_last_statement(c.source)) and not folded:
            if (path.stem, c.get("id")) not in OPEN_WIDGET_CELLS:
                unfolded.append(c.get("id"))
        if folded and CHECK.search(c.source):
            folded_checks.append(c.get("id"))
    assert not unfolded, f"{path.name}: widget cells {unfolded} are not tagged hide-input"
    assert not folded_checks, f"{path.name}: cells {folded_checks} check claims and must stay open"


def test_the_open_widget_cells_exist_and_build_widgets():
    for (stem, cid), why in OPEN_WIDGET_CELLS.items():
        cells = {c.get("id"): c for c in _code_cells(ROOT / "notebooks" / f"{stem}.ipynb")}
        assert cid in cells, f"{stem}: cell {cid} ({why}) is gone; update OPEN_WIDGET_CELLS"
        assert WIDGET_CALL.search(_last_statement(cells[cid].source)), f"{stem} {cid} no longer builds a widget"
