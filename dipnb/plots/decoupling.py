"""Figures for the two-sines chapters (conv vs linear, Fig. 3; depth and width, Fig. 6).

The functions take the ``data`` dict of a ``decoupling-1d`` or ``capacity`` result (``result.data``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import PALETTE

__all__ = [
    "FREQ_COLORS",
    "plot_se",
    "plot_signal",
    "decoupling_figure",
    "se_panels",
    "plot_convergence",
    "capacity_figure",
    "live_explorer",
    "findings_markdown",
]

FREQ_COLORS = (PALETTE[0], PALETTE[1])  # k1 blue, k2 vermilion, in every figure of these chapters


def _label(k: int, t) -> str:
    return f"$k={k}$: " + (f"converged at {t}" if t is not None else "not converged")


def plot_se(data: Mapping, ax=None, *, title: str | None = None, delta: float | None = 0.01, legend: bool = True):
    """SE(k1) and SE(k2) over iterations (log scale), the threshold delta, and the convergence times.

    Args:
        data: a ``decoupling-1d`` result's data (``iterations``, ``se`` (2, T), ``frequencies``,
            ``convergence_iteration``).
        delta: draw the convergence threshold at this squared error (None: no line).

    Returns:
        The axes.
    """
    ax = ax if ax is not None else plt.subplots()[1]
    it = np.asarray(data["iterations"])
    for i, k in enumerate(data["frequencies"]):
        t = data["convergence_iteration"][str(k)]
        ax.plot(it, np.maximum(data["se"][i], 1e-8), color=FREQ_COLORS[i], lw=1.5, label=_label(k, t))
        if t is not None:
            ax.axvline(t, color=FREQ_COLORS[i], ls="--", lw=1)
    if delta is not None:
        ax.axhline(delta, color="0.4", ls=":", lw=1)
        ax.annotate(rf"$\delta={delta:g}$", (1.0, delta), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color="0.3")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 10)
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"squared amplitude error $SE(k)$")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_signal(signal, ax=None, *, target=None, title: str | None = None, color: str = "#000000"):
    """A 1D signal against the sample index, with the target in light grey behind it. Returns the axes."""
    ax = ax if ax is not None else plt.subplots()[1]
    n = np.arange(len(signal))
    if target is not None:
        ax.plot(n, target, color="0.75", lw=2.0, label="target")
    ax.plot(n, signal, color=color, lw=1.0, label="output")
    ax.set_xlim(0, len(signal) - 1)
    ax.set_ylim(-2.6, 2.6)
    ax.set_xlabel("sample $n$")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def decoupling_figure(data: Mapping, *, title: str | None = None):
    """The paper's Fig. 3 (a-e) for one run: the target, the output when k1 converges, when k2
    converges and at the end (top), and SE(k1), SE(k2) over iterations (bottom).

    Returns:
        The figure.
    """
    fig = plt.figure(figsize=(10, 5.6))
    gs = fig.add_gridspec(2, 4, height_ratios=[1, 1.25], hspace=0.55, wspace=0.3)
    target = np.asarray(data["signal"])
    ax = fig.add_subplot(gs[0, 0])
    plot_signal(target, ax, title="(a) target $x_0$")
    k1, k2 = data["frequencies"]
    names = [(f"k1={k1}", "(b) when $k_1$ converges"), (f"k2={k2}", "(c) when $k_2$ converges"),
             ("end", "(d) at the end")]
    for j, (key, head) in enumerate(names, start=1):
        ax = fig.add_subplot(gs[0, j], sharey=fig.axes[0])
        if key in data["outputs"]:
            plot_signal(data["outputs"][key], ax, target=target,
                        title=f"{head}\n(iteration {data['output_iterations'][key]})")
        else:
            ax.text(0.5, 0.5, "never converged", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(head, fontsize=9)
        ax.set_ylabel("")
    ax = fig.add_subplot(gs[1, :])
    plot_se(data, ax, title="(e) squared error of each frequency's amplitude")
    if title:
        fig.suptitle(title)
    return fig


def se_panels(datas: Mapping[str, Mapping], *, suptitle: str | None = None, share_x: bool = False):
    """One SE panel per run, side by side (e.g. the paper's Fig. 3 f-h). ``datas``: title -> data.

    Returns:
        The figure.
    """
    n = len(datas)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.3), squeeze=False, sharey=True, sharex=share_x)
    for ax, (head, d) in zip(axes[0], datas.items(), strict=True):
        plot_se(d, ax, title=head)
        if ax is not axes[0, 0]:
            ax.set_ylabel("")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_convergence(data: Mapping, ax=None, *, title: str | None = None, xlabel: str | None = None):
    """Mean +- std over seeds of each frequency's convergence iteration against depth or width.

    Args:
        data: a ``capacity`` result's data (``values``, ``mean`` (V, 2), ``std`` (V, 2), ``frequencies``,
            ``vary``, ``iterations``).

    Returns:
        The axes.
    """
    ax = ax if ax is not None else plt.subplots()[1]
    v = np.asarray(data["values"])
    mean, std = np.asarray(data["mean"], float), np.asarray(data["std"], float)
    for i, k in enumerate(data["frequencies"]):
        off = (1 if i else -1) * 0.012  # a small horizontal nudge so the error bars do not overlap
        x = v * (1 + off) if data["vary"] == "width" else v + off * 20
        ax.errorbar(x, mean[:, i], yerr=std[:, i], color=FREQ_COLORS[i], marker="os"[i], ms=5, capsize=3,
                    lw=1.5, label=f"$k_{i + 1}={k}$")
    if data["vary"] == "width":
        ax.set_xscale("log", base=2)
        ax.set_xticks(v, [str(x) for x in v])
        ax.minorticks_off()
    else:
        ax.set_xticks(v)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel or {"depth": "depth (layers)", "width": "width (channels or units per layer)"}[data["vary"]])
    ax.set_ylabel("convergence iteration")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def capacity_figure(datas: Sequence[Mapping], titles: Sequence[str] | None = None):
    """The paper's Fig. 6: one convergence panel per capacity sweep (2 x 2 for four sweeps).

    Returns:
        The figure.
    """
    n = len(datas)
    ncols = 2 if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.4 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            d = datas[i]
            unit = "channels" if d["model"] == "conv" else "units"
            xl = "depth (layers)" if d["vary"] == "depth" else f"width ({unit} per layer)"
            plot_convergence(d, ax, title=titles[i] if titles else None, xlabel=xl)
        else:
            ax.axis("off")
    fig.tight_layout()
    return fig


def live_explorer(compute, *, models: Sequence[str] = ("conv", "linear"), depths: Sequence[int],
                  widths: Sequence[int], depth: int, width: int):
    """Controls that run one configuration on demand with a running kernel (nothing runs until clicked).

    The chapters' model, depth and width controls on :func:`dipnb.widgets.live_explorer`.

    Args:
        compute: ``(model, depth, width) -> Figure``, e.g. run ``decoupling-1d`` and draw :func:`plot_se`.
        depths, widths: the values offered (on or off the precomputed grid).
        depth, width: the values selected at first.

    Returns:
        A VBox: model toggle, depth and width menus, a button and an Output. ``box.show(model, depth,
        width)`` is what a click does (exposed for tests).
    """
    import ipywidgets as W

    from ..widgets import live_explorer as _live_explorer

    style = {"description_width": "initial"}
    controls = {
        "model": W.ToggleButtons(options=list(models), description="model", style=style),
        "depth": W.Dropdown(options=list(depths), value=depth, description="depth", style=style,
                            layout=W.Layout(width="150px")),
        "width": W.Dropdown(options=list(widths), value=width, description="width", style=style,
                            layout=W.Layout(width="160px")),
    }
    return _live_explorer(lambda model, depth, width: compute(model, int(depth), int(width)), controls,
                          note="A run takes a few seconds and is cached.")


def findings_markdown(findings: Sequence[Mapping]) -> str:
    """A Markdown table of :func:`dipnb.experiments.capacity.findings` (claim, verdict, evidence)."""
    mark = {True: "holds", False: "**does not hold**", None: "not tested"}
    rows = ["| the paper's finding | in these runs | evidence |", "|:--|:--|:--|"]
    for f in findings:
        rows.append(f"| {f['claim']} | {mark[f['holds']]} | {f['evidence']} |")
    return "\n".join(rows)
