"""Figures and controls of the upsampling chapter (paper Sec. 3.2, Appendix E, Fig. 4).

Plot functions take an ``ax`` (or build their own figure when they need several) and the dicts
that the ``upsampling`` experiment stores: a *response* dict
(:func:`dipnb.experiments.upsampling.response_data`) and a *run* dict (one fitted stride,
``result["runs"][stride]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np

from .. import spectral, widgets
from . import PALETTE, _ax, _label_map, show_image

__all__ = [
    "plot_decomposition",
    "plot_response",
    "plot_responses",
    "plot_formula_errors",
    "responses_figure",
    "plot_hf_vs_stride",
    "plot_band_errors",
    "plot_hf_energy",
    "fig4",
    "stride_panel",
    "stride_mode_slider",
    "live_explorer",
]

_ERR_RANGE = (-3.0, 0.5)  # log10 of the relative spectral error shown by the colour maps


def plot_decomposition(x, mode: str, stride: int):
    """Zero insertion, then the kernel, equals PyTorch's upsampling: three rows on one time axis.

    Args:
        x: a short 1D signal ``(N,)``.

    Returns:
        The figure.
    """
    from ..spectral import torch_upsample_1d, upsample_by_zero_insertion

    x = np.asarray(x, dtype=np.float64)
    L = int(stride)
    y, u, h = upsample_by_zero_insertion(x, mode, L)
    yt = torch_upsample_1d(x, mode, L)
    centre = spectral.upsampling_kernel(mode, L)[1]
    n = np.arange(u.size)
    fig = plt.figure(figsize=(6.4, 5.4), layout="constrained")
    ax_u, ax_h, ax_y = fig.subplots(3, 1, gridspec_kw={"height_ratios": [1, 0.8, 1]})
    ax_u.sharex(ax_y)
    ax_u.stem(n, u, linefmt="C0-", markerfmt="C0o", basefmt="0.7")
    ax_u.set_xlabel("output sample")
    ax_u.set_ylabel("value")
    ax_u.set_title(f"1. insert {L - 1} zeros after every sample (stride {L})")
    j = np.arange(h.size) - centre
    ax_h.stem(j, h, linefmt="C1-", markerfmt="C1o", basefmt="0.7")
    ax_h.set_xlabel("tap offset from the kernel's centre (samples)")
    ax_h.set_ylabel("tap")
    ax_h.set_title(f"2. the fixed {mode} kernel h ({h.size} taps, sum {h.sum():g} = L)")
    ax_y.plot(n, y, "-", color=PALETTE[2], lw=1.5)
    ax_y.plot(n, yt, "o", color=PALETTE[7], ms=3)
    ax_y.set_xlabel("output sample")
    ax_y.set_ylabel("value")
    ax_y.set_title("3. their convolution (line) = torch's upsampling (dots)")
    return fig


def _mark_bands(ax, L: int) -> None:
    ax.axvline(1 / (2 * L), color="0.4", ls=":", lw=1, label="1/(2L): input's Nyquist")
    if 1 / L <= 0.5:
        ax.axvline(1 / L, color="0.4", ls="--", lw=0.8, label="1/L: first zero")


def plot_response(resp: Mapping, ax=None, *, paper: bool = True, logy: bool = True, title: str | None = None):
    """One upsampler's response: PyTorch measured (dots), our closed form (line), the paper's (dashed).

    The frequency axis is in cycles per output sample; dotted line: 1/(2L), the highest frequency
    the low-resolution input can hold; dashed: 1/L, the kernel's first zero.
    """
    ax = _ax(ax)
    k, L = resp["k"], int(resp["stride"])
    floor = 1e-5
    every = max(1, k.size // 120)
    ax.plot(k, np.maximum(resp["analytic"], floor), color=PALETTE[0], lw=1.6, label="closed form (ours)")
    ax.plot(k[::every], np.maximum(resp["measured"][::every], floor), "o", ms=2.5, color=PALETTE[7],
            label="measured (torch)")
    if paper:
        ax.plot(k, np.maximum(resp["continuous"], floor), "--", color=PALETTE[1], lw=1.2,
                label="paper (normalised)")
    _mark_bands(ax, L)
    _response_axes(ax, logy, floor)
    ax.set_title(title or f"{resp['mode']} upsampling, stride {L}")
    ax.legend(loc="upper right", fontsize=8, frameon=True, framealpha=0.9, edgecolor="none")
    return ax


def _response_axes(ax, logy: bool, floor: float) -> None:
    """Frequency axis up to Nyquist; gain axis relative to zero frequency, log down to ``floor``."""
    ax.set_xlim(0, 0.5)
    if logy:
        ax.set_yscale("log")
        ax.set_ylim(floor, 2)
    ax.set_xlabel("frequency (cycles/output sample)")
    ax.set_ylabel("|H(k)| / H(0)")


def plot_responses(resps: Sequence[Mapping], ax=None, *, logy: bool = True):
    """Closed-form responses of several strides (lines) over PyTorch's measured ones (dots)."""
    ax = _ax(ax)
    floor = 1e-5
    for i, r in enumerate(resps):
        k, c = r["k"], PALETTE[i % len(PALETTE)]
        every = max(1, k.size // 80)
        ax.plot(k, np.maximum(r["analytic"], floor), color=c, lw=1.4, label=f"L = {r['stride']}")
        ax.plot(k[::every], np.maximum(r["measured"][::every], floor), "o", ms=2, color=c)
    _response_axes(ax, logy, floor)
    ax.set_title(f"{resps[0]['mode']}: closed form (lines), torch (dots)")
    ax.legend(fontsize=8, ncols=2)
    return ax


def plot_formula_errors(resps: Sequence[Mapping], ax=None):
    """``|formula - measured|`` against frequency: the paper's normalised formulas vs our closed form."""
    ax = _ax(ax)
    floor = 1e-17
    for i, r in enumerate(resps):
        c = PALETTE[i % len(PALETTE)]
        ax.plot(r["k"], np.maximum(np.abs(r["continuous"] - r["measured"]), floor), color=c, lw=1.2,
                label=f"paper, L = {r['stride']}")
        ax.plot(r["k"], np.maximum(np.abs(r["analytic"] - r["measured"]), floor), ":", color=c, lw=1)
    ax.set_yscale("log")
    ax.set_ylim(1e-17, 1)
    ax.set_xlim(0, 0.5)
    ax.set_xlabel("frequency (cycles/output sample)")
    ax.set_ylabel("|formula - measured|")
    ax.set_title(f"{resps[0]['mode']}: paper (solid) vs closed form (dotted)")
    ax.legend(fontsize=8, ncols=2)
    return ax


def responses_figure(by_mode: Mapping[str, Sequence[Mapping]], kind: str = "responses"):
    """One panel per mode: :func:`plot_responses` (``kind="responses"``) or
    :func:`plot_formula_errors` (``kind="errors"``). Returns the figure."""
    fn = {"responses": plot_responses, "errors": plot_formula_errors}[kind]
    fig, axes = plt.subplots(1, len(by_mode), figsize=(5.4 * len(by_mode), 3.7), layout="constrained",
                             squeeze=False)
    for ax, resps in zip(axes[0], by_mode.values(), strict=True):
        fn(resps, ax)
    return fig


def plot_hf_vs_stride(energies: Mapping[str, Mapping[int, float]], target_energy: float, cutoff: float,
                      iteration: int, ax=None):
    """High-frequency energy of the output at one iteration against the stride, one line per mode."""
    ax = _ax(ax)
    for i, (mode, e) in enumerate(energies.items()):
        s = sorted(e)
        ax.plot(s, [e[v] for v in s], "o-", color=PALETTE[i], label=mode)
    ax.axhline(target_energy, color="0.3", ls="--", lw=1, label="target image")
    ax.set_xscale("log", base=2)
    strides = sorted({v for e in energies.values() for v in e})
    ax.set_xticks(strides, [str(v) for v in strides])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("stride L")
    ax.set_ylabel(f"energy above {cutoff:g} cyc/px")
    ax.set_title(f"output at iteration {iteration}")
    ax.legend(fontsize=8)
    return ax


def plot_band_errors(run: Mapping, ax=None, *, title: str | None = None, colorbar: bool = False):
    """The relative spectral error per radial band over iterations (paper Fig. 4 a-b).

    Dark = small error. The vertical axis is radial frequency in cycles per pixel (low at the
    bottom), the horizontal one the iteration; the colour is log10 of
    :func:`dipnb.spectral.band_errors`.
    """
    ax = _ax(ax)
    it, e, edges = run["iterations"], run["band_errors"], run["band_edges"]
    im = ax.imshow(
        np.log10(np.maximum(e.T, 1e-6)), origin="lower", aspect="auto", cmap="magma",
        vmin=_ERR_RANGE[0], vmax=_ERR_RANGE[1], extent=(it[0], it[-1], edges[0], edges[-1]),
        interpolation="nearest",
    )
    _label_map(ax, "iteration", "radial frequency (cycles/pixel)", title or f"spectral error, stride {run['stride']}")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="log10 relative error")
    return im


