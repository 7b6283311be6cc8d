"""When to stop without the clean image: record two-run DIP trajectories, then compare rules.

``stopping`` fits one image (two runs from different seeds, side by side) and applies every
rule of :mod:`dipnb.stopping`; with ``output=`` set it writes the chosen output as a PNG, so a
user can denoise their own photo. ``stopping-benchmark`` tunes each rule's one parameter on some
images and scores it on the others against the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import data as D
from .. import models as M
from .. import stopping as S
from ..errors import ConfigError
from ..fit import FitConfig, fit
from ..metrics import psnr, ssim
from ..params import Config, param
from .engine import Context, Result, experiment


@dataclass(frozen=True)
class StoppingConfig(Config):
    image: str = param("house", check=D.check_image)  # a test image name, or a path to your own (noisy) image
    sigma: float = param(25.0, ge=0, note="in units of 1/255; 0 = already noisy")  # added noise std; 0 = none added
    noise_seed: int = param(0, ge=0)  # seeds the added noise
    seed: int = param(0, ge=0)  # the two runs use seeds `seed` and `seed + 1000`
    width: int = param(64, ge=1)  # channels of the skip net
    depth: int = param(5, ge=1)  # scales of the skip net (H, W must be multiples of 2**depth)
    iterations: int = 600  # optimisation steps
    downsample: int = param(4, ge=1)  # block-average downsampling of the image
    size: int = param(0, ge=0)  # > 0: instead of `downsample`, bring the shorter side to about `size` px
    record_every: int = 5  # iterations between recorded outputs (the rules' time resolution)
    lr: float = 1e-3  # Adam learning rate
    rule: str = param("whiteness", one_of=S.RULES, cache=False)  # the rule whose output goes to `output`
    output: str = param("", cache=False)  # a PNG path to write the chosen output to

    def check(self):
        if self.rule == "oracle" and self.sigma == 0:
            raise ConfigError("rule 'oracle' needs the clean image: use sigma > 0 on a clean image")
        if self.output and not self.output.lower().endswith(".png"):
            raise ConfigError(f"output must be a .png path, got {self.output!r}")
        if self.size != 0 and self.size < 2**self.depth:
            raise ConfigError(f"size must be 0 (use downsample) or >= 2**depth = {2**self.depth} pixels,"
                              f" got {self.size}")
        M.SkipConfig(width=self.width, depth=self.depth)  # the skip net's own limits
        self.fit_config()

    def fit_config(self) -> FitConfig:
        return FitConfig(
            iterations=self.iterations, lr=self.lr, record_every=self.record_every,
            snapshot_every=self.record_every, snapshot_budget_mb=4096.0, checkpoint_every=100,
        )


def downsample_factor(cfg: StoppingConfig) -> int:
    """The block-averaging factor of ``cfg``'s image: ``downsample``, or with ``size > 0`` the
    largest integer factor that keeps the image's shorter side at ``size`` pixels or more (so
    every test image of a benchmark comes out at about the same size)."""
    if cfg.size <= 0:
        return cfg.downsample
    if D.is_image_path(cfg.image):
        h, w = D.load_image(cfg.image).shape[-2:]
    else:
        info = D.image_info(cfg.image)
        h, w = info.height, info.width
    return max(1, min(h, w) // cfg.size)


def _summary(data: dict, cfg: StoppingConfig) -> dict:
    out = {"image": cfg.image, "seed": cfg.seed, "rule": cfg.rule, "noisy_psnr": data["noisy_psnr"]}
    for rule, info in data["rules"].items():
        out[f"{rule}_iteration"] = info["iteration"]
        if info.get("psnr") is not None:
            out[f"{rule}_psnr"] = info["psnr"]
            out[f"{rule}_ssim"] = info["ssim"]
    return out


def _write_output(res: Result) -> None:
    cfg = res.config
    if not cfg.output:
        return
    from PIL import Image

    img = res.data["rules"][cfg.rule]["output"]  # (C, H, W) in [0, 1]
    arr = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(cfg.output)
    print(f"dipnb: wrote the output chosen by rule {cfg.rule!r} "
          f"(iteration {res.data['rules'][cfg.rule]['iteration']}) to {cfg.output}")


@experiment(
    "stopping",
    config=StoppingConfig,
    profiles={
        # quick: every test image at about 64x64 (house 256 / 4, the 512-pixel ones / 8)
        "quick": {"width": 64, "iterations": 300, "size": 64},
        "paper": {"width": 128, "iterations": 3000, "record_every": 10},  # downsample: the default 4
        "colab": {"width": 128, "iterations": 1000, "record_every": 10},
    },
    summary=_summary,
    after=_write_output,
    version=2,  # 2: SSIM beside PSNR
)
def stopping(cfg: StoppingConfig, ctx: Context) -> dict:
    """Fit two DIP runs to a noisy image and apply every stopping rule to the trajectory."""
    mult = 2**cfg.depth
    clean = D.load_image(cfg.image, downsample_factor=downsample_factor(cfg), size_multiple=mult)
    if cfg.sigma > 0:
        target = D.add_gaussian_noise(clean, cfg.sigma / 255.0, seed=cfg.noise_seed)
        reference = clean
    else:
        target, reference = clean, None
    c, h, w = target.shape
    seeds = (cfg.seed, cfg.seed + 1000)
    models = [M.build_skip(seed=s, in_channels=c, out_channels=c, width=cfg.width, depth=cfg.depth) for s in seeds]
    zs = [D.input_noise((1, c, h, w), seed=s) for s in seeds]
    rec = fit(models, zs, target, cfg.fit_config(), reference=reference, **ctx.fit_kwargs(f"stopping {cfg.image}"))
    traj = {
        "iterations": rec.snapshot_iterations,
        "snapshots": rec.snapshots.astype(np.float16),  # (2, T, C, H, W): halves the cache file
        "eps": rec.eps,
        "psnr": rec.psnr,
        "target": target,
        "clean": reference,
        "noisy_psnr": psnr(target, reference) if reference is not None else None,
    }
    if not np.array_equal(rec.iterations, rec.snapshot_iterations):
        raise RuntimeError("records and snapshots must share their iterations")
    rules = {}
    for rule in S.RULES:
        if rule == "oracle" and reference is None:
            continue
        i = S.apply_rule(rule, traj)
        out = traj["snapshots"][0, i].astype(np.float32)
        rules[rule] = {
            "index": i,
            "iteration": int(traj["iterations"][i]),
            "psnr": float(rec.psnr[0, i]) if reference is not None else None,
            "ssim": ssim(out, reference) if reference is not None else None,  # no unit
            "output": out,
        }
    traj["rules"] = rules
    return traj


@dataclass(frozen=True)
class StoppingBenchmarkConfig(Config):
    tune_images: tuple[str, ...] = param(("house", "baboon"), check=D.check_image, min_len=1)  # rules tuned on these
    score_images: tuple[str, ...] = param(("f16", "peppers", "kodim03"), check=D.check_image, min_len=1)  # scored on
    seeds: int = param(3, ge=1)  # independent seeds (pairs of runs) per image
    first_seed: int = param(0, ge=0)  # an image's runs use seeds first_seed .. first_seed + seeds - 1
    noise_seed: int = param(0, ge=0)  # seeds the noise added to every image
    sigma: float = param(25.0, gt=0, note="in units of 1/255; scored against the clean image")  # noise std
    width: int = param(64, ge=1)  # channels of the skip net
    iterations: int = 600  # optimisation steps per run
    downsample: int = param(4, ge=1)  # block-average downsampling of the images
    size: int = param(0, ge=0)  # > 0: every image downsampled to a shorter side of about `size` px instead
    record_every: int = 5  # iterations between recorded outputs

    def check(self):
        overlap = set(self.tune_images) & set(self.score_images)
        if overlap:
            raise ConfigError(f"an image cannot be both tuned and scored on: {sorted(overlap)}")

    def subruns(self) -> list[tuple[str, dict]]:
        """The ``stopping`` runs: the tuning images, then the scoring images, seed by seed."""
        shared = {"sigma": self.sigma, "noise_seed": self.noise_seed, "width": self.width,
                  "iterations": self.iterations, "downsample": self.downsample, "size": self.size,
                  "record_every": self.record_every}
        return [("stopping", {"image": im, "seed": self.first_seed + s, **shared})
                for im in (*self.tune_images, *self.score_images) for s in range(self.seeds)]


def _loss(traj: dict, i: int) -> float:
    p = traj["psnr"][0]
    return float(np.max(p) - p[i])


def tune(rule: str, trajectories: list[dict]) -> tuple[dict, float]:
    """The parameters of ``rule`` with the least mean PSNR loss over ``trajectories``, and that loss (dB)."""
    best, best_loss = None, np.inf
    for params in S.GRIDS[rule]:
        loss = float(np.mean([_loss(t, S.apply_rule(rule, t, params)) for t in trajectories]))
        if loss < best_loss - 1e-9:
            best, best_loss = params, loss
    return best, best_loss


def _bench_summary(data: dict, cfg) -> dict:
    return {
        "tuned_parameters": data["tuned"],
        "tuned_on": list(cfg.tune_images),
        "scored_on": list(cfg.score_images),
        "loss_db": {r: {im: [round(m, 3), round(s, 3)] for im, (m, s) in v.items()} for r, v in data["loss"].items()},
        "mean_loss_db": data["mean_loss"],
        "mean_ssim": data["mean_ssim"],
    }


@experiment(
    "stopping-benchmark",
    config=StoppingBenchmarkConfig,
    profiles={
        # quick: 4 images x 3 seeds x 2 runs of a 64-channel net at 64x64 (size 64: house / 4, the
        # 512-pixel images / 8), 300 iterations; one smooth and one textured image to tune on, two
        # others to score on
        "quick": {"tune_images": ("house", "baboon"), "score_images": ("f16", "peppers"), "seeds": 3,
                  "width": 64, "iterations": 300, "size": 64},
        "paper": {
            "tune_images": ("house", "baboon", "kodim12"),
            "score_images": ("f16", "peppers", "kodim01", "kodim02", "kodim03"),
            "seeds": 5, "width": 128, "iterations": 3000, "record_every": 10,
        },
        # colab: the quick profile's images and seeds with the paper's sizes and width, 1,000 steps
        "colab": {"tune_images": ("house", "baboon"), "score_images": ("f16", "peppers"), "seeds": 3,
                  "width": 128, "iterations": 1000, "record_every": 10},
    },
    summary=_bench_summary,
    version=2,  # 2: the SSIM of each rule's output
)
def stopping_benchmark(cfg: StoppingBenchmarkConfig, ctx: Context) -> dict:
    """Tune each stopping rule on some images, then score it against the oracle on the others."""
    by_image: dict[str, list[dict]] = {}
    subs = cfg.subruns()
    for (_, sub), r in zip(subs, ctx.run_many(subs), strict=True):
        by_image.setdefault(sub["image"], []).append(r.data)
    tune_t = {im: by_image[im] for im in cfg.tune_images}
    score_t = {im: by_image[im] for im in cfg.score_images}
    tuned, tune_loss = {}, {}
    for rule in ("eps", "variance", "band", "whiteness"):
        tuned[rule], tune_loss[rule] = tune(rule, [t for ts in tune_t.values() for t in ts])
    loss, iters, ssims = {}, {}, {}
    for rule in ("oracle", "final", "eps", "variance", "band", "whiteness"):
        params = tuned.get(rule, {})
        loss[rule], iters[rule], ssims[rule] = {}, {}, {}
        for im, ts in score_t.items():
            idx = [S.apply_rule(rule, t, params) for t in ts]
            ls = [_loss(t, i) for t, i in zip(ts, idx, strict=True)]
            loss[rule][im] = (float(np.mean(ls)), float(np.std(ls)))
            iters[rule][im] = [int(t["iterations"][i]) for t, i in zip(ts, idx, strict=True)]
            ssims[rule][im] = [ssim(t["snapshots"][0, i].astype(np.float32), t["clean"])
                               for t, i in zip(ts, idx, strict=True)]
    mean_loss = {r: float(np.mean([m for m, _ in v.values()])) for r, v in loss.items()}
    return {
        "tuned": tuned,
        "tune_loss": tune_loss,
        "loss": loss,
        "iterations": iters,
        "mean_loss": mean_loss,
        "ssim": ssims,  # rule -> score image -> SSIM of the chosen output, one per seed
        "mean_ssim": {r: float(np.mean([np.mean(v) for v in per.values()])) for r, per in ssims.items()},
        "oracle_psnr": {im: [float(np.max(t["psnr"][0])) for t in ts] for im, ts in score_t.items()},
        "noisy_psnr": {im: ts[0]["noisy_psnr"] for im, ts in score_t.items()},
    }
