"""Denoising one image with one model: the unit of the paper's Tables 1-2 and Fig. 7."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import data as D
from .. import models as M
from ..fit import FitConfig, fit
from ..metrics import SCORES, denoising_scores
from ..params import Config, param
from .engine import Context, experiment

MODELS = ("dip", "linear", "relunet")
# width / depth used when the config leaves them at 0, per model (paper Sec. 3.1, reference setup)
DEFAULT_WIDTH = {"dip": 128, "linear": 128, "relunet": 256}
DEFAULT_DEPTH = {"dip": 5, "linear": 5, "relunet": 10}


@dataclass(frozen=True)
class DenoisingConfig(Config):
    image: str = param("house", check=D.check_image)  # a test image name (dipnb.data.image_names) or a path
    model: str = param("dip", one_of=MODELS)  # dip (conv skip net) | linear (DIP-Linear) | relunet (coordinate MLP)
    width: int = param(0, ge=0)  # channels / units per layer; 0 = the paper's: 128 dip, 128 linear, 256 relunet
    depth: int = param(0, ge=0)  # scales (dip) or layers (linear, relunet); 0 = the paper's: 5, 5, 10
    sigma: float = param(25.0, ge=0, note="in units of 1/255")  # noise standard deviation (the paper's 25)
    noise_seed: int = param(0, ge=0)  # seeds the noise, so every model and seed sees the same noisy image
    seed: int = param(0, ge=0)  # seeds the network's weights and its fixed input
    iterations: int = 3000  # optimisation steps
    downsample: int = param(4, ge=1)  # block-average downsampling of the image (the paper's 4)
    lr: float = 1e-3  # Adam learning rate (the paper's 1e-3)
    record_every: int = 10  # iterations between PSNR records (the DIP peak is ~100 iterations wide)
    snapshot_every: int = 0  # iterations between stored outputs (0: only the best and final)
    batch_pixels: int = param(2048, ge=1)  # relunet only: pixels per minibatch (the paper's 2,048)
    precision: str = "fp32"  # fp32 or bf16 autocast

    def check(self):
        self.fit_config()  # iterations, lr, record_every, precision: FitConfig checks them

    def fit_config(self) -> FitConfig:
        return FitConfig.of(
            self,
            batch_pixels=self.batch_pixels if self.model == "relunet" else 0,
            # DIP-Linear's checkpoints (weights + Adam state) would be gigabytes and its runs are short.
            checkpoint_every=0 if self.model == "linear" else max(self.record_every, 100),
        )


def build(cfg: DenoisingConfig, shape: tuple[int, int, int]):
    """The model and its fixed input for ``cfg`` and an image of ``shape`` = (C, H, W)."""
    c, h, w = shape
    width = cfg.width or DEFAULT_WIDTH[cfg.model]
    depth = cfg.depth or DEFAULT_DEPTH[cfg.model]
    if cfg.model == "dip":
        model = M.build_skip(seed=cfg.seed, in_channels=c, out_channels=c, width=width, depth=depth)
        model.check_input(h, w)
        z = D.input_noise((1, c, h, w), seed=cfg.seed)
    elif cfg.model == "linear":
        model = M.build_dip_linear(shape=shape, width=width, depth=depth, seed=cfg.seed)
        z = D.input_noise((1, c, h, w), seed=cfg.seed)
    else:
        model = M.build_relunet(seed=cfg.seed, out_channels=c, width=width, depth=depth)
        z = D.coordinate_grid(h, w)
    return model, z


def load_pair(cfg: DenoisingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The clean image and its noisy version, ``(C, H, W)`` float32 in [0, 1]."""
    # Every model is given the same pixels (cropped for the DIP's scales), so a table compares like with like.
    mult = 2 ** (cfg.depth or DEFAULT_DEPTH["dip"]) if cfg.model == "dip" else 2 ** DEFAULT_DEPTH["dip"]
    clean = D.load_image(cfg.image, downsample_factor=cfg.downsample, size_multiple=mult)
    noisy = D.add_gaussian_noise(clean, cfg.sigma / 255.0, seed=cfg.noise_seed)
    return clean, noisy


def _summary(data: dict, cfg: DenoisingConfig) -> dict:
    return {"image": cfg.image, "model": cfg.model, "seed": cfg.seed, **{k: data[k] for k in SCORES}}


@experiment(
    "denoising",
    config=DenoisingConfig,
    profiles={
        # quick: a 64x64 image and a narrower DIP, enough for the peak near 100-300 iterations
        "quick": {"image": "house", "iterations": 600, "width": 0, "downsample": 4},
        "paper": {"image": "house", "iterations": 3000, "downsample": 4},
        "colab": {"image": "house", "iterations": 3000, "downsample": 4},  # the paper's: under a minute on a T4
    },
    summary=_summary,
    version=2,  # 2: SSIM beside PSNR
)
def denoising(cfg: DenoisingConfig, ctx: Context) -> dict:
    """Fit a model to a noisy image and score every recorded output against the clean image."""
    clean, noisy = load_pair(cfg)
    model, z = build(cfg, clean.shape)
    # The output at the best PSNR is kept by fit itself (rec.best_output), so that it survives
    # a resume from a checkpoint; state kept in a metric closure would not.
    rec = fit(
        model, z, noisy, cfg.fit_config(), reference=clean,
        minibatch_seed=cfg.seed, **ctx.fit_kwargs(f"{cfg.model} {cfg.image} seed {cfg.seed}"),
    )
    return {
        "clean": clean,
        "noisy": noisy,
        "iterations": rec.iterations,
        "psnr": rec.psnr[0],
        "loss": rec.loss[0],
        "best_output": rec.best_output[0],
        "final_output": rec.final[0],
        "snapshot_iterations": rec.snapshot_iterations,
        "snapshots": None if rec.snapshots is None else rec.snapshots[0],
        "fit_seconds": rec.seconds,
        **denoising_scores(rec.iterations, rec.psnr[0], noisy, clean, rec.best_output[0], rec.final[0]),
    }
