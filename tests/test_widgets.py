"""Controls over precomputed figures, and the live explorer, under ipywidgets 8.x and 7.7.

With 8.x (the book's build) the pictures switch in the browser (Stack + jslink, no kernel); with
7.7 (what Colab preinstalls, no Stack) the kernel switches them. Every test here runs under both:
`make unit` runs them with 8.x, `make colab-compat` with 7.7.1.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import pytest
import traitlets
from ipywidgets.widgets import widget as _widget

from dipnb import widgets

IPYWIDGETS_MAJOR = int(W.__version__.split(".")[0])


def _figure(v):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, v])
    ax.set_title(f"stride {v}")
    return fig


def _live_widgets() -> list:
    """Every live widget (ipywidgets 8 keeps them in ``_instances``, 7 in ``Widget.widgets``)."""
    registry = getattr(_widget, "_instances", None)
    return list((registry if registry is not None else W.Widget.widgets).values())


def _links_between(a, b) -> list:
    """The browser-side links (jslink) between two widgets."""
    return [
        w for w in _live_widgets()
        if isinstance(w, W.widgets.widget_link.Link) and {w.source[0], w.target[0]} == {a, b}
    ]


def _shown(stack) -> list[int]:
    """Indices of the children a kernel-switched Stack displays."""
    return [i for i, c in enumerate(stack.children) if c.layout.display != "none"]


def _assert_linked(control, stack):
    """``stack.selected_index`` follows ``control.index``: in the browser (8.x) or in the kernel (7.x)."""
    assert control.index == stack.selected_index
    if widgets.HAS_BROWSER_STACK:
        links = _links_between(control, stack)
        assert len(links) == 1, f"expected one jslink between {type(control).__name__} and the Stack, got {len(links)}"
        assert {links[0].source, links[0].target} == {(control, "index"), (stack, "selected_index")}
        assert stack.link is links[0]
        return
    assert isinstance(stack.link, traitlets.link)
    assert _shown(stack) == [control.index], "only the selected child is shown"
    start = control.index
    for i in [*range(len(control.options)), start]:  # move the control through every option, then back
        control.index = i
        assert stack.selected_index == i, f"the Stack did not follow the control to index {i}"
        assert _shown(stack) == [i], f"index {i}: the kernel shows children {_shown(stack)}"


def test_the_mechanism_follows_the_installed_ipywidgets():
    assert widgets.HAS_BROWSER_STACK == (IPYWIDGETS_MAJOR >= 8), f"ipywidgets {W.__version__}"
    assert widgets.Stack is (W.Stack if IPYWIDGETS_MAJOR >= 8 else widgets._KernelStack)


def test_figure_slider_builds_a_linked_stack():
    box = widgets.figure_slider([2, 4, 8], _figure, description="stride", value=4)
    assert isinstance(box, W.VBox) and box.children == (box.slider, box.stack)
    assert isinstance(box.slider, W.SelectionSlider) and isinstance(box.stack, widgets.Stack)
    assert box.slider.options == ("2", "4", "8") and box.slider.description == "stride"
    assert len(box.stack.children) == 3
    assert all(isinstance(c, W.Image) and bytes(c.value[:4]) == b"\x89PNG" for c in box.stack.children)
    assert box.slider.index == box.stack.selected_index == 1, "starts at the requested value"
    _assert_linked(box.slider, box.stack)
    assert plt.get_fignums() == [], "every figure is closed once rendered"


def test_the_kernel_stack_switches_its_children():
    """The 7.x mechanism, tested under any version: a kernel-side link shows one child at a time."""
    kids = [W.Label("a"), W.Label("b"), W.HBox(layout=W.Layout(display="flex"))]
    stack = widgets._KernelStack(kids, selected_index=1)
    assert stack.children == tuple(kids) and _shown(stack) == [1]
    slider = W.SelectionSlider(options=["a", "b", "c"], index=1)
    traitlets.link((slider, "index"), (stack, "selected_index"))
    slider.index = 2
    assert stack.selected_index == 2 and _shown(stack) == [2]
    assert kids[2].layout.display == "flex", "a child shown again keeps its own display"
    slider.index = 0
    assert _shown(stack) == [0] and kids[2].layout.display == "none"
    stack.children = (*kids, W.Label("d"))
    assert _shown(stack) == [0], "a child added later is hidden too"


def test_figure_slider_with_pngs():
    pngs = [widgets.figure_to_png(_figure(v)) for v in (1, 2)]
    box = widgets.figure_slider([1, 2], None, description="k", pngs=pngs)
    assert [bytes(c.value) for c in box.stack.children] == pngs and box.slider.index == 0


def test_figure_slider_bad_input():
    with pytest.raises(ValueError, match="at least one value"):
        widgets.figure_slider([], _figure, description="x")
    with pytest.raises(ValueError, match="1 pictures for 2 values"):
        widgets.figure_slider([1, 2], None, description="x", pngs=[b""])


# --------------------------------------------------------------------------------------------
# choice_stack, figure_grid: toggles over precomputed widgets, linked in the browser (8.x)
# or in the kernel (7.x)
# --------------------------------------------------------------------------------------------


def test_choice_stack_links_the_toggle_to_the_stack():
    kids = [W.Label("conv"), W.Label("linear")]
    box = widgets.choice_stack(["conv", "linear"], kids, description="model", value="linear")
    assert isinstance(box.toggle, W.ToggleButtons) and isinstance(box.stack, widgets.Stack)
    assert box.children == (box.toggle, box.stack)
    assert box.toggle.options == ("conv", "linear") and box.toggle.description == "model"
    assert box.stack.children == tuple(kids), "the children are shown as given, in order"
    assert box.toggle.index == 1, "starts at the requested label"
    _assert_linked(box.toggle, box.stack)


def test_choice_stack_of_sliders_and_pictures():
    sliders = [widgets.figure_slider([1, 2], _figure, description="depth") for _ in range(2)]
    box = widgets.choice_stack(["a", "b"], sliders, description="model")
    assert box.stack.children == tuple(sliders) and box.toggle.index == 0
    for s in sliders:  # the inner sliders keep their own links
        _assert_linked(s.slider, s.stack)
    png = widgets.figure_to_png(_figure(1))
    extra = W.IntSlider()
    pics = widgets.choice_stack(["x", "y"], [png, png], description="p", controls=[extra], button_width="90px")
    assert all(isinstance(c, W.Image) and bytes(c.value) == png for c in pics.stack.children)
    assert pics.children[0].children == (pics.toggle, extra), "extra controls share the buttons' row"
    assert pics.toggle.style.button_width == "90px"
    assert plt.get_fignums() == []


def test_choice_stack_bad_input():
    with pytest.raises(ValueError, match="at least one choice"):
        widgets.choice_stack([], [], description="m")
    with pytest.raises(ValueError, match="1 children for 2 labels"):
        widgets.choice_stack(["a", "b"], [W.Label()], description="m")
    with pytest.raises(ValueError, match="'c' is not one of"):
        widgets.choice_stack(["a", "b"], [W.Label(), W.Label()], description="m", value="c")


def test_figure_grid_holds_one_picture_per_grid_value():
    values = [2, 4, 8]
    pngs = {m: [widgets.figure_to_png(_figure(i * v)) for v in values] for i, m in enumerate(("bilinear", "nearest"))}
    box = widgets.figure_grid(pngs, values, description="stride L", choice_description="mode", value=4,
                              choice="nearest")
    assert box.toggle.options == ("bilinear", "nearest") and box.slider.options == ("2", "4", "8")
    assert box.children[0].children == (box.toggle, box.slider) and box.children[1] is box.stack
    assert len(box.stack.children) == 2
    for m, inner in zip(pngs, box.stack.children, strict=True):
        assert [bytes(c.value) for c in inner.children] == pngs[m], f"{m}: one picture per stride, in order"
        _assert_linked(box.slider, inner)  # one slider drives every mode's Stack
    _assert_linked(box.toggle, box.stack)
    assert box.slider.index == 1 and box.toggle.index == 1
    with pytest.raises(ValueError, match="1 pictures for mode 'a' and 2 values"):
        widgets.figure_grid({"a": [b""]}, [1, 2], description="s", choice_description="mode")
    with pytest.raises(ValueError, match="value=3 is not one of"):
        widgets.figure_slider([1, 2], None, description="x", pngs=[b"", b""], value=3)


# --------------------------------------------------------------------------------------------
# live_explorer: nothing runs until the button is clicked
# --------------------------------------------------------------------------------------------


def test_live_explorer_computes_only_on_click():
    calls = []

    def compute(model, depth):
        calls.append((model, depth))
        return _figure(depth)

    controls = {"model": W.ToggleButtons(options=["conv", "linear"]), "depth": W.Dropdown(options=[2, 4], value=4)}
    box = widgets.live_explorer(compute, controls, note="A run takes seconds.")
    assert calls == [], "building the panel computes nothing (the static book runs nothing)"
    assert isinstance(box.output, W.Output) and isinstance(box.button, W.Button)
    assert box.children[0].children == (*controls.values(), box.button)
    assert "running Python kernel" in box.children[1].value and "A run takes seconds." in box.children[1].value
    box.button.click()
    assert calls == [("conv", 4)], "a click calls compute with the controls' values, by name"
    controls["model"].value, controls["depth"].value = "linear", 2
    box.button.click()
    assert calls[-1] == ("linear", 2)
    box.show("conv", depth=2)  # what a click does, with explicit arguments
    assert calls[-1] == ("conv", 2)
    assert plt.get_fignums() == [], "each computed figure is rendered and closed"


def test_live_explorer_shows_errors_instead_of_raising(capsys):
    def broken(depth):
        raise ValueError(f"depth={depth} is too deep")

    box = widgets.live_explorer(broken, {"depth": W.Dropdown(options=[99])})
    box.button.click()  # does not raise
    assert "ValueError: depth=99 is too deep" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# progress bars: what tqdm.auto gives a notebook (fit and sweep use it) builds with this version
# --------------------------------------------------------------------------------------------


def test_notebook_progress_bar_builds_and_counts(capsys):
    from tqdm.notebook import tqdm

    bar = tqdm(total=4, desc="fit", leave=False, mininterval=0)  # redraw at every update
    hbox = bar.container
    assert isinstance(hbox, W.HBox)
    progress = hbox.children[1]
    assert isinstance(progress, W.FloatProgress) and (progress.min, progress.max) == (0, 4)
    bar.update(3)
    assert progress.value == 3 and "fit" in hbox.children[0].value
    bar.close()
    capsys.readouterr()  # outside a kernel the bar is displayed as text
