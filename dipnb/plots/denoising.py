"""Figures of the denoising chapters: the failure case of low-frequency noise (Fig. 2) and the
denoising table with its trajectories (Tables 1-2, Fig. 7).

Functions that draw one panel take an ``ax``; functions that lay out several panels build and
return a figure. None calls ``plt.show``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import spectral
from . import PALETTE, offline_player, show_image

__all__ = [
    "show_difference",
    "lowpass",
    "nearest_frame",
    "failure_figure",
    "energy_below",
    "plot_noise_energy",
    "plot_gain_curves",
    "plot_noise_fraction",
    "failure_curves",
    "animate_failure",
    "MODEL_COLORS",
    "table_markdown",
    "plot_table",
    "plot_psnr_curves",
    "best_outputs_figure",
    "trajectory_figure",
]

MODEL_COLORS = {"dip": PALETTE[0], "linear-128": PALETTE[1], "linear-2048": PALETTE[3], "relunet": PALETTE[2]}


def show_difference(diff, ax=None, title: str | None = None, scale: float = 2.0):
    """Show a signed difference image ``(C, H, W)`` as ``0.5 + scale * diff`` (mid-grey = 0)."""
    return show_image(0.5 + scale * np.asarray(diff, dtype=np.float32), ax, title)


def lowpass(img, max_cycles: float) -> np.ndarray:
    """Keep only the frequencies of ``(C, H, W)`` at most ``max_cycles`` cycles per image from DC
    (the ideal filter of :func:`dipnb.data.lowfreq_noise`, without the rescaling)."""
    a = np.asarray(img, dtype=np.float64)
    h, w = a.shape[-2:]
    fy = np.fft.fftfreq(h, d=1.0 / h)[:, None]
    fx = np.fft.fftfreq(w, d=1.0 / w)[None, :]
    mask = fy**2 + fx**2 <= max_cycles**2
    return np.fft.ifft2(np.fft.fft2(a) * mask).real.astype(np.float32)


def nearest_frame(data: Mapping, iteration: int) -> tuple[int, np.ndarray]:
    """The stored output of a run closest to ``iteration``: ``(its iteration, (C, H, W))``."""
    its = np.asarray(data["snapshot_iterations"])
    if its.size == 0 or data.get("snapshots") is None:
        raise ValueError("this run stored no snapshots (snapshot_every = 0)")
    j = int(np.argmin(np.abs(its - iteration)))
    return int(its[j]), np.asarray(data["snapshots"][j])


def _psnr_at(data: Mapping, iteration: int) -> float:
    its = np.asarray(data["iterations"])
    return float(data["psnr"][int(np.argmin(np.abs(its - iteration)))])


def failure_figure(runs: Mapping[str, Mapping], early: int = 20, late: int | None = None, scale: float = 2.0,
                   max_cycles: float | None = 4.0):
    """The paper's Fig. 2 with the difference images: one row per run of ``lowfreq-noise``.

    Columns: clean image, noisy input, the noise (input minus clean), the output at ``early``
    iterations, that output minus the clean image, the same difference low-passed to
    ``max_cycles`` cycles per image (omitted if None), and the output at ``late`` (default: the
    last stored). Differences are shown as ``0.5 + scale * difference``.

    Args:
        runs: row label -> the data of a ``lowfreq-noise`` result.
    """
    n = len(runs)
    ncols = 6 if max_cycles is None else 7
    fig, axes = plt.subplots(n, ncols, figsize=(1.68 * ncols, 2.0 * n + 0.3), squeeze=False)
    for row, (label, d) in zip(axes, runs.items(), strict=True):
        ie, early_out = nearest_frame(d, early)
        il, late_out = nearest_frame(d, late if late is not None else int(d["snapshot_iterations"][-1]))
        show_image(d["clean"], row[0], "clean")
        show_image(d["noisy"], row[1], f"input, {d['noisy_psnr']:.1f} dB")
        show_difference(d["noisy"] - d["clean"], row[2], f"noise (×{scale:g})", scale)
        show_image(early_out, row[3], f"it. {ie}, {_psnr_at(d, ie):.1f} dB")
        show_difference(early_out - d["clean"], row[4], f"it. {ie} − clean", scale)
        if max_cycles is not None:
            smooth = lowpass(early_out - d["clean"], max_cycles)
            show_difference(smooth, row[5], f"same, ≤ {max_cycles:g} cycles", scale)
        show_image(late_out, row[-1], f"it. {il}, {_psnr_at(d, il):.1f} dB")
        row[0].set_ylabel(label)
    fig.tight_layout()
    return fig


def energy_below(noise) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of a signal's spectral energy below each radial frequency.

    Args:
        noise: ``(C, H, W)`` (its mean is removed per channel).

    Returns:
        ``(cycles, share)``: radial frequencies in cycles per image (of the shorter side), sorted,
        and the share of the energy at or below each, from 0 to 1.
    """
    p = spectral.power_spectrum_2d(noise, remove_mean=True)
    r = spectral.radial_frequency(p.shape) * min(p.shape)  # cycles per image
    order = np.argsort(r, axis=None)
    share = np.cumsum(p.ravel()[order]) / p.sum()
    return r.ravel()[order], share


