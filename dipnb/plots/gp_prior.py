"""Figures of the chapter on the prior at initialisation (Cheng et al. 2019).

They take the dicts that the ``gp-prior`` experiments store: a *samples* dict (one
``gp-prior-samples`` run, ``result["samples"]``), a *kernel* dict (``result["kernel"]``) and the
*sweep* dict ``result["sweep"]`` (mode -> depth -> a brief samples dict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import PALETTE, _ax, _label_map, show_image

__all__ = [
    "stretch",
    "show_samples",
    "plot_mean_spectrum",
    "plot_radial_spectrum",
    "plot_covariance_map",
    "plot_direction_profiles",
    "plot_variance_map",
    "plot_block_profiles",
    "plot_kernel_samples",
    "plot_kernel_comparison",
    "plot_correlation_lengths",
    "plot_theory_lengths",
    "depth_panel",
    "spectrum_figure",
    "covariance_figure",
    "stationarity_figure",
    "kernel_figure",
    "lengths_figure",
]


def stretch(img) -> np.ndarray:
    """An image rescaled to fill [0, 1] (its own min to max), so faint structure shows."""
    a = np.asarray(img, dtype=np.float64)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def show_samples(examples: Sequence, *, raw: bool = True, titles: Sequence[str] | None = None):
    """Outputs of different random nets, as the net gives them and contrast-stretched.

    Args:
        examples: ``(n, 3, H, W)`` outputs in [0, 1].
        raw: add a first row with the outputs unstretched.

    Returns:
        The figure.
    """
    n = len(examples)
    rows = 2 if raw else 1
    fig, axes = plt.subplots(rows, n, figsize=(1.9 * n, 2.0 * rows + 0.2), squeeze=False, layout="constrained")
    for i, img in enumerate(examples):
        title = titles[i] if titles else f"net {i}"
        if raw:
            show_image(img, axes[0, i], f"{title}: as output")
        show_image(stretch(img), axes[rows - 1, i], f"{title}: stretched")
    return fig


def plot_mean_spectrum(samples: Mapping, ax=None, vmin: float | None = None):
    """The log10 power spectrum averaged over all samples, DC at the centre."""
    ax = _ax(ax)
    p = np.log10(samples["power_2d"] + 1e-12)
    hi = p.max()
    im = ax.imshow(p, extent=(-0.5, 0.5, 0.5, -0.5), cmap="magma", vmin=vmin if vmin is not None else hi - 4, vmax=hi)
    _label_map(ax, "horizontal frequency (cycles/pixel)", "vertical frequency (cycles/pixel)",
               "mean power spectrum (log10)")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="log10 power")
    return ax


def plot_radial_spectrum(samples: Mapping, ax=None, label: str | None = None, white: bool = True):
    """Radially averaged power against frequency, with white noise of the same variance for scale.

    The shaded regions are the lowest and the highest of the four radial bands whose energies
    make the chapter's high/low ratio.
    """
    ax = _ax(ax)
    f, p = samples["radial_frequencies"], samples["radial_power"]
    ax.semilogy(f, p, "o-", ms=3, label=label or "outputs of random nets")
    if white:
        ax.axhline(samples["variance"], color="0.4", ls="--", lw=1, label="white noise, same variance")
    ax.axvspan(0, 0.125, color=PALETTE[2], alpha=0.12, lw=0)
    ax.axvspan(0.375, 0.5, color=PALETTE[1], alpha=0.12, lw=0)
    ax.set_xlim(0, 0.5)
    ax.set_xlabel("radial frequency (cycles/pixel)")
    ax.set_ylabel("mean power")
    ax.set_title("power falls with frequency")
    ax.legend(fontsize=8)
    return ax


def plot_covariance_map(samples: Mapping, ax=None, title: str = "covariance by offset", colorbar: bool = True):
    """The normalised covariance of two pixels as a function of their offset (dy, dx)."""
    ax = _ax(ax)
    rho = samples["covariance_map"]
    D = (rho.shape[0] - 1) // 2
    im = ax.imshow(rho, extent=(-D - 0.5, D + 0.5, D + 0.5, -D - 0.5), cmap="RdBu_r", vmin=-1, vmax=1)
    _label_map(ax, "horizontal offset dx (pixels)", "vertical offset dy (pixels)", title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="covariance / variance")
    return ax


def plot_direction_profiles(samples: Mapping, ax=None):
    """Normalised covariance against distance, horizontally, vertically and diagonally."""
    ax = _ax(ax)
    d = samples["offsets"]
    ax.plot(d, samples["profile_x"], "o-", ms=3, label="horizontal")
    ax.plot(d, samples["profile_y"], "s--", ms=3, label="vertical")
    ax.plot(d * np.sqrt(2), samples["profile_diagonal"], "^:", ms=3, label="diagonal")
    ax.axhline(0.5, color="0.6", lw=0.8)
    L = samples["correlation_length"]
    if np.isfinite(L):
        ax.axvline(L, color="0.3", ls="--", lw=1)
        ax.annotate(f"correlation length {L:.1f} px", (L, 0.5), xytext=(5, 8), textcoords="offset points", fontsize=8)
    ax.set_xlim(0, d[-1])
    ax.set_xlabel("distance between the pixels (pixels)")
    ax.set_ylabel("covariance / variance")
    ax.set_title("the same in every direction")
    ax.legend(fontsize=8)
    return ax


def plot_variance_map(samples: Mapping, ax=None):
    """Variance of every pixel over the samples, with the blocks that test stationarity outlined."""
    ax = _ax(ax)
    v = samples["variance_map"] / samples["variance"]
    im = ax.imshow(v, cmap="viridis", vmin=0, vmax=max(2.0, float(np.percentile(v, 99))))
    for i, m in enumerate(samples["block_masks"]):
        r, c = np.nonzero(m)
        ax.add_patch(plt.Rectangle((c.min() - 0.5, r.min() - 0.5), c.max() - c.min() + 1, r.max() - r.min() + 1,
                                   fill=False, ec=PALETTE[i % len(PALETTE)], lw=1.5))
        ax.text(c.min() + 2, r.min() + 2, f"block {i}", color="w", fontsize=8, va="top")
    _label_map(ax, "column (pixels)", "row (pixels)", "variance per pixel / interior mean")
    ax.figure.colorbar(im, ax=ax, shrink=0.8)
    return ax


def plot_block_profiles(samples: Mapping, ax=None):
    """Covariance against offset measured in each block, against the whole interior's."""
    ax = _ax(ax)
    d = samples["offsets"]
    for i, p in enumerate(samples["block_profiles"]):
        ax.plot(d, p, "-", color=PALETTE[i % len(PALETTE)], lw=1.2, label=f"block {i}")
    ax.plot(d, samples["profile"], "k--", lw=1.5, label="whole interior")
    ax.set_xlabel("offset (pixels, horizontal and vertical averaged)")
    ax.set_ylabel("covariance / interior variance")
    ax.set_title(f"stationary: max deviation {samples['stationarity_max_deviation']:.3f}")
    ax.legend(fontsize=8)
    return ax


