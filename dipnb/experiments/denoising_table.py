"""The paper's denoising table (Tables 1-2): four models x images x seeds, best PSNR along the way.

Each cell of the table is one run of the single-run experiment ``denoising`` (one image, one
model, one seed), obtained with ``ctx.run`` so that it is cached on its own: an interrupted table
resumes where it stopped, and the notebook can load any run again (e.g. for Fig. 7) without
recomputing it. The four columns are the paper's (Sec. 3.1):

- ``dip``: the DIP skip encoder-decoder;
- ``linear-128`` / ``linear-2048``: DIP-Linear, 5 fully connected layers of 128 / 2,048 units;
- ``relunet``: a 10-layer ReLU network of 256 units from pixel coordinates to intensities.

Every run sees the same noisy image (``noise_seed`` 0); the seed changes the weights, the input
noise and, for the ReLUNet, the minibatches. The score is the best PSNR to the clean image along
the recorded trajectory (an oracle stopping time, as in the paper).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import data as D
from ..errors import ConfigError
from ..params import Config, param
from .engine import SMOKE_STEPS, Context, Result, experiment, run

__all__ = [
    "DenoisingTableConfig",
    "MODEL_LABELS",
    "MODEL_NAMES",
    "PAPER_IMAGES",
    "PAPER_TABLE2",
    "paper_means",
    "unit_overrides",
    "load_unit",
]

MODEL_LABELS = ("dip", "linear-128", "linear-2048", "relunet")
MODEL_NAMES = {"dip": "DIP", "linear-128": "DIP Linear-128", "linear-2048": "DIP Linear-2048", "relunet": "ReLUNet"}
# Table 2 of the paper without Lena (retired by the field; not among our test images).
PAPER_IMAGES = ("baboon", "f16", "house", "kodim01", "kodim02", "kodim03", "kodim12", "peppers")

# The paper's Table 2 (Chakrabarty & Maji 2019, Appendix C): mean and standard deviation of the
# best PSNR (dB) over 5 runs, sigma = 25/255, images downsampled by 4. Quoted, not computed.
_PAPER_ROWS = {  # image: (DIP, DIP Linear-128, DIP Linear-2048, ReLUNet), each (mean, std)
    "baboon": ((24.73, 0.04), (20.48, 0.06), (20.35, 0.43), (24.56, 0.02)),
    "f16": ((27.00, 0.15), (20.72, 0.12), (18.60, 1.85), (26.67, 0.14)),
    "house": ((26.89, 0.10), (20.69, 0.04), (18.89, 1.45), (27.21, 0.22)),
    "kodim01": ((25.90, 0.08), (20.35, 0.07), (20.54, 0.07), (25.95, 0.07)),
    "kodim02": ((29.20, 0.13), (20.74, 0.01), (20.59, 0.19), (29.99, 0.09)),
    "kodim03": ((29.26, 0.13), (20.47, 0.04), (18.13, 0.13), (29.62, 0.16)),
    "kodim12": ((29.61, 0.06), (20.36, 0.03), (17.74, 0.04), (29.63, 0.16)),
    "lena": ((27.49, 0.06), (20.48, 0.01), (18.67, 0.72), (27.78, 0.16)),
    "peppers": ((27.12, 0.11), (20.60, 0.01), (18.98, 1.31), (26.82, 0.16)),
}
PAPER_TABLE2 = {img: dict(zip(MODEL_LABELS, row, strict=True)) for img, row in _PAPER_ROWS.items()}
# The paper's Table 1: the mean of each column of Table 2 over its 9 images (Lena included).
PAPER_TABLE1 = {"dip": 27.47, "linear-128": 20.54, "linear-2048": 19.17, "relunet": 27.58}


def paper_means(images=PAPER_IMAGES) -> dict[str, float]:
    """Mean of the paper's Table 2 over ``images`` per model (e.g. the 8 images without Lena)."""
    return {m: float(np.mean([PAPER_TABLE2[i][m][0] for i in images])) for m in MODEL_LABELS}