def plot_noise_energy(noises: Mapping[str, np.ndarray], ax=None, *, cutoff: float | None = 4.0):
    """Share of each noise's energy below a frequency (cycles per image, log scale)."""
    ax = ax if ax is not None else plt.subplots()[1]
    for k, (label, n) in enumerate(noises.items()):
        r, share = energy_below(n)
        keep = r > 0
        ax.plot(r[keep], share[keep], color=PALETTE[k % len(PALETTE)], label=label)
    if cutoff is not None:
        ax.axvline(cutoff, color="0.3", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("radial frequency (cycles per image)")
    ax.set_ylabel("share of the noise energy below it")
    ax.legend(fontsize=8)
    return ax


def plot_gain_curves(runs: Mapping[str, Mapping], ax=None, *, mark_best: bool = True):
    """PSNR to the clean image minus the noisy input's PSNR, against iterations, one line per run.

    Above 0 dB the output is a better estimate of the clean image than the input itself.
    """
    ax = ax if ax is not None else plt.subplots()[1]
    for k, (label, d) in enumerate(runs.items()):
        color = PALETTE[k % len(PALETTE)]
        gain = np.asarray(d["psnr"]) - d["noisy_psnr"]
        ax.plot(d["iterations"], gain, color=color, label=label)
        if mark_best:
            i = int(np.argmax(gain))
            ax.plot(d["iterations"][i], gain[i], "o", color=color, ms=5)
    ax.axhline(0, color="0.3", ls="--", lw=1)
    ax.annotate("noisy input", (1.0, 0), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR gain over the input (dB)")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_noise_fraction(runs: Mapping[str, Mapping], ax=None, *, early: int | None = 20):
    r"""The fraction of the noise the output carries, :math:`\langle f - x^*, n\rangle / \|n\|^2`."""
    ax = ax if ax is not None else plt.subplots()[1]
    for k, (label, d) in enumerate(runs.items()):
        ax.plot(d["iterations"], d["noise_fraction"], color=PALETTE[k % len(PALETTE)], label=label)
    if early is not None:
        ax.axvline(early, color="0.3", ls="--", lw=1)
    ax.set_ylim(-0.1, 1.15)
    ax.set_xlabel("iteration")
    ax.set_ylabel("fraction of the noise in the output")
    ax.legend(fontsize=8)
    return ax


def failure_curves(runs: Mapping[str, Mapping], early: int = 20):
    """Two panels over iterations: the PSNR gain over the noisy input and the noise fraction."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_gain_curves(runs, a)
    a.set_title("distance to the clean image")
    plot_noise_fraction(runs, b, early=early)
    b.set_title("how much of the noise the output carries")
    fig.tight_layout()
    return fig


def animate_failure(runs: Mapping[str, Mapping], *, n_frames: int = 21, scale: float = 2.0, interval: int = 250):
    """An animation of the outputs and their difference to the clean image, one row per run.

    ``n_frames`` stored outputs, evenly spaced over the trajectory, are shown.

    Returns:
        An ``IPython.display.HTML`` with a self-contained JavaScript player (plays in a static page).
    """
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    its = np.asarray(next(iter(runs.values()))["snapshot_iterations"])
    keep = np.unique(np.round(np.linspace(0, len(its) - 1, min(n_frames, len(its)))).astype(int))
    n = len(runs)
    fig, axes = plt.subplots(n, 2, figsize=(4.0, 2.0 * n + 0.3), squeeze=False)
    arts = []
    for row, (label, d) in zip(axes, runs.items(), strict=True):
        a = show_image(d["snapshots"][0], row[0], f"{label}: output")
        b = show_difference(d["snapshots"][0] - d["clean"], row[1], f"output minus clean (×{scale:g})", scale)
        arts.append((a, b, d))
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # room for the iteration counter on top

    def update(k):
        j = keep[k]
        for a, b, d in arts:
            a.set_data(_hwc(d["snapshots"][j]))
            b.set_data(_hwc(0.5 + scale * (d["snapshots"][j] - d["clean"])))
        fig.suptitle(f"iteration {int(its[j])}", fontsize=10, y=0.99)
        return [x for a, b, _ in arts for x in (a, b)]

    anim = FuncAnimation(fig, update, frames=len(keep), interval=interval, blit=False)
    html = offline_player(anim.to_jshtml(default_mode="loop"))
    plt.close(fig)
    return HTML(html)


def _hwc(img) -> np.ndarray:
    a = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


# ----------------------------------------------------------------------------------------------
# The denoising table
# ----------------------------------------------------------------------------------------------


def table_markdown(summary: Mapping, paper: Mapping | None = None, names: Mapping[str, str] | None = None,
                   metric: str = "psnr") -> str:
    """Our table (mean ± std over seeds, at each run's best-PSNR output) with the paper's numbers beside it.

    Args:
        summary: the summary of a ``denoising-table`` result.
        paper: image -> model -> (mean, std) from the paper (e.g. ``PAPER_TABLE2``), or None;
            used only for ``metric="psnr"`` (the paper reports no SSIM).
        names: model label -> column title.
        metric: ``"psnr"`` (dB) or ``"ssim"`` (no unit), both of the output at the best PSNR.

    Returns:
        A Markdown table: one row per image and a row of means; each cell "ours (paper)".
    """
    if metric not in ("psnr", "ssim"):
        raise ValueError(f"metric {metric!r} is not allowed: use psnr or ssim")
    models, images = summary["models"], summary["images"]
    names = names or {}
    if metric == "ssim":
        paper = None
    values, noisy, digits = summary[f"best_{metric}"], summary[f"noisy_{metric}"], 2 if metric == "psnr" else 3
    head = "| image | noisy input | " + " | ".join(names.get(m, m) for m in models) + " |"
    lines = [head, "|:--|--:|" + "--:|" * len(models)]
    for img in images:
        cells = []
        for m in models:
            s = values[m][img]
            cell = f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
            if paper and img in paper:
                pm, ps = paper[img][m]
                cell += f" ({pm:.2f} ± {ps:.2f})"
            cells.append(cell)
        lines.append(f"| {img} | {noisy[img]:.{digits}f} | " + " | ".join(cells) + " |")
    mean_noisy = np.mean([noisy[i] for i in images])
    cells = []
    for m in models:
        cell = f"**{np.mean([values[m][i]['mean'] for i in images]):.{digits}f}**"
        if paper and all(i in paper for i in images):
            cell += f" ({np.mean([paper[i][m][0] for i in images]):.2f})"
        cells.append(cell)
    lines.append(f"| **mean** | {mean_noisy:.{digits}f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table(summary: Mapping, ax=None, paper: Mapping | None = None, names: Mapping[str, str] | None = None):
    """Grouped bars: best PSNR per image and model (mean ± std over seeds), the noisy input's
    PSNR as a grey tick, and the paper's value as a black diamond where it exists."""
    ax = ax if ax is not None else plt.subplots()[1]
    models, images = summary["models"], summary["images"]
    names = names or {}
    n = len(models)
    w = 0.8 / n
    x = np.arange(len(images))
    for k, m in enumerate(models):
        mean = [summary["best_psnr"][m][i]["mean"] for i in images]
        std = [summary["best_psnr"][m][i]["std"] for i in images]
        pos = x - 0.4 + w * (k + 0.5)
        ax.bar(pos, mean, w * 0.9, yerr=std, capsize=2, color=MODEL_COLORS.get(m, PALETTE[k % 8]),
               label=names.get(m, m))
        if paper:
            pts = [(p, paper[i][m][0]) for p, i in zip(pos, images, strict=True) if i in paper]
            if pts:
                ax.plot(*zip(*pts, strict=True), "kD", ms=4, label="paper" if k == 0 else None)
    for j, i in enumerate(images):
        ax.plot([j - 0.42, j + 0.42], [summary["noisy_psnr"][i]] * 2, color="0.4", ls="--", lw=1,
                label="noisy input" if j == 0 else None)
    lo = min(min(summary["noisy_psnr"].values()), *(summary["best_psnr"][m][i]["mean"] for m in models for i in images))
    ax.set_ylim(lo - 3, None)
    ax.set_xticks(x, images)
    ax.set_ylabel("best PSNR along the trajectory (dB)")
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return ax


def plot_psnr_curves(runs: Mapping[str, Mapping], ax=None, *, logx: bool = True, colors: Mapping | None = None):
    """PSNR to the clean image against iterations for several ``denoising`` runs, best points
    marked, with the noisy input's PSNR as a dashed line."""
    ax = ax if ax is not None else plt.subplots()[1]
    colors = colors or {}
    for k, (label, d) in enumerate(runs.items()):
        its = np.maximum(np.asarray(d["iterations"]), 1) if logx else np.asarray(d["iterations"])
        c = colors.get(label, PALETTE[k % len(PALETTE)])
        ax.plot(its, d["psnr"], color=c, label=label)
        i = int(np.argmax(d["psnr"]))
        ax.plot(its[i], d["psnr"][i], "o", color=c, ms=5)
    noisy = next(iter(runs.values()))["noisy_psnr"]
    ax.axhline(noisy, color="0.3", ls="--", lw=1)
    ax.annotate("noisy input", (0.0, noisy), xycoords=("axes fraction", "data"), ha="left", va="bottom",
                fontsize=8, xytext=(3, 2), textcoords="offset points")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("iteration" + (" (log scale; 0 drawn at 1)" if logx else ""))
    ax.set_ylabel("PSNR to the clean image (dB)")
    ax.legend(fontsize=8)
    return ax


def best_outputs_figure(runs: Mapping[str, Mapping], scale: float = 2.2):
    """Clean image, noisy input, and each run's output at its best PSNR, in a row."""
    first = next(iter(runs.values()))
    n = len(runs) + 2
    fig, axes = plt.subplots(1, n, figsize=(scale * n, scale + 0.4), squeeze=False)
    show_image(first["clean"], axes[0, 0], "clean")
    show_image(first["noisy"], axes[0, 1], f"noisy, {first['noisy_psnr']:.1f} dB")
    for ax, (label, d) in zip(axes[0, 2:], runs.items(), strict=True):
        show_image(d["best_output"], ax, f"{label}\n{d['best_psnr']:.1f} dB (it. {d['best_iteration']})")
    fig.tight_layout()
    return fig


def trajectory_figure(runs: Mapping[str, tuple[Mapping, Sequence[int]]], scale: float = 2.2):
    """The paper's Fig. 7: for each run, the outputs at chosen iterations (nearest stored ones).

    Args:
        runs: row label -> (data of a ``denoising`` run with snapshots, iterations to show).
    """
    ncols = max(len(its) for _, its in runs.values())
    fig, axes = plt.subplots(len(runs), ncols, figsize=(scale * ncols, (scale + 0.3) * len(runs)), squeeze=False)
    for row, (label, (d, its)) in zip(axes, runs.items(), strict=True):
        for ax, it in zip(row, its, strict=False):
            i, img = nearest_frame(d, it)
            show_image(img, ax, f"iteration {i:,}, {_psnr_at(d, i):.1f} dB")
        for ax in row[len(its):]:
            ax.axis("off")
        row[0].set_ylabel(label)
    fig.tight_layout()
    return fig
