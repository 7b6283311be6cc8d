"""Controls that work in the static book as well as with a live kernel.

Two kinds of control, one mechanism each:

* **Precomputed pictures** (work everywhere, no kernel): a control's ``index`` is linked *in the
  browser* (``jslink``) to a ``Stack``'s ``selected_index``, so the rendered page carries every
  picture and the link, and moving the control needs no Python. :func:`linked_stack` is that
  link; :func:`figure_slider` (a slider over a grid of values), :func:`choice_stack` (toggle
  buttons over named alternatives, e.g. one slider per model) and :func:`figure_grid` (a toggle
  and a slider over a two-way grid) are built from it.
* **Live computation** (needs a kernel): :func:`live_explorer` shows controls and a *compute*
  button; nothing runs until the button is clicked, so executing the page for the static book
  costs nothing, and the static book shows only the precomputed pictures above it.

Both ipywidgets 8.x (the book's build) and 7.7 (what Colab preinstalls) are supported. 7.x has no
``Stack`` widget: there :class:`Stack` is a Box that shows one child at a time and the link is a
kernel-side ``traitlets.link``, so the same controls redraw through the running kernel instead of
in the browser. The static book is built with 8.x and needs no kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import traitlets

from .plots import figure_to_png

__all__ = [
    "HAS_BROWSER_STACK", "Stack", "png_widget", "linked_stack", "figure_slider", "choice_stack", "figure_grid",
    "live_explorer",
]

#: True with ipywidgets 8.x: pictures are switched in the browser (Stack + jslink), no kernel needed.
#: False with 7.x (Colab's): they are switched by the kernel (:class:`Stack` below + ``traitlets.link``).
HAS_BROWSER_STACK: bool = hasattr(W, "Stack")


class _KernelStack(W.VBox):
    """ipywidgets 7.x stand-in for ``ipywidgets.Stack``: all children, only ``selected_index`` shown.

    The others get ``layout.display = "none"``; the kernel changes that when ``selected_index``
    changes, so it needs a running kernel (7.x has no browser-side Stack). ``selected_index`` is a
    plain kernel-side trait, not synced to the browser.
    """

    selected_index = traitlets.Int(None, allow_none=True)

    def __init__(self, children=(), selected_index: int | None = 0, **kwargs) -> None:
        super().__init__(children, **kwargs)
        self._display: dict[str, str | None] = {}  # model id -> the child's own layout.display
        self.observe(self._show_selected, names=["selected_index", "children"])
        self.selected_index = selected_index
        self._show_selected()

    def _show_selected(self, _change=None) -> None:
        for i, child in enumerate(self.children):
            own = self._display.setdefault(child.model_id, child.layout.display)
            child.layout.display = own if i == self.selected_index else "none"


#: The Stack :func:`linked_stack` builds: ``ipywidgets.Stack`` on 8.x, a kernel-switched Box on 7.x.
Stack = W.Stack if HAS_BROWSER_STACK else _KernelStack

_STYLE = {"description_width": "initial"}
_KERNEL_NOTE = "Needs a running Python kernel (Jupyter, Colab); the pictures above work everywhere."


def png_widget(png: bytes, width: str = "100%") -> W.Image:
    """An Image widget showing PNG bytes (scaled to the page width)."""
    return W.Image(value=png, format="png", layout=W.Layout(width=width, max_width="760px"))


def linked_stack(control: W.Widget, children: Sequence[W.Widget | bytes]) -> W.Box:
    """A :class:`Stack` of ``children`` whose ``selected_index`` follows ``control.index``.

    Args:
        control: any widget with an ``index`` trait (SelectionSlider, ToggleButtons, Dropdown...).
        children: widgets, or PNG bytes (each shown with :func:`png_widget`), one per option of
            ``control``.

    Returns:
        The Stack, starting at ``control.index``; ``stack.link`` is the link. With ipywidgets 8.x it
        is an ``ipywidgets.Link`` (``jslink``), so it works in the static HTML page with no kernel;
        with 7.x it is a ``traitlets.link``, so the kernel switches the picture.
    """
    kids = [png_widget(c) if isinstance(c, bytes | bytearray) else c for c in children]
    stack = Stack(kids, selected_index=control.index)
    if HAS_BROWSER_STACK:
        stack.link = W.jslink((control, "index"), (stack, "selected_index"))
    else:
        stack.link = traitlets.link((control, "index"), (stack, "selected_index"))
    return stack


def _start(options: Sequence, value, what: str) -> int:
    if value is None:
        return 0
    if value not in options:
        raise ValueError(f"{what}={value!r} is not one of {list(options)}")
    return options.index(value)


def _slider(values: Sequence, description: str, start: int) -> W.SelectionSlider:
    # The slider's synced state is its `index`, which the browser links to the Stack's index.
    return W.SelectionSlider(
        options=[str(v) for v in values], index=start, description=description, continuous_update=True,
        style=_STYLE, layout=W.Layout(width="420px"),
    )


def _toggle(labels: Sequence[str], description: str, start: int, button_width: str | None) -> W.ToggleButtons:
    style = dict(_STYLE, **({"button_width": button_width} if button_width else {}))
    return W.ToggleButtons(options=list(labels), index=start, description=description, style=style)


def figure_slider(
    values: Sequence,
    make_figure: Callable,
    *,
    description: str,
    value=None,
    pngs: Sequence[bytes] | None = None,
) -> W.VBox:
    """A slider over ``values`` that switches between precomputed figures (no kernel with ipywidgets 8).

    Args:
        values: the grid of parameter values (e.g. strides ``[2, 4, 8, 16, 32]``).
        make_figure: ``value -> matplotlib Figure`` for one grid value (called once per value).
        description: the slider's label, e.g. ``"stride"``.
        value: the value shown first (default: the first).
        pngs: already rendered PNGs, one per value, instead of ``make_figure``.

    Returns:
        A VBox holding the slider and a :class:`Stack` of images; ``box.slider`` and ``box.stack`` are
        the parts.
    """
    values = list(values)
    if not values:
        raise ValueError("figure_slider needs at least one value")
    if pngs is None:
        pngs = [figure_to_png(make_figure(v)) for v in values]
    if len(pngs) != len(values):
        raise ValueError(f"got {len(pngs)} pictures for {len(values)} values")
    slider = _slider(values, description, _start(values, value, "value"))
    stack = linked_stack(slider, pngs)
    box = W.VBox([slider, stack])
    box.slider, box.stack = slider, stack
    return box


def choice_stack(
    labels: Sequence[str],
    children: Sequence[W.Widget | bytes],
    *,
    description: str,
    value: str | None = None,
    controls: Sequence[W.Widget] = (),
    button_width: str | None = None,
) -> W.VBox:
    """Toggle buttons that switch between widgets (or pictures), kernel or no kernel (ipywidgets 8).

    The buttons' ``index`` is linked to a Stack's ``selected_index`` (:func:`linked_stack`): in the
    browser with ipywidgets 8, so the switch works in the static book; through the kernel with 7.x.
    Typical use: one :func:`figure_slider` per model,
    ``choice_stack(["conv", "linear"], [slider_conv, slider_linear], description="model")``.

    Args:
        labels: one button label per child.
        children: the widgets (or PNG bytes) to switch between, in the order of ``labels``.
        description: the buttons' label, e.g. ``"model"``.
        value: the label selected first (default: the first).
        controls: other widgets shown on the buttons' row (e.g. a slider shared by every child).
        button_width: CSS width of each button (default: ipywidgets' own).

    Returns:
        A VBox: the buttons (and ``controls``) above the Stack; ``box.toggle`` and ``box.stack`` are
        its parts.
    """
    labels = list(labels)
    if not labels:
        raise ValueError("choice_stack needs at least one choice")
    if len(children) != len(labels):
        raise ValueError(f"got {len(children)} children for {len(labels)} labels")
    toggle = _toggle(labels, description, _start(labels, value, "value"), button_width)
    stack = linked_stack(toggle, children)
    head = W.HBox([toggle, *controls]) if controls else toggle
    box = W.VBox([head, stack])
    box.toggle, box.stack = toggle, stack
    return box


def figure_grid(
    pngs: Mapping[str, Sequence[bytes]],
    values: Sequence,
    *,
    description: str,
    choice_description: str,
    value=None,
    choice: str | None = None,
    button_width: str | None = None,
) -> W.VBox:
    """Toggle buttons over the rows of a picture grid and one slider over its columns, no kernel needed.

    Each choice has a Stack of pictures (one per value) linked to the *same* slider, and an outer
    Stack of those, linked to the buttons (:func:`choice_stack`); switching the choice keeps the
    slider's value.

    Args:
        pngs: choice -> PNG bytes, one per value (e.g. mode -> one picture per stride).
        values: the slider's values, the same for every choice.
        description: the slider's label, e.g. ``"stride L"``.
        choice_description: the buttons' label, e.g. ``"mode"``.
        value, choice: what is shown first (default: the first of each).
        button_width: CSS width of each button.

    Returns:
        A VBox; ``box.toggle``, ``box.slider`` and ``box.stack`` (the outer Stack) are its parts.
    """
    values = list(values)
    for c, p in pngs.items():
        if len(p) != len(values):
            raise ValueError(f"got {len(p)} pictures for {choice_description} {c!r} and {len(values)} values")
    slider = _slider(values, description, _start(values, value, "value"))
    inner = [linked_stack(slider, pngs[c]) for c in pngs]
    box = choice_stack(list(pngs), inner, description=choice_description, value=choice, controls=[slider],
                       button_width=button_width)
    box.slider = slider
    return box


def live_explorer(
    compute: Callable[..., object],
    controls: Mapping[str, W.ValueWidget],
    *,
    note: str | None = None,
) -> W.VBox:
    """Controls and a *compute* button that draw one configuration with a running kernel.

    Nothing runs until the button is clicked: executing the page (or building the static book)
    computes nothing, and the static page shows only the controls. A click calls
    ``compute(**{name: control.value})`` and shows the figure in an ``Output`` widget; an
    exception (e.g. a ``ConfigError`` for a value the experiment refuses) is shown as its message
    instead of being raised.

    Args:
        compute: ``(**values) -> matplotlib Figure``, keyword arguments named as in ``controls``.
        controls: argument name -> a value widget (ToggleButtons, Dropdown...), shown in this order.
        note: a sentence added after the standard "needs a running kernel" note.

    Returns:
        A VBox: the controls and the button, the note, and the Output. ``box.button``,
        ``box.output``, ``box.controls`` and ``box.show(*args, **kwargs)`` (what a click does, with
        the arguments passed to ``compute``) are exposed for tests.
    """
    from IPython.display import display

    controls = dict(controls)
    button = W.Button(description="compute", icon="play", button_style="primary")
    text = _KERNEL_NOTE + (f" {note}" if note else "")
    out = W.Output()

    def show(*args, **kwargs) -> None:
        out.clear_output(wait=True)
        with out:
            try:
                fig = compute(*args, **kwargs)
            except Exception as e:  # e.g. a value the experiment refuses: show the message
                print(f"{type(e).__name__}: {e}")
                return
            display(png_widget(figure_to_png(fig)))

    button.on_click(lambda _: show(**{name: w.value for name, w in controls.items()}))
    box = W.VBox([W.HBox([*controls.values(), button]), W.HTML(f"<small>{text}</small>"), out])
    box.button, box.output, box.controls, box.show = button, out, controls, show
    return box