@dataclass(frozen=True)
class DenoisingTableConfig(Config):
    images: tuple[str, ...] = param(PAPER_IMAGES, check=D.check_image, min_len=1, distinct=True)  # Table 2, no Lena
    models: tuple[str, ...] = param(MODEL_LABELS, one_of=MODEL_LABELS, min_len=1, distinct=True)  # the columns
    seeds: int = param(5, ge=1)  # runs per image and model, seeds 0 .. seeds-1 (the paper's 5)
    sigma: float = param(25.0, ge=0, note="in units of 1/255")  # noise standard deviation (the paper's 25)
    downsample: int = param(4, ge=1)  # block-average downsampling of every image (the paper's 4)
    dip_width: int = param(128, ge=1)  # DIP channels at every scale (the paper's 128)
    dip_iterations: int = param(3000, ge=1)  # DIP steps; its best point comes after a few hundred
    linear128_iterations: int = param(1000, ge=1)  # DIP Linear-128 steps; it reaches the noisy image within ~100
    linear2048_iterations: int = param(300, ge=1)  # DIP Linear-2048 steps (~0.5 s each on a CPU at 64x64)
    linear2048_lr: float = param(1e-4, gt=0)  # Adam rate for Linear-2048: at 1e-3 its sigmoid saturates in a few steps
    relunet_iterations: int = param(30000, ge=1)  # ReLUNet steps (the authors' code: 30,000)
    relunet_batch: int = param(2048, ge=1)  # ReLUNet pixels per minibatch (the authors' 2,048)
    records: int = param(300, ge=1)  # PSNR records per run of dip and linear (record_every = iterations // records)
    relunet_records: int = param(300, ge=1)  # PSNR records per ReLUNet run: each predicts the whole image
    frames: int = param(30, ge=0)  # outputs stored along the trajectory of seed 0 of dip and relunet (Fig. 7)

    def units(self) -> list[tuple[str, str, int]]:
        """``(image, model, seed)`` of every cell run, in the order of :meth:`subruns`."""
        return list(itertools.product(self.images, self.models, range(self.seeds)))

    def subruns(self) -> list[tuple[str, dict]]:
        """The ``denoising`` run of every image, model and seed (see :func:`unit_overrides`)."""
        return [("denoising", unit_overrides(self, *u)) for u in self.units()]


