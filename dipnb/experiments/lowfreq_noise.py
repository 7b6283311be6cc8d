r"""A failure case of the Deep Image Prior: noise made of low frequencies only (paper, Fig. 2).

The DIP removes white Gaussian noise because it fits the low frequencies of its target first and
white noise is spread evenly over all frequencies, most of them high. Noise that contains only low
frequencies breaks that argument: the network fits it as early as the coarse structure of the
image, before the image's fine detail, so no point of the trajectory is closer to the clean image
than the noisy input is. ``lowfreq-noise`` fits a DIP to an image corrupted either way:

- ``lowfreq``: Gaussian noise low-passed to at most ``max_cycles`` cycles per image, zero mean,
  standard deviation ``std`` (:func:`dipnb.data.lowfreq_noise`);
- ``white``: white Gaussian noise scaled so that the noisy image has the *same* PSNR as the
  low-frequency one (found by bisection after clipping to [0, 1]), so that the two differ only in
  where their energy lies in frequency.

Every recorded output is scored against the clean image (PSNR) and against the noise: the
noise fraction :math:`\rho_i = \langle f_{\theta_i}(z) - x^*, n\rangle / \|n\|^2`, where
:math:`n = x_0 - x^*`, is 0 for an output without the noise and 1 for one that carries all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import data as D
from .. import models as M
from ..fit import FitConfig, fit
from ..metrics import SCORES, denoising_scores, psnr
from ..params import Config, param
from .engine import Context, experiment

__all__ = ["LowFreqNoiseConfig", "NOISES", "matched_white_noise", "corrupt", "nearest_snapshot"]

NOISES = ("lowfreq", "white")


@dataclass(frozen=True)
class LowFreqNoiseConfig(Config):
    image: str = param("baboon", check=D.check_image)  # a test image name (the paper's barbara, baboon) or a path
    noise: str = param("lowfreq", one_of=NOISES)  # lowfreq (low-passed Gaussian) | white (same PSNR, white)
    std: float = param(0.1, gt=0, le=0.5, note="intensity units of [0, 1]")  # std of the low-frequency noise
    max_cycles: float = param(4.0, gt=0)  # highest frequency kept in the low-frequency noise, cycles per image
    noise_seed: int = param(0, ge=0)  # seeds the noise (the white noise uses it too)
    seed: int = param(0, ge=0)  # seeds the network's weights and its fixed input z
    iterations: int = 1000  # optimisation steps (the paper shows 20 and 500)
    downsample: int = param(4, ge=1)  # block-average downsampling of the image (512 -> 128 pixels)
    width: int = param(128, ge=1)  # DIP channels at every scale (the paper's 128)
    depth: int = param(5, ge=1)  # DIP scales; the image is centre-cropped to a multiple of 2**depth
    lr: float = 1e-3  # Adam learning rate (the paper's 1e-3)
    record_every: int = 5  # iterations between PSNR records
    snapshot_every: int = param(10, ge=1)  # iterations between stored outputs (keep 20 a multiple of it)

    def check(self):
        self.fit_config()  # iterations, lr, record_every: FitConfig checks them

    def fit_config(self) -> FitConfig:
        return FitConfig.of(self, checkpoint_every=max(100, self.record_every))


def matched_white_noise(clean: np.ndarray, target_psnr: float, seed: int) -> tuple[np.ndarray, float]:
    """White Gaussian noise scaled so that ``clip(clean + noise)`` has PSNR ``target_psnr``.

    Args:
        clean: ``(C, H, W)`` in [0, 1].
        target_psnr: the PSNR (dB) the noisy image must have against ``clean``.
        seed: seeds the noise.

    Returns:
        ``(noisy, sigma)``: the clipped noisy image ``(C, H, W)`` float32 in [0, 1] and the noise's
        standard deviation before clipping (intensity units).
    """
    white = torch.randn(clean.shape, generator=torch.Generator().manual_seed(int(seed))).numpy()
    lo, hi = 0.0, 1.0  # PSNR falls monotonically as the scale grows
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if psnr(np.clip(clean + mid * white, 0, 1), clean) > target_psnr:
            lo = mid
        else:
            hi = mid
    sigma = 0.5 * (lo + hi)
    return np.clip(clean + sigma * white, 0, 1).astype(np.float32), float(sigma)


def corrupt(cfg: LowFreqNoiseConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """The clean image, its noisy version and the white noise's sigma (0 for low-frequency noise).

    Returns:
        ``(clean, noisy, sigma)``; images ``(C, H, W)`` float32 in [0, 1].
    """
    clean = D.load_image(cfg.image, downsample_factor=cfg.downsample, size_multiple=2**cfg.depth)
    low = D.lowfreq_noise(clean.shape, max_cycles=cfg.max_cycles, std=cfg.std, seed=cfg.noise_seed)
    noisy = np.clip(clean + low, 0, 1).astype(np.float32)
    if cfg.noise == "lowfreq":
        return clean, noisy, 0.0
    noisy, sigma = matched_white_noise(clean, psnr(noisy, clean), seed=cfg.noise_seed + 1)
    return clean, noisy, sigma


def nearest_snapshot(data: dict, iteration: int) -> tuple[int, np.ndarray]:
    """The stored output closest to ``iteration``: ``(its iteration, (C, H, W) image)``."""
    its = np.asarray(data["snapshot_iterations"])
    j = int(np.argmin(np.abs(its - iteration)))
    return int(its[j]), data["snapshots"][j]


def _summary(data: dict, cfg: LowFreqNoiseConfig) -> dict:
    keys = (*SCORES, "final_psnr_to_input", "early_iteration", "early_noise_fraction", "white_sigma")
    return {
        "image": cfg.image,
        "noise": cfg.noise,
        "gain": data["best_psnr"] - data["noisy_psnr"],
        **{k: data[k] for k in keys},
    }


@experiment(
    "lowfreq-noise",
    config=LowFreqNoiseConfig,
    profiles={
        # quick: 64x64 (512 / 8) and 64 channels, ~0.03 s a step on a CPU; the claim holds at this size
        "quick": {"image": "baboon", "downsample": 8, "width": 64, "iterations": 500},
        "paper": {"image": "baboon", "downsample": 4, "width": 128, "iterations": 1000, "snapshot_every": 20},
        "colab": {"image": "baboon", "downsample": 4, "width": 128, "iterations": 1000, "snapshot_every": 20},
    },
    summary=_summary,
    version=2,  # 2: SSIM beside PSNR
)
def lowfreq_noise(cfg: LowFreqNoiseConfig, ctx: Context) -> dict:
    """Fit a DIP to an image with low-frequency (or white) noise and score it against the clean image."""
    clean, noisy, sigma = corrupt(cfg)
    c, h, w = clean.shape
    model = M.build_skip(seed=cfg.seed, in_channels=c, out_channels=c, width=cfg.width, depth=cfg.depth)
    z = D.input_noise((1, c, h, w), seed=cfg.seed)
    noise = torch.as_tensor(noisy - clean)[None]  # (1, C, H, W), the noise after clipping
    clean_t = torch.as_tensor(clean)[None]
    noise_energy = float((noise**2).sum())

    def noise_fraction(out: torch.Tensor) -> float:  # <out - clean, n> / ||n||^2
        return float(((out.cpu() - clean_t) * noise).sum()) / noise_energy

    rec = fit(
        model, z, noisy, cfg.fit_config(), reference=clean, metrics={"noise_fraction": noise_fraction},
        **ctx.fit_kwargs(f"{cfg.noise} noise on {cfg.image}"),
    )
    frac = rec.metrics["noise_fraction"][0].astype(float)
    best = rec.best_output[0] if rec.best_output is not None else rec.final[0]
    k = int(np.argmin(np.abs(rec.iterations - 20)))  # Fig. 2(b) shows the output at 20 iterations
    return {
        "clean": clean,
        "noisy": noisy,
        "white_sigma": sigma,
        "iterations": rec.iterations,
        "psnr": rec.psnr[0],
        "loss": rec.loss[0],
        "noise_fraction": frac,
        "best_output": best,
        "final_output": rec.final[0],
        "final_psnr_to_input": float(10 * np.log10(1.0 / max(float(rec.loss[0, -1]), 1e-12))),
        "snapshot_iterations": rec.snapshot_iterations,
        "snapshots": rec.snapshots[0],
        "fit_seconds": rec.seconds,
        **denoising_scores(rec.iterations, rec.psnr[0], noisy, clean, best, rec.final[0]),
        "early_iteration": int(rec.iterations[k]),
        "early_noise_fraction": float(frac[k]),
    }
