"""Figures of the stopping chapter: the signals each rule watches, and the benchmark."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import stopping as S
from . import PALETTE, mark_iteration

__all__ = ["RULE_LABELS", "rule_signals", "trajectory_with_rules", "loss_bars", "loss_table_markdown"]

RULE_LABELS = {
    "oracle": "oracle (clean image)",
    "final": "no stopping (last output)",
    "eps": "two-run agreement (eps)",
    "variance": "running variance",
    "band": "high-band rule",
    "whiteness": "residual whiteness (ours)",
}


def trajectory_with_rules(traj: dict, ax=None, title: str | None = None):
    """PSNR of run 0 against iterations, with the iteration each rule chooses marked."""
    ax = ax if ax is not None else plt.subplots()[1]
    it = traj["iterations"]
    ax.plot(it, traj["psnr"][0], color="0.2", label="PSNR to the clean image")
    if traj.get("noisy_psnr") is not None:
        ax.axhline(traj["noisy_psnr"], color="0.6", ls=":", label="noisy input")
    for k, (rule, info) in enumerate(traj["rules"].items()):
        ax.plot(info["iteration"], traj["psnr"][0][info["index"]], "o", color=PALETTE[k], label=RULE_LABELS[rule])
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return ax


def rule_signals(traj: dict, params: dict | None = None):
    """Four panels: what the eps, variance, band and whiteness rules read, and where they stop.

    Returns:
        The figure.
    """
    from ..stopping import DEFAULT_PARAMS, apply_rule

    params = params or DEFAULT_PARAMS
    it = traj["iterations"]
    outs = traj["snapshots"][0].astype(np.float32)
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.6), sharex=True)
    panels = [
        ("eps", traj["eps"], "eps: sum of squared differences", True),
        ("variance", S.moving_variance(outs, params["variance"]["window"]), "moving variance of outputs", True),
        ("band", S.high_band_ratio(outs, traj["target"]), "output / target power, top band", True),
        ("whiteness", S.residual_band_ratio(outs, traj["target"]), "residual power, low / high band", True),
    ]
    for ax, (rule, y, label, logy) in zip(axes.flat, panels, strict=True):
        ax.plot(it, y, color=PALETTE[0])
        if logy:
            ax.set_yscale("log")
        ax.set_ylabel(label, fontsize=9)
        i = apply_rule(rule, traj, params[rule])
        mark_iteration(ax, it[i], f"{rule} stops")
        if "psnr" in traj and traj["psnr"] is not None:
            mark_iteration(ax, it[int(np.argmax(traj["psnr"][0]))], None, color=PALETTE[1])
        ax.set_title(RULE_LABELS[rule], fontsize=10)
    if traj.get("psnr") is not None:
        axes[1, 0].plot([], [], "--", color=PALETTE[1], label="oracle's iteration")
        axes[1, 0].legend(fontsize=8)
    axes[1, 1].axhline(1.0, color="0.5", lw=0.8)
    for ax in axes[1]:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    return fig


def loss_bars(bench: dict, ax=None):
    """Mean PSNR lost against the oracle per rule and scored image (dB), with the spread over seeds."""
    ax = ax if ax is not None else plt.subplots()[1]
    rules = [r for r in bench["loss"] if r not in ("oracle",)]
    images = list(bench["loss"][rules[0]])
    width = 0.8 / len(images)
    x = np.arange(len(rules))
    for j, im in enumerate(images):
        m = [bench["loss"][r][im][0] for r in rules]
        s = [bench["loss"][r][im][1] for r in rules]
        ax.bar(x + (j - (len(images) - 1) / 2) * width, m, width, yerr=s, label=im, color=PALETTE[j % len(PALETTE)])
    ax.set_xticks(x, [RULE_LABELS[r].replace(" (", "\n(") for r in rules], fontsize=8)
    ax.set_ylabel("PSNR lost vs the oracle (dB)")
    ax.legend(title="scored on", fontsize=8)
    return ax


def loss_table_markdown(bench: dict) -> str:
    """The benchmark as a Markdown table: per score image, the PSNR lost against the oracle
    (mean ± std over seeds, dB) and the mean chosen iteration; then the mean loss (dB) and the
    mean SSIM of the chosen outputs (no unit) over all score images."""
    images = list(bench["loss"]["oracle"])
    head = ("| rule | " + " | ".join(images) + " | mean loss (dB) | mean SSIM |\n|---|"
            + "---|" * (len(images) + 2) + "\n")
    rows = []
    for rule, per in bench["loss"].items():
        cells = [
            f"{per[im][0]:.2f} ± {per[im][1]:.2f} dB (it. {np.mean(bench['iterations'][rule][im]):.0f})"
            for im in images
        ]
        rows.append(f"| {RULE_LABELS[rule]} | " + " | ".join(cells)
                    + f" | {bench['mean_loss'][rule]:.2f} | {bench['mean_ssim'][rule]:.3f} |")
    return head + "\n".join(rows)
