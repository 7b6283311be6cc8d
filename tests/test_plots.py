"""The shared plot helpers under Agg: they return their artists, label axes, never show."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from dipnb import plots


@pytest.fixture(autouse=True)
def _no_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plots must never call plt.show"))


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_use_book_style():
    plots.use_book_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["image.cmap"] == "gray"


@pytest.mark.parametrize("shape", [(3, 37, 31), (1, 37, 31), (37, 31), (1, 3, 37, 31)])
def test_show_image(shape, np_rng):
    img = np_rng.random(shape)
    fig, ax = plt.subplots()
    im = plots.show_image(img, ax, title="clean")
    assert isinstance(im, AxesImage) and im.axes is ax
    assert im.get_array().shape[:2] == (37, 31)
    assert ax.get_title() == "clean" and not ax.get_xticks().size


def test_show_image_clips_and_makes_its_own_axes():
    im = plots.show_image(np.full((1, 4, 5), 2.0))
    assert im.get_array().max() == 1.0


def test_show_spectrum_labels_units(np_rng):
    fig, ax = plt.subplots()
    im = plots.show_spectrum(np_rng.random((3, 37, 31)), ax, title="spectrum")
    assert isinstance(im, AxesImage)
    assert "cycles/pixel" in ax.get_xlabel() and "cycles/pixel" in ax.get_ylabel()
    assert im.get_extent() == [-0.5, 0.5, 0.5, -0.5]


def test_curves():
    x = np.arange(10)
    ax = plots.plot_curve(x, np.exp(-x), label="loss", ylabel="MSE", logy=True)
    assert isinstance(ax, Axes) and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "MSE"
    assert ax.get_legend() is not None
    ax2 = plots.plot_curves(x, {"a": x, "b": 2 * x}, ylabel="PSNR (dB)")
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["a", "b"]
    plots.mark_iteration(ax2, 4, label="best")
    assert any(t.get_text() == "best" for t in ax2.texts)


def test_image_grid(np_rng):
    imgs = [np_rng.random((3, 8, 8)) for _ in range(5)]
    fig = plots.image_grid(imgs, [f"#{i}" for i in range(5)], ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert [a.get_title() for a in fig.axes[:5]] == [f"#{i}" for i in range(5)]
    assert not fig.axes[5].axison, "the unused cell is blank"


def test_animate_frames_is_self_contained(np_rng):
    frames = [np_rng.random((1, 16, 16)) for _ in range(3)]
    html = plots.animate_frames(frames, ["it 0", "it 10", "it 20"], interval=100)
    assert "<script" in html.data and html.data.count("data:image/") >= 3, "every frame embedded"
    assert plt.get_fignums() == [], "the animation's figure is closed"


def test_figure_to_png_and_uri():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = plots.figure_to_png(fig)
    assert png.startswith(b"\x89PNG") and not plt.fignum_exists(fig.number)
    assert plots.png_data_uri(png).startswith("data:image/png;base64,iVBOR")


def test_num_prints_what_was_measured_and_na_for_nothing():
    assert plots.num(1.23456) == "1.23" and plots.num(3, ".1f") == "3.0"
    assert plots.num(None) == plots.num(float("nan")) == plots.num(np.float32("nan")) == "n/a"
    assert plots.num(float("inf"), ".1f") == "inf"
