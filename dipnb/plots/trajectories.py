"""Figures of the trajectories chapter (paper Fig. 1 and Fig. 5).

Every function takes the ``data`` dict of a ``trajectories`` result (``result.data``) or of a
``trajectories-area`` result, and either draws on an ``ax`` it is given or builds a figure of
its own when it needs several panels. None calls ``plt.show``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from . import PALETTE, _ax, animate_frames, mark_iteration, show_image, show_spectrum

__all__ = [
    "plot_eps",
    "fig1_outputs",
    "fig5_spectra",
    "plot_band_errors",
    "plot_band_convergence",
    "band_figure",
    "plot_eps_by_area",
    "plot_divergence_by_area",
    "area_figure",
    "animation_frames",
    "animate_trajectory",
]

EPS_LABEL = "ε: sum of squared differences"


def _plain_log_ticks(ax) -> None:
    """Label a log y axis with plain numbers (20, 50, 100) instead of 2x10^1."""
    fmt = mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_locator(mpl.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
_KEY_NAMES = {"first": "1st convergence", "peak": "divergence peak", "second": "2nd convergence"}


def plot_eps(data: Mapping, ax=None, *, title: str | None = None, marks: bool = True):
    """eps against iterations (log scale): the raw curve, its running median and the key points.

    Args:
        data: a ``trajectories`` result's data.
        marks: draw dashed lines at the first convergence, the peak and the second convergence.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    it = data["iterations"]
    ax.plot(it, data["eps"], color=PALETTE[5], lw=0.8, alpha=0.7, label="ε (raw)")
    ax.plot(it, data["eps_smooth"], color=PALETTE[0], lw=2, label="ε (running median)")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel(EPS_LABEL)
    if marks:
        points = {
            "first": data["first_convergence"],
            "peak": data["divergence_peak"],
            "second": data["second_convergence"],
        }
        colours = {"first": PALETTE[2], "peak": PALETTE[1], "second": PALETTE[3]}
        for k, v in points.items():
            if v is not None:
                mark_iteration(ax, v, None, color=colours[k])
                y = np.interp(v, it, data["eps_smooth"])
                ax.plot([v], [y], "o", color=colours[k], ms=5, label=f"{_KEY_NAMES[k]} ({v})")
    ax.legend(loc="best", fontsize=7)
    if title:
        ax.set_title(title)
    return ax


def fig1_outputs(results: Mapping[str, Mapping], *, run: int = 0):
    """The paper's Fig. 1 a-e: per image, the target, three outputs and the eps curve.

    Args:
        results: row label -> ``trajectories`` data (e.g. ``{"barbara": ..., "triangle-0.9": ...}``).
        run: whose outputs to show (0 or 1; the two runs look alike at the key points).

    Returns:
        The figure (one row per image, five columns).
    """
    n = len(results)
    fig = plt.figure(figsize=(12.5, 2.7 * n), layout="constrained")
    axes = fig.subplots(n, 5, squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.7]})
    for row, (label, d) in enumerate(results.items()):
        ax = axes[row]
        show_image(d["target"], ax[0], f"(a) {label}")
        for col, key, name in ((1, "initial", "(b) initial"), (2, "first", "(c) 1st conv."),
                               (3, "second", "(d) 2nd conv.")):
            out = d["key_outputs"].get(key)
            it = d["key_iterations"].get(key)
            if out is None:
                ax[col].axis("off")
                ax[col].set_title(f"{name}: not reached", fontsize=9)
            else:
                show_image(out[run], ax[col], f"{name}, it. {it}")
        plot_eps(d, ax[4], title="(e) ε over iterations")
    return fig