def plot_hf_energy(runs: Mapping[int, Mapping], target_energy: float, cutoff: float, ax=None):
    """Energy of each output above ``cutoff`` cycles/pixel over iterations, with the image's."""
    ax = _ax(ax)
    for i, (s, r) in enumerate(sorted(runs.items())):
        ax.plot(r["iterations"], r["hf_energy"], color=PALETTE[i], label=f"stride {s}")
    ax.axhline(target_energy, color="0.3", ls="--", lw=1, label="target image")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"energy above {cutoff:g} cyc/px")
    ax.set_title("high-frequency energy")
    ax.legend(fontsize=8)
    return ax


def fig4(result, cutoff: float | None = None):
    """The paper's Fig. 4 for a two-stride ``upsampling`` result, plus energy curves and the target.

    Top: spectral error over iterations for each stride, and the high-frequency energy of both
    outputs. Bottom: both outputs at the last iteration, and the target.
    """
    data, cfg = result.data, result.config
    runs = data["runs"]
    small, large = min(runs), max(runs)
    it = data["iteration"]
    fig, axes = plt.subplots(2, 3, figsize=(11, 7), layout="constrained")
    im = None
    for col, s in enumerate((small, large)):
        im = plot_band_errors(runs[s], axes[0, col], title=f"({'ab'[col]}) spectral error, stride {s}")
    fig.colorbar(im, ax=axes[0, 1], label="log10 relative error")
    plot_hf_energy(runs, data["target_hf_energy"], cutoff or cfg.hf_cutoff, axes[0, 2])
    for col, s in enumerate((small, large)):
        show_image(runs[s]["final"], axes[1, col], f"({'cd'[col]}) stride {s}, iteration {it}")
    show_image(data["target"], axes[1, 2], "target")
    return fig