def plot_kernel_samples(kernel: Mapping, ax=None):
    """A few outputs of random 1D decoders."""
    ax = _ax(ax)
    for i, y in enumerate(kernel["examples"]):
        ax.plot(np.arange(len(y)), y, lw=1.2, label=f"decoder {i}")
    ax.set_xlabel("position (samples)")
    ax.set_ylabel("output")
    ax.set_title("outputs of random 1D decoders")
    return ax


def plot_kernel_comparison(kernel: Mapping, ax=None, *, centred: bool = False):
    """The infinite-width kernel (line), its white-noise idealisation (dashed) and the measurement (dots)."""
    ax = _ax(ax)
    sfx = "_centred" if centred else ""
    d = kernel["offsets"]
    ax.plot(d, kernel["rho_theory" + sfx], "-", color=PALETTE[0], lw=2, label="theory, this z")
    ax.plot(d, kernel["rho_ideal" + sfx], "--", color=PALETTE[2], lw=1.2, label="theory, ideal white z")
    ax.plot(d, kernel["rho_empirical" + sfx], "o", color=PALETTE[1], ms=3.5, label="measured")
    err = np.abs(kernel["rho_empirical" + sfx] - kernel["rho_theory" + sfx]).max()
    ax.set_xlabel("offset (samples)")
    ax.set_ylabel("kernel / variance")
    what = "each output's mean removed" if centred else "as output"
    ax.set_title(f"{what}: max error {err:.3f}")
    ax.legend(fontsize=8)
    return ax


