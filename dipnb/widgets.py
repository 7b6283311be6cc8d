"""Controls that work in the static book as well as with a live kernel.

A slider over a small precomputed grid of figures is built from an ipywidgets ``Stack`` whose
``selected_index`` is linked to the slider *in the browser* (``jslink``), so moving it needs no
Python: the rendered page carries every picture and the link. With a kernel, an optional
callback can compute a picture for a value off the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W

from .plots import figure_to_png

__all__ = ["figure_slider", "png_widget"]


def png_widget(png: bytes, width: str = "100%") -> W.Image:
    """An Image widget showing PNG bytes (scaled to the page width)."""
    return W.Image(value=png, format="png", layout=W.Layout(width=width, max_width="760px"))


def figure_slider(
    values: Sequence,
    make_figure: Callable,
    *,
    description: str,
    value=None,
    pngs: Sequence[bytes] | None = None,
) -> W.VBox:
    """A slider over ``values`` that switches between precomputed figures, kernel or no kernel.

    Args:
        values: the grid of parameter values (e.g. strides ``[2, 4, 8, 16, 32]``).
        make_figure: ``value -> matplotlib Figure`` for one grid value (called once per value).
        description: the slider's label, e.g. ``"stride"``.
        value: the value shown first (default: the first).
        pngs: already rendered PNGs, one per value, instead of ``make_figure``.

    Returns:
        A VBox holding the slider and a Stack of images; ``box.slider`` and ``box.stack`` are the parts.
    """
    values = list(values)
    if not values:
        raise ValueError("figure_slider needs at least one value")
    if pngs is None:
        pngs = [figure_to_png(make_figure(v)) for v in values]
    if len(pngs) != len(values):
        raise ValueError(f"got {len(pngs)} pictures for {len(values)} values")
    start = values.index(value) if value is not None else 0
    # The slider's synced state is its `index`, which the browser links to the Stack's index.
    slider = W.SelectionSlider(
        options=[str(v) for v in values], index=start, description=description, continuous_update=True,
        style={"description_width": "initial"}, layout=W.Layout(width="420px"),
    )
    stack = W.Stack([png_widget(p) for p in pngs], selected_index=start)
    W.jslink((slider, "index"), (stack, "selected_index"))
    box = W.VBox([slider, stack])
    box.slider, box.stack = slider, stack
    return box