def fig5_spectra(results: Mapping[str, Mapping], iterations: Sequence[int] = (20, 40, 60, 80, 200)):
    """The paper's Fig. 5: outputs and their log power spectra at increasing iterations.

    Two rows per image: the output of run 1 at each iteration, then its power spectrum (DC at
    the centre, axes in cycles per pixel, log10 colour scale). The last column is the target.

    Returns:
        The figure.
    """
    n = len(results)
    cols = len(iterations) + 1
    fig = plt.figure(figsize=(2.0 * cols + 1.0, 4.0 * n), layout="constrained")
    axes = fig.subplots(2 * n, cols, squeeze=False)
    im = None
    for r, (label, d) in enumerate(results.items()):
        snap_it = list(d["snapshot_iterations"])
        for c, want in enumerate(iterations):
            i = int(np.argmin(np.abs(np.asarray(snap_it) - want)))
            img = d["snapshots"][i].astype(np.float32)
            show_image(img, axes[2 * r, c], f"iteration {snap_it[i]}")
            im = show_spectrum(img, axes[2 * r + 1, c])
        show_image(d["target"], axes[2 * r, -1], "target")
        im = show_spectrum(d["target"], axes[2 * r + 1, -1])
        axes[2 * r, 0].set_ylabel(label, fontsize=11)
        for c in range(cols):
            a = axes[2 * r + 1, c]
            a.set_xlabel("cycles/pixel" if r == n - 1 else "")
            a.set_ylabel("cycles/pixel" if c == 0 else "")
            a.set_xticks([-0.5, 0, 0.5])
            a.set_yticks([-0.5, 0, 0.5])
            if c:
                a.set_yticklabels([])
    if im is not None:
        fig.colorbar(im, ax=axes[1::2, :].ravel().tolist(), shrink=0.8, label="log10 power")
    return fig


def _band_colours(n: int):
    cmap = mpl.colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, n)]


def _band_label(edges: np.ndarray, b: int) -> str:
    return f"{edges[b]:.2f}–{edges[b + 1]:.2f}"


def plot_band_errors(data: Mapping, ax=None, *, delta: float | None = None, title: str | None = None,
                     colorbar: bool = True):
    """Relative spectral error per radial band against iterations (mean of the two runs).

    Each band is a line coloured by its centre frequency (a colour bar gives the scale).

    Args:
        delta: draw the convergence threshold as a dotted line.
        colorbar: add the colour bar of band frequencies beside the axes.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    err = np.asarray(data["band_errors"]).mean(axis=0)  # (T, B)
    edges = np.asarray(data["band_edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    cmap, norm = mpl.colormaps["viridis"], mpl.colors.Normalize(0.0, 0.5)
    for b in range(err.shape[1]):
        ax.plot(data["iterations"], err[:, b], color=cmap(norm(centres[b])), lw=1.4)
    if delta is not None:
        ax.axhline(delta, color="0.3", ls=":", lw=1)
        ax.annotate(f"δ = {delta:g}", (0.0, delta), xycoords=("axes fraction", "data"), ha="left",
                    va="top", fontsize=8, xytext=(2, -2), textcoords="offset points")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative error in the band")
    if colorbar:
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        ax.figure.colorbar(sm, ax=ax, label="band centre (cycles/pixel)", fraction=0.06, pad=0.02)
    if title:
        ax.set_title(title)
    return ax


def plot_band_convergence(results: Mapping[str, Mapping], ax=None, *, title: str | None = None):
    """Iteration at which each band's error first falls to delta, against the band's frequency.

    Bands that do not get there within the run are drawn as open markers at the run's end.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    markers = "os^Dv"
    n = len(results)
    for k, (label, d) in enumerate(results.items()):
        edges = np.asarray(d["band_edges"])
        centres = (edges[:-1] + edges[1:]) / 2 + (k - (n - 1) / 2) * 0.01  # small offset per image
        conv = d["band_convergence_iterations"]
        end = int(d["iterations"][-1])
        colour, m = PALETTE[k % len(PALETTE)], markers[k % len(markers)]
        hit = [(f, c) for f, c in zip(centres, conv, strict=True) if c is not None]
        miss = [f for f, c in zip(centres, conv, strict=True) if c is None]
        if hit:
            f, c = zip(*hit, strict=True)
            ax.plot(f, c, m, color=colour, ms=7, label=label)
        if miss:
            ax.plot(miss, [end] * len(miss), m, mfc="none", color=colour, ms=7,
                    label=f"{label}: not by {end}")
    ax.set_xlabel("band centre (cycles/pixel)")
    ax.set_ylabel("first iteration with error ≤ δ")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="center right")
    if title:
        ax.set_title(title)
    return ax


def band_figure(results: Mapping[str, Mapping], *, delta: float):
    """Band errors over iterations for each image, and the convergence iteration per band.

    Returns:
        The figure (one error panel per image, then the convergence panel).
    """
    n = len(results)
    fig = plt.figure(figsize=(4.6 * (n + 1), 3.6), layout="constrained")
    axes = fig.subplots(1, n + 1)
    for ax, (label, d) in zip(axes[:n], results.items(), strict=True):
        plot_band_errors(d, ax, delta=delta, title=f"{label}: error per band")
    plot_band_convergence(results, axes[n], title=f"first iteration with error ≤ {delta:g}")
    return fig


