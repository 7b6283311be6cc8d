"""Figures of the kernel-view chapter: the empirical tangent kernel of the 1D nets and the
per-frequency convergence times it predicts, against the measured ones.

Plot functions take an ``ax`` (a new one when omitted) and arrays from the ``kernel-spectrum``
and ``kernel-view`` experiments; the ``*_figure`` functions build a figure of several panels.
Frequencies are in cycles per signal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import ntk
from . import PALETTE, _ax, _label_map

__all__ = [
    "plot_kernel",
    "plot_fourier_kernel",
    "kernels_figure",
    "plot_spectral_density",
    "plot_eigen_frequencies",
    "plot_eigenvectors",
    "eigen_figure",
    "plot_offset_profile",
    "plot_predicted_vs_measured",
    "plot_se_curves",
    "plot_kernel_drift",
    "plot_width_diagonality",
    "spectrum_panel",
    "se_figure",
]


def plot_kernel(K, ax=None, title: str | None = None):
    """The kernel as an image: ``K[i, j]`` over output samples, divided by its largest entry."""
    ax = _ax(ax)
    K = np.asarray(K)
    v = np.abs(K).max()
    im = ax.imshow(K / v, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    _label_map(ax, "output sample j", "output sample i", title)
    return im


def plot_fourier_kernel(K, ax=None, title: str | None = None, floor: float = -4.0):
    r"""``log10 |\hat K[k, k']|`` in the Fourier basis (zero frequency at the centre), divided by its maximum."""
    ax = _ax(ax)
    n = np.asarray(K).shape[0]
    Kh = np.fft.fftshift(np.abs(ntk.fourier_kernel(K)))
    im = ax.imshow(
        np.log10(Kh / Kh.max() + 1e-12), cmap="magma", vmin=floor, vmax=0,
        extent=(-n / 2 - 0.5, n / 2 - 0.5, n / 2 - 0.5, -n / 2 - 0.5), interpolation="nearest",
    )
    _label_map(ax, "frequency k' (cycles/signal)", "frequency k (cycles/signal)", title)
    return im


def kernels_figure(kernels: Mapping[str, np.ndarray], zoom: int = 64):
    """Each kernel in space (top row, the first ``zoom`` samples) and in the Fourier basis (bottom row).

    Args:
        kernels: label -> ``(N, N)`` kernel.
        zoom: samples shown of the spatial kernel (its top-left corner).

    Returns:
        The figure.
    """
    n = len(kernels)
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n + 0.6, 6.4), squeeze=False, layout="constrained")
    im0 = im1 = None
    for j, (label, K) in enumerate(kernels.items()):
        im0 = plot_kernel(np.asarray(K)[:zoom, :zoom], axes[0, j], f"{label}: K (first {zoom} samples)")
        im1 = plot_fourier_kernel(K, axes[1, j], f"{label}: |K| in the Fourier basis")
    fig.colorbar(im0, ax=axes[0, :], shrink=0.8, label="K / max |K|")
    fig.colorbar(im1, ax=axes[1, :], shrink=0.8, label="log10 (|K̂| / max)")
    return fig


