"""The chapters for a smoke run: ``make smoke-notebooks`` executes these copies in ``_build/smoke``.

A smoke run (``DIPNB_SMOKE=1``) fits every model at the paper's sizes for a handful of steps, so
the chapters' figures, widgets and printed lines run on numbers that mean nothing. Every cell
must still run; only the checks are left out. Each copy is the chapter as it is, except that
every code cell containing an ``assert`` statement gets nbval's ``nbval-skip`` tag. The cells
that call ``dipnb.claims.check`` need no tag: in smoke mode they print their numbers and judge
nothing. ``python tools/smoke_notebooks.py --help``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["asserts", "smoke_notebook", "main"]

SKIP_TAG = "nbval-skip"


def asserts(source: str) -> bool:
    """Whether a code cell's source holds an ``assert`` statement, at any depth.

    The cell is read as IPython reads it (``%pip`` and ``!`` lines become Python calls).

    Raises:
        SyntaxError: the cell is not Python.
    """
    code = TransformerManager().transform_cell(source)
    return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(code)))


def smoke_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` with every asserting code cell tagged ``nbval-skip``; and how many were."""
    out = nbformat.from_dict(nb)
    tagged = 0
    for cell in out.cells:
        if cell.cell_type != "code" or not asserts(cell.source):
            continue
        tags = cell.metadata.setdefault("tags", [])
        if SKIP_TAG not in tags:
            tags.append(SKIP_TAG)
        tagged += 1
    return out, tagged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT / "notebooks", help="the chapters (default: notebooks/)")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "smoke", help="where the copies go")
    args = ap.parse_args(argv)
    paths = sorted(args.src.glob("*.ipynb"))
    if not paths:
        print(f"smoke_notebooks: no .ipynb in {args.src}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        try:
            nb, tagged = smoke_notebook(nbformat.read(p, as_version=4))
        except SyntaxError as e:
            print(f"smoke_notebooks: {p.name}: a code cell is not Python: {e}", file=sys.stderr)
            return 2
        nbformat.write(nb, args.out / p.name)
        print(f"{p.name}: {tagged} asserting cell(s) left out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