def _area_colours(areas: Sequence[float]):
    cmap = mpl.colormaps["viridis"]
    a = np.asarray(areas, dtype=float)
    lo, hi = a.min(), a.max()
    return [cmap(0.9 * (x - lo) / max(hi - lo, 1e-12)) for x in a]


def plot_eps_by_area(data: Mapping, ax=None, *, smoothed: bool = True):
    """eps against iterations for every area of the pattern, coloured by area (log scale).

    Args:
        data: a ``trajectories-area`` result's data.
        smoothed: draw the running median of each curve (else the raw curves).

    Returns:
        The axes.
    """
    ax = _ax(ax)
    curves = data["eps_smooth"] if smoothed else data["eps"]
    for a, e, c in zip(data["areas"], curves, _area_colours(data["areas"]), strict=True):
        ax.plot(data["iterations"], e, color=c, lw=1.6, label=f"A = {a:g}")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel(EPS_LABEL)
    ax.legend(title="pattern", fontsize=7, title_fontsize=8, loc="best")
    return ax


def plot_divergence_by_area(data: Mapping, ax=None):
    """The divergence measure (largest rebound of eps) against the pattern's area.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    areas = np.asarray(data["areas"], dtype=float)
    div = np.asarray(data["divergence"], dtype=float)
    ax.plot(areas, div, "-", color="0.6", lw=1)
    ax.scatter(areas, div, c=_area_colours(areas), s=40, zorder=3)
    if data.get("source") == "files":
        ax.set_xlabel("A: side of the patterned square / side of the image")
    else:
        ax.set_xlabel("A: fraction of the triangle covered by the pattern")
    ax.set_ylabel("divergence: rebound of ε")
    ax.set_title(f"Spearman ρ = {data['spearman']:.2f}")
    return ax


def area_figure(data: Mapping):
    """The paper's Fig. 1 f-h: the targets, eps per area, and divergence against area.

    Returns:
        The figure: a row of targets on top, the two panels below.
    """
    targets = data["targets"]
    n = len(targets)
    fig = plt.figure(figsize=(max(9.0, 1.5 * n), 6.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.2])
    axes = top.subplots(1, n)
    for ax, img, a in zip(np.atleast_1d(axes), targets, data["areas"], strict=True):
        show_image(img, ax, f"A = {a:g}")
    ax_eps, ax_div = bottom.subplots(1, 2)
    plot_eps_by_area(data, ax_eps)
    ax_eps.set_title("ε (running median)")
    plot_divergence_by_area(data, ax_div)
    return fig


def animation_frames(data: Mapping, every: int = 1) -> tuple[np.ndarray, list[str]]:
    """Snapshots of run 1 and their captions, for :func:`dipnb.plots.animate_frames`.

    Args:
        every: keep every ``every``-th snapshot.

    Returns:
        ``(frames (S', C, H, W) float32, titles)``.
    """
    frames = np.asarray(data["snapshots"][::every], dtype=np.float32)
    its = list(data["snapshot_iterations"][::every])
    marks = {
        data["first_convergence"]: "1st convergence",
        data["divergence_peak"]: "divergence peak",
        data["second_convergence"]: "2nd convergence",
    }
    step = its[1] - its[0] if len(its) > 1 else 1
    titles = []
    for it in its:
        near = [(k, v) for k, v in marks.items() if k is not None and abs(k - it) * 2 < step + 1]
        titles.append(f"iteration {it}" + (f" ({near[0][1]}: {near[0][0]})" if near else ""))
    return frames, titles


def animate_trajectory(data: Mapping, every: int = 2, frame_format: str = "jpeg"):
    """Run 1's trajectory as an animation, output beside its power spectrum.

    A thin wrapper of :func:`dipnb.plots.animate_frames` that stores the frames as JPEG: a log
    power spectrum is close to noise and compresses badly as PNG (about 0.35 MB a frame at
    256x256, against about 0.05 MB as JPEG).

    Returns:
        An ``IPython.display.HTML`` player.
    """
    frames, titles = animation_frames(data, every)
    with plt.rc_context({"animation.frame_format": frame_format}):
        return animate_frames(frames, titles)