def plot_spectral_density(
    curves: Mapping[str, np.ndarray], ax=None, *, normalise: bool = True, mark: Sequence[int] = (),
    styles: Mapping[str, dict] | None = None,
):
    r"""The kernel's Rayleigh quotient :math:`\rho_k` against frequency, one line per kernel.

    Args:
        curves: label -> ``(N // 2 + 1,)`` values of :func:`dipnb.ntk.spectral_density`.
        normalise: divide each curve by its largest value (compares shapes, not scales).
        mark: frequencies to mark with dotted vertical lines (e.g. those of the target).
        styles: label -> extra keyword arguments for ``ax.plot``.
    """
    ax = _ax(ax)
    for i, (label, rho) in enumerate(curves.items()):
        rho = np.asarray(rho, float)
        k = np.arange(rho.size)
        y = rho / rho.max() if normalise else rho
        kw = {"color": PALETTE[i % len(PALETTE)], "lw": 1.5, **((styles or {}).get(label, {}))}
        ax.plot(k[1:], y[1:], label=label, **kw)  # k = 0 (the mean) is left out: the sines have none
    for k in mark:
        ax.axvline(k, color="0.6", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("frequency k (cycles/signal)")
    ax.set_ylabel(r"$\rho_k$ / max" if normalise else r"$\rho_k$")
    ax.legend(fontsize=8)
    return ax


def plot_eigen_frequencies(dominant, concentration, ax=None, title: str | None = None):
    """For each eigenvector (largest eigenvalue first), its dominant frequency, coloured by how purely."""
    ax = _ax(ax)
    d = np.asarray(dominant)
    sc = ax.scatter(np.arange(d.size), d, c=concentration, cmap="viridis", vmin=0, vmax=0.5, s=9, lw=0)
    ax.set_xlabel("eigenvector (largest eigenvalue first)")
    ax.set_ylabel("dominant frequency (cycles/signal)")
    if title:
        ax.set_title(title)
    return sc


def plot_eigenvectors(V, ax=None, indices: Sequence[int] = (0, 1, 2, 3, 4, 5), title: str | None = None):
    """A few eigenvectors, stacked with offsets, each labelled with its rank."""
    ax = _ax(ax)
    V = np.asarray(V)
    step = 2.5 * np.abs(V[:, list(indices)]).max()
    for j, i in enumerate(indices):
        ax.plot(V[:, i] - j * step, color=PALETTE[j % len(PALETTE)], lw=1)
        ax.annotate(f"#{i + 1}", (V.shape[0], -j * step), fontsize=8, xytext=(3, 0), textcoords="offset points",
                    va="center")
    ax.set_yticks([])
    ax.set_xlabel("sample")
    ax.set_ylabel("eigenvector (offset)")
    if title:
        ax.set_title(title)
    return ax


def eigen_figure(spectra: Mapping[str, dict]):
    """Per kernel: the leading eigenvectors (top) and every eigenvector's dominant frequency (bottom).

    Args:
        spectra: label -> the data of a ``kernel-spectrum`` result.
    """
    n = len(spectra)
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n + 0.8, 6.4), squeeze=False, layout="constrained")
    sc = None
    for j, (label, d) in enumerate(spectra.items()):
        plot_eigenvectors(d["eigenvectors"], axes[0, j], title=f"{label}: eigenvectors 1-6")
        sc = plot_eigen_frequencies(d["dominant_frequency"], d["concentration"], axes[1, j],
                                    title=f"{label}: frequency of each eigenvector")
    fig.colorbar(sc, ax=axes[1, :], shrink=0.8, extend="max", label="share of energy at that frequency")
    return fig


def plot_offset_profile(profiles: Mapping[str, np.ndarray], ax=None, max_offset: int = 16):
    r"""Share of the Fourier-basis kernel's energy within ``|k - k'| <= b``, against ``b``."""
    ax = _ax(ax)
    for i, (label, p) in enumerate(profiles.items()):
        p = np.asarray(p)[: max_offset + 1]
        ax.plot(np.arange(p.size), p, "o-", ms=3, color=PALETTE[i % len(PALETTE)], label=label)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("|k - k'| (cycles/signal)")
    ax.set_ylabel("share of |K̂|² within")
    ax.legend(fontsize=8)
    return ax