def unit_overrides(cfg: DenoisingTableConfig, image: str, model: str, seed: int) -> dict:
    """The parameters of the ``denoising`` run behind one cell of the table (one seed).

    Every field that a profile of ``denoising`` sets is given here, so the run is the same
    whichever profile it is called from.
    """
    if model not in MODEL_LABELS:
        raise ConfigError(f"model {model!r} not allowed: use one of {', '.join(MODEL_LABELS)}")
    kind, width, iterations, lr, extra = {
        "dip": ("dip", cfg.dip_width, cfg.dip_iterations, 1e-3, {}),
        "linear-128": ("linear", 128, cfg.linear128_iterations, 1e-3, {}),
        "linear-2048": ("linear", 2048, cfg.linear2048_iterations, cfg.linear2048_lr, {}),
        "relunet": ("relunet", 0, cfg.relunet_iterations, 1e-3, {"batch_pixels": cfg.relunet_batch}),
    }[model]
    frames = cfg.frames if model in ("dip", "relunet") and seed == 0 else 0
    records = cfg.relunet_records if model == "relunet" else cfg.records
    return {
        "image": image, "model": kind, "width": width, "depth": 0, "sigma": float(cfg.sigma),
        "noise_seed": 0, "seed": seed, "iterations": iterations, "downsample": cfg.downsample,
        "lr": lr, "record_every": max(1, iterations // records),
        "snapshot_every": max(1, iterations // frames) if frames else 0, **extra,
    }


def load_unit(table: Result, image: str, model: str, seed: int = 0, **kwargs) -> Result:
    """The cached ``denoising`` run behind a cell of a computed table (computed if missing)."""
    return run("denoising", profile=table.profile if table.profile != "?" else None,
               verbose=False, **unit_overrides(table.config, image, model, seed), **kwargs)


def _stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def _summary(data: dict, cfg: DenoisingTableConfig) -> dict:
    return {
        "images": list(cfg.images),
        "models": list(cfg.models),
        "seeds": cfg.seeds,
        "noisy_psnr": data["noisy_psnr"],
        "best_psnr": {m: {i: _stats(data["best_psnr"][m][i]) for i in cfg.images} for m in cfg.models},
        "best_ssim": {m: {i: _stats(data["best_ssim"][m][i]) for i in cfg.images} for m in cfg.models},
        "noisy_ssim": data["noisy_ssim"],
        "mean_over_images": data["mean_over_images"],
        "paper_mean_over_images": {m: paper_means([i for i in cfg.images if i in PAPER_TABLE2])[m]
                                   for m in cfg.models} if any(i in PAPER_TABLE2 for i in cfg.images) else None,
    }


@experiment(
    "denoising-table",
    config=DenoisingTableConfig,
    profiles={
        # quick: two smooth Kodak images at 96x64 (x8), 3 seeds, short runs (~2 minutes on a CPU);
        # the ReLUNet is stopped long before its peak (see the chapter)
        "quick": {
            "images": ("kodim02", "kodim12"), "seeds": 3, "downsample": 8, "dip_width": 64,
            "dip_iterations": 200, "linear128_iterations": 150, "linear2048_iterations": 15,
            "linear2048_lr": 3e-4, "relunet_iterations": 800, "relunet_batch": 512, "records": 100,
            "relunet_records": 25, "frames": 8,
        },
        "paper": {"images": PAPER_IMAGES, "seeds": 5, "downsample": 4},
        # colab: the paper's sizes and widths on 2 of its 8 images with 2 seeds; the DIP stopped at
        # 1,000 steps (its peak comes after a few hundred), the ReLUNet at 10,000 of its 30,000
        "colab": {"images": ("kodim02", "kodim12"), "seeds": 2, "downsample": 4, "dip_iterations": 1000,
                  "relunet_iterations": 10000},
    },
    summary=_summary,
    version=2,  # 2: SSIM beside PSNR
    # smoke mode: every model on two images (one square, one Kodak: both image shapes), one seed
    smoke={
        "images": lambda v: tuple(dict.fromkeys([v[0], *[i for i in v if i.startswith("kodim")][:1]])),
        "seeds": 1, "dip_iterations": SMOKE_STEPS, "linear128_iterations": SMOKE_STEPS,
        "linear2048_iterations": SMOKE_STEPS, "relunet_iterations": SMOKE_STEPS,
    },
)
def denoising_table(cfg: DenoisingTableConfig, ctx: Context) -> dict:
    """Best PSNR of DIP, DIP-Linear (128, 2048) and ReLUNet on each image, over seeds (Table 2)."""
    best = {m: {i: [] for i in cfg.images} for m in cfg.models}
    best_it = {m: {i: [] for i in cfg.images} for m in cfg.models}
    final = {m: {i: [] for i in cfg.images} for m in cfg.models}
    best_ssim = {m: {i: [] for i in cfg.images} for m in cfg.models}
    seconds = {m: {i: [] for i in cfg.images} for m in cfg.models}
    noisy_psnr, noisy_ssim, shapes = {}, {}, {}
    for (image, model, _), r in zip(cfg.units(), ctx.run_many(cfg.subruns()), strict=True):
        d = r.data
        best[model][image].append(d["best_psnr"])
        best_it[model][image].append(d["best_iteration"])
        final[model][image].append(d["final_psnr"])
        best_ssim[model][image].append(d["best_ssim"])
        seconds[model][image].append(float(d.get("fit_seconds", 0.0)))
        noisy_psnr.setdefault(image, d["noisy_psnr"])
        noisy_ssim.setdefault(image, d["noisy_ssim"])
        shapes.setdefault(image, tuple(d["clean"].shape))
    mean_over_images = {m: float(np.mean([np.mean(best[m][i]) for i in cfg.images])) for m in cfg.models}
    return {
        "best_psnr": best,  # model -> image -> list over seeds (dB)
        "best_iteration": best_it,
        "final_psnr": final,
        "best_ssim": best_ssim,  # model -> image -> list over seeds: SSIM of the output at the best PSNR
        "noisy_ssim": noisy_ssim,  # image -> SSIM of the noisy input
        "fit_seconds": seconds,
        "noisy_psnr": noisy_psnr,  # image -> dB (the same noisy image for every run)
        "shapes": shapes,  # image -> (C, H, W) after downsampling (and cropping, for the DIP)
        "mean_over_images": mean_over_images,
    }