def stride_panel(run: Mapping):
    """One grid point of the stride slider: response, output, and spectral error of one stride."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), layout="constrained",
                             gridspec_kw={"width_ratios": [1.25, 0.9, 1.25]})
    plot_response(run["response"], axes[0], title=f"{run['mode']} response, L = {run['stride']}")
    show_image(run["final"], axes[1], f"output at iteration {run['final_iteration']}")
    plot_band_errors(run, axes[2], colorbar=True)
    return fig


def stride_mode_slider(pngs: Mapping[str, Sequence[bytes]], strides: Sequence[int], *, value: int | None = None,
                       mode: str | None = None) -> W.VBox:
    """A mode toggle and a stride slider over precomputed figures; works without a kernel.

    A :func:`dipnb.widgets.figure_grid`: each mode has a Stack of pictures (one per stride) linked
    in the browser to the one slider, and an outer Stack of the modes is linked to the toggle, so
    both controls work in the static HTML book and a mode switch keeps the stride.

    Args:
        pngs: mode -> PNG bytes, one per stride.
        strides: the stride of each picture.

    Returns:
        A VBox; ``box.toggle``, ``box.slider``, ``box.stack`` are its parts.
    """
    return widgets.figure_grid(pngs, strides, description="stride L", choice_description="mode", value=value,
                               choice=mode, button_width="90px")


def live_explorer(compute: Callable[[str, int], object], strides: Sequence[int], *,
                  modes: Sequence[str] = ("bilinear", "nearest"), value: int | None = None) -> W.VBox:
    """Controls that compute a new grid point with a running kernel (nothing runs until clicked).

    The chapter's mode and stride controls on :func:`dipnb.widgets.live_explorer`.

    Args:
        compute: ``(mode, stride) -> Figure`` (e.g. run the experiment and draw :func:`stride_panel`).
        strides: the strides offered.

    Returns:
        A VBox with a mode toggle, a stride dropdown, a button and an Output; ``box.button``,
        ``box.output`` and ``box.show(mode, stride)`` (what a click does) are exposed for testing.
    """
    strides = list(strides)
    controls = {
        "mode": W.ToggleButtons(options=list(modes), description="mode",
                                style={"description_width": "initial", "button_width": "90px"}),
        "stride": W.Dropdown(options=strides, value=value if value is not None else strides[0],
                             description="stride L", style={"description_width": "initial"},
                             layout=W.Layout(width="180px")),
    }
    return widgets.live_explorer(lambda mode, stride: compute(mode, int(stride)), controls)