def _length_axes(ax, xlabel: str, ylabel: str, title: str):
    """Labels of a correlation length against an integer count, one line per upsampling mode."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(title="upsampling", fontsize=8)
    return ax


def plot_correlation_lengths(sweep: Mapping, ax=None):
    """Correlation length of the skip net's outputs against depth, one line per upsampling mode."""
    ax = _ax(ax)
    for i, (mode, per) in enumerate(sweep.items()):
        depths = sorted(per)
        ax.plot(depths, [per[d]["correlation_length"] for d in depths], "o-", color=PALETTE[i], label=mode)
    return _length_axes(ax, "depth (scales of the skip net)", "correlation length (pixels)", "2D skip net, measured")


def plot_theory_lengths(lengths: Mapping, ax=None, stages: Sequence[int] = (1, 2, 3, 4, 5)):
    """Correlation length of the infinite-width 1D kernel against the number of x2 upsamplings."""
    ax = _ax(ax)
    for i, (mode, vals) in enumerate(lengths.items()):
        ax.plot(list(stages), vals, "o-", color=PALETTE[i], label=mode)
    ax.set_yscale("log", base=2)
    return _length_axes(ax, "x2 upsamplings", "correlation length (samples)", "1D decoder, infinite-width theory")


def depth_panel(sweep: Mapping, depth: int):
    """For one depth: two outputs and the covariance map, one row per upsampling mode."""
    modes = list(sweep)
    fig, axes = plt.subplots(len(modes), 3, figsize=(7.6, 2.6 * len(modes)), squeeze=False, layout="constrained")
    for r, mode in enumerate(modes):
        point = sweep[mode][depth]
        for c in range(2):
            show_image(stretch(point["examples"][c]), axes[r, c], f"{mode}, net {c} (stretched)")
        L = point["correlation_length"]
        plot_covariance_map(point, axes[r, 2], title=f"correlation length {L:.1f} px", colorbar=False)
    fig.suptitle(f"skip net of depth {depth} at initialisation")
    return fig


# --------------------------------------------------------------------------------------------
# The chapter's multi-panel figures
# --------------------------------------------------------------------------------------------


def _row(n: int, width: float = 10.0, height: float = 3.7):
    fig, axes = plt.subplots(1, n, figsize=(width, height), layout="constrained")
    return fig, axes


def _pair(left, right, samples: Mapping):
    fig, (a, b) = _row(2)
    left(samples, a)
    right(samples, b)
    return fig


def spectrum_figure(samples: Mapping):
    """Mean 2D power spectrum (left) and its radial average against white noise (right)."""
    return _pair(plot_mean_spectrum, plot_radial_spectrum, samples)


def covariance_figure(samples: Mapping):
    """Normalised covariance by 2D offset (left) and along three directions (right)."""
    return _pair(plot_covariance_map, plot_direction_profiles, samples)


def stationarity_figure(samples: Mapping):
    """Variance of each pixel with the test blocks (left) and the covariance per block (right)."""
    return _pair(plot_variance_map, plot_block_profiles, samples)


def kernel_figure(kernel: Mapping):
    """1D decoder: samples, and theory against measurement, raw and with each sample's mean removed."""
    fig, (a, b, c) = _row(3, width=12.0, height=3.5)
    plot_kernel_samples(kernel, a)
    plot_kernel_comparison(kernel, b)
    plot_kernel_comparison(kernel, c, centred=True)
    return fig


def lengths_figure(sweep: Mapping, theory: Mapping):
    """Correlation length: 1D infinite-width theory per upsampling (left), 2D skip net per depth (right)."""
    fig, (a, b) = _row(2, height=3.5)
    plot_theory_lengths(theory, a)
    plot_correlation_lengths(sweep, b)
    return fig