def plot_predicted_vs_measured(
    frequencies, predicted, measured: Mapping[str, np.ndarray], ax=None, *, label_points: bool = True,
    ylabel: str = "measured iteration",
):
    """Measured against predicted convergence iterations (log-log), one marker set per optimiser.

    Frequencies that never converged are drawn as open triangles at the top edge.
    """
    ax = _ax(ax)
    p = np.asarray(predicted, float)
    markers = "osD^v"
    finite = [np.asarray(m, float)[np.isfinite(m)] for m in measured.values()]
    allv = np.concatenate([p[np.isfinite(p)], *finite])
    allv = allv[allv > 0]
    lo, hi = max(allv.min() / 2, 0.5), allv.max() * 2
    for i, (label, m) in enumerate(measured.items()):
        m = np.asarray(m, float)
        col = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(m) & np.isfinite(p)
        ax.scatter(p[ok], np.maximum(m[ok], lo), marker=markers[i % len(markers)], color=col, label=label, zorder=3)
        never = ~np.isfinite(m) & np.isfinite(p)
        if never.any():
            ax.scatter(p[never], np.full(never.sum(), hi), marker="^", facecolors="none", edgecolors=col,
                       label=f"{label}: not converged", zorder=3)
        if label_points:
            for k, x, y in zip(np.asarray(frequencies)[ok], p[ok], m[ok], strict=True):
                ax.annotate(str(k), (x, max(y, lo)), fontsize=7, xytext=(3, 3), textcoords="offset points", color=col)
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="measured = predicted")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi * 1.3)
    ax.set_ylim(lo, hi * 1.3)
    ax.set_xlabel("predicted iteration (kernel)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return ax


def plot_se_curves(
    iterations, amplitudes, frequencies, *, amplitude: float, delta: float, ax=None,
    linearised=None, title: str | None = None,
):
    r"""``SE(k) = (\tilde A_k - A)^2`` along a trajectory, one colour per frequency; dashed: the linearised net."""
    ax = _ax(ax)
    it = np.asarray(iterations)
    se = (np.asarray(amplitudes) - amplitude) ** 2  # (T, F)
    for j, k in enumerate(frequencies):
        col = PALETTE[j % len(PALETTE)]
        ax.plot(it + 1, se[:, j], color=col, lw=1.4, label=f"k = {k}")
        if linearised is not None:
            lin = (np.asarray(linearised)[:, j] - amplitude) ** 2
            ax.plot(np.arange(lin.size) + 1, lin, color=col, lw=1, ls="--")
    ax.axhline(delta, color="0.3", lw=0.8, ls=":")
    ax.annotate(r"$\delta$", (1.0, delta), xycoords=("axes fraction", "data"), fontsize=8, ha="right", va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(max(delta / 100, 1e-6), None)
    ax.set_xlabel("iteration + 1")
    ax.set_ylabel("SE(k)")
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    return ax


def plot_kernel_drift(checkpoints, rho_checkpoints, rho0, frequencies, ax=None):
    r"""How the kernel's Rayleigh quotient at each target frequency changed during gradient descent:
    :math:`\rho_k(t) / \rho_k(0)` against frequency, one line per re-measured iteration ``t``."""
    ax = _ax(ax)
    ks = np.asarray(frequencies)
    for i, (t, rho) in enumerate(zip(checkpoints, rho_checkpoints, strict=True)):
        ax.plot(ks, np.asarray(rho)[ks] / np.asarray(rho0)[ks], "o-", ms=4, color=PALETTE[i % len(PALETTE)],
                label=f"after {t} steps")
    ax.axhline(1, color="0.5", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("frequency k (cycles/signal)")
    ax.set_ylabel(r"$\rho_k(t) / \rho_k(0)$")
    ax.legend(fontsize=8)
    return ax


def plot_width_diagonality(widths, fractions: Mapping[str, Sequence[float]], ax=None):
    """Share of the kernel's energy on the Fourier diagonal against the width of the net."""
    ax = _ax(ax)
    for i, (label, f) in enumerate(fractions.items()):
        ax.plot(widths, f, "o-", color=PALETTE[i % len(PALETTE)], label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(widths), [str(w) for w in widths])
    ax.set_ylim(0, 1)
    ax.set_xlabel("channels per layer")
    ax.set_ylabel("share of |K̂|² on the diagonal")
    ax.legend(fontsize=8)
    return ax


def spectrum_panel(kernel: dict, title: str, reference: np.ndarray | None = None):
    """One kernel at a glance: its Fourier-basis matrix (left) and its Rayleigh quotient per frequency (right).

    Args:
        kernel: the data of a ``kernel-spectrum`` result.
        title: names the variant (e.g. ``"nearest, 5 scales"``).
        reference: another ``rho`` curve drawn in grey for comparison (e.g. the no-scale net).

    Returns:
        The figure.
    """
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9.0, 3.8), layout="constrained")
    plot_fourier_kernel(kernel["K"], a0, "|K| in the Fourier basis")
    curves = {title: kernel["rho"]}
    styles = {}
    if reference is not None:
        curves["no scales"] = reference
        styles["no scales"] = {"color": "0.6", "ls": "--"}
    plot_spectral_density(curves, a1, styles=styles)
    a1.set_ylim(1e-4, 2)
    a1.set_title("Rayleigh quotient per frequency")
    fig.suptitle(title)
    return fig


def se_figure(result: dict):
    """The two trajectories of a ``kernel-view`` result side by side: gradient descent with the
    linearised network dashed (left), Adam (right). Returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    cfg_a, cfg_d = float(result.get("amplitude", 1.0)), float(result.get("delta", 0.01))
    ks = result["frequencies"]
    gd, adam = result["gd"], result["adam"]
    if gd is not None:
        plot_se_curves(gd["iterations"], gd["amplitudes"], ks, amplitude=cfg_a, delta=cfg_d, ax=axes[0],
                       linearised=result["linearised_amplitudes"], title="gradient descent (dashed: linearised)")
    else:
        axes[0].set_axis_off()
    plot_se_curves(adam["iterations"], adam["amplitudes"], ks, amplitude=cfg_a, delta=cfg_d, ax=axes[1],
                   title="Adam")
    return fig
