r"""Two runs on one clean image: where their trajectories meet, part and meet again (paper Fig. 1, 5).

The DIP is fitted twice to the same *clean* image, from two different random initialisations
(weights and fixed input). At every recorded iteration ``i`` the experiment records the paper's

.. math:: \varepsilon^{(i)} = \sum_{\text{pixels}} \big(T_1^{(i)} - T_2^{(i)}\big)^2,

the sum of squared differences between the two runs' outputs, together with each run's error per
radial frequency band (:func:`dipnb.spectral.band_errors`) and snapshots of the outputs.

Two experiments are registered:

- ``trajectories``: the two runs on one image (a test image, a file, or our synthetic triangle).
- ``trajectories-area``: the controlled pattern of Fig. 1 f-h, a sweep over the fraction of the
  image the high-frequency pattern covers; every area is one cached ``trajectories`` sub-run,
  so an interrupted sweep resumes where it stopped.

The points of the eps curve the paper talks about (first convergence, divergence, second
convergence) are found by :func:`find_convergences`, and the divergence measure used for the
area sweep is :func:`max_rebound`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import data as D
from .. import models as M
from .. import spectral
from ..errors import ConfigError
from ..fit import FitConfig, fit
from ..metrics import spearman
from ..params import Config, param
from .engine import Context, experiment

__all__ = [
    "TrajectoriesConfig",
    "AreaConfig",
    "TRIANGLE_AREAS",
    "SYNTHETIC_SIZE",
    "smooth_eps",
    "max_rebound",
    "find_convergences",
    "high_band_ratio",
    "load_target",
    "band_edges",
]

TRIANGLE_AREAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # the paper's triangle-A.png files
SYNTHETIC_PREFIX = "synthetic-"  # image name "synthetic-0.6": our own triangle, pattern over 60%
SYNTHETIC_SIZE = 256  # side of the synthetic triangle before `downsample` (like the files)
SOURCES = ("files", "synthetic")


# --------------------------------------------------------------------------------------------
# Reading the eps curve
# --------------------------------------------------------------------------------------------


def smooth_eps(eps, window: int) -> np.ndarray:
    """Running median of an eps curve over ``window`` consecutive records.

    Adam makes the loss spike now and then, and a spike in either run is a spike in eps. A
    running median ignores spikes shorter than half the window, where a running mean would
    smear them into bumps that look like extra minima and maxima.

    Args:
        eps: ``(T,)`` values recorded at evenly spaced iterations.
        window: records per window (made odd; 1 leaves the curve as it is).

    Returns:
        ``(T,)`` float64, the smoothed curve. Near the ends the window shrinks symmetrically,
        so the first and last values are kept as they are.
    """
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim != 1:
        raise ConfigError(f"eps must be a 1D curve, got shape {e.shape}")
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window must be an integer >= 1 (records), got {window!r}")
    half = int(window) // 2
    if half == 0 or e.size < 3:
        return e.copy()
    n = e.size
    out = np.empty(n)
    for i in range(n):
        h = min(half, i, n - 1 - i)
        out[i] = np.median(e[i - h : i + h + 1])
    return out


def max_rebound(curve) -> tuple[float, int, int]:
    """The largest rise of a curve above its own running minimum.

    ``max_j (c[j] - min_{i <= j} c[i])``: how far the curve climbs back up after its lowest
    point so far. For an eps curve it measures how much the two trajectories move apart again
    after having come together; a curve that only falls has rebound 0.

    Returns:
        ``(rebound, i_min, j_peak)``: the rise, the index of the minimum it starts from and the
        index of the peak it reaches (``i_min == j_peak`` when the rebound is 0).
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ConfigError(f"curve must be a non-empty 1D array, got shape {c.shape}")
    run_min = np.minimum.accumulate(c)  # (T,)
    rise = c - run_min
    j = int(np.argmax(rise))
    if rise[j] <= 0:
        return 0.0, j, j
    i = int(np.argmin(c[: j + 1]))
    return float(rise[j]), i, j


def find_convergences(
    iterations, eps, *, window: int = 5, min_rise: float = 0.5, back: float = 0.5
) -> dict:
    """The first convergence, the divergence peak and the second convergence of an eps curve.

    The paper (Fig. 1e) sees eps fall while both runs fit the smooth part of the image, rise
    while each fits the fine detail in its own way, and fall again once both reproduce it. On
    a noisy curve the first local minimum is often a false one (an Adam spike just after it),
    so the points are read off the smoothed curve ``s`` (:func:`smooth_eps`):

    - **peak**: the record where ``s`` stands highest above its running minimum, the top of
      the largest rebound (:func:`max_rebound`); spikes and wiggles give only small rebounds;
    - **first** convergence: the minimum of ``s`` before that peak;
    - **second** convergence: the first record after the peak where ``s`` has come back down
      by the fraction ``back`` of the rebound (``back=1``: all the way to ``s[first]``). None if
      the run ends before.

    A rebound smaller than ``min_rise`` times ``s[first]`` does not count as a divergence: the
    trajectories never part again, and first, peak and second are all None.

    The first ``window // 2`` records are left out of the search for first and peak. There the
    running median's window is cut short by the start of the curve, so it cannot remove a spike;
    and in the first few steps both runs' outputs shrink toward much the same flat image, a brief
    dip of eps while neither run has fitted anything yet (PSNR near 10 dB on the triangle). Taken
    for the first convergence, that dip put it at iteration 5, before the lowest ring was fitted.

    Args:
        iterations: ``(T,)`` iteration numbers of the records (evenly spaced).
        eps: ``(T,)`` eps values.
        window: running-median window in records.
        min_rise: the smallest rebound, relative to ``s[first]``, that counts as a divergence.
        back: how far eps must fall back from the peak, as a fraction of the rebound.

    Returns:
        dict with ``first``, ``peak``, ``second`` (iteration numbers or None), ``rebound`` (the
        largest rise of ``s`` above its running minimum, in eps units, reported even when it is
        too small to count) and ``smoothed`` (the curve ``s``, ``(T,)``).
    """
    it = np.asarray(iterations)
    e = np.asarray(eps, dtype=np.float64)
    if it.shape != e.shape or e.ndim != 1:
        raise ConfigError(f"iterations {it.shape} and eps {e.shape} must be 1D of the same length")
    if not min_rise >= 0:
        raise ConfigError(f"min_rise must be >= 0, got {min_rise}")
    if not 0 < back <= 1:
        raise ConfigError(f"back must lie in (0, 1], got {back}")
    s = smooth_eps(e, window)
    out = {"first": None, "peak": None, "second": None, "rebound": 0.0, "smoothed": s}
    if s.size == 0:
        return out
    start = int(window) // 2  # records whose median window is whole from here on
    if s.size <= start:
        return out
    rise, i, j = max_rebound(s[start:])
    i, j = i + start, j + start
    out["rebound"] = rise
    if rise <= 0 or rise < min_rise * max(s[i], 1e-300):
        return out
    out.update(first=int(it[i]), peak=int(it[j]))
    level = s[j] - back * rise
    down = np.nonzero(s[j + 1 :] <= level)[0]
    if down.size:
        out["second"] = int(it[j + 1 + down[0]])
    return out


def high_band_ratio(data: dict, key: str = "first", cutoff: float = 0.25) -> np.ndarray:
    """Energy of each run's output above ``cutoff`` at a key point, relative to the target's.

    The paper's Fig. 1c says the output at the first convergence is a low-frequency version of
    the image. This measures it on the output itself: the power spectrum
    (:func:`dipnb.spectral.power_spectrum_2d`) summed over the radial frequencies >= ``cutoff``,
    for the stored output nearest to the point, divided by the same sum for the target. 0: the
    output has nothing up there; 1: as much energy as the target (right or wrong).

    Args:
        data: a ``trajectories`` result's data.
        key: ``"initial"``, ``"first"`` or ``"second"`` (the outputs of ``data["key_outputs"]``).
        cutoff: cycles per pixel, in (0, 0.5).

    Returns:
        ``(2,)`` one ratio per run; NaN for both if the point does not exist (no divergence).
    """
    if not 0 < cutoff < 0.5:
        raise ConfigError(f"cutoff must lie in (0, 0.5) cycles per pixel, got {cutoff}")
    if key not in data["key_outputs"]:
        raise ConfigError(f"key {key!r} is not allowed: use one of {', '.join(data['key_outputs'])}")
    outs = data["key_outputs"][key]  # (2, C, H, W) or None
    if outs is None:
        return np.full(2, np.nan)
    target = np.asarray(data["target"])
    high = spectral.radial_frequency(target.shape[-2:]) >= cutoff  # (H, W)
    ref = spectral.power_spectrum_2d(target)[high].sum()
    return np.array([spectral.power_spectrum_2d(np.asarray(o, dtype=np.float64))[high].sum() / ref
                     for o in outs])


# --------------------------------------------------------------------------------------------
# The two-run experiment
# --------------------------------------------------------------------------------------------


def _synthetic_area(image: str) -> float | None:
    """The area of a ``synthetic-A`` image name, or None if ``image`` is not one."""
    if not image.startswith(SYNTHETIC_PREFIX):
        return None
    text = image[len(SYNTHETIC_PREFIX) :]
    try:
        area = float(text)
    except ValueError:
        raise ConfigError(
            f"image {image!r}: after 'synthetic-' give the pattern's area fraction in [0, 1], "
            "e.g. synthetic-0.6"
        ) from None
    if not 0.0 <= area <= 1.0:
        raise ConfigError(f"image {image!r}: the area fraction must lie in [0, 1], got {area}")
    return area


def check_image(image: str) -> None:
    """Raise :class:`ConfigError` unless ``image`` is a test image, ``synthetic-A`` or a file."""
    if _synthetic_area(image) is None:
        D.check_image(image, also="synthetic-A (A in [0, 1], our own triangle)")


@dataclass(frozen=True)
class TrajectoriesConfig(Config):
    image: str = param("triangle-0.9", check=check_image)  # test image, synthetic-A (our triangle) or a path
    downsample: int = param(1, ge=1)  # block averaging (barbara: 2 or 4); the triangles must stay at 1 (see docs)
    crop: tuple[int, ...] = param((), ge=0)  # (top, left, side): keep this square of the image; () keeps it all
    width: int = param(128, ge=1)  # channels at every scale of the skip net (the paper's 128)
    depth: int = param(5, ge=1)  # scales of the skip net; the image side must be a multiple of 2**depth
    upsample: str = param("bilinear", **spectral.MODE_PARAM)  # upsampling of the skip net (the paper's bilinear)
    seed: int = param(0, ge=0)  # seeds run 1's weights and input; run 2 uses seed + 1
    iterations: int = 1000  # optimisation steps of each run (the paper's 1,000)
    lr: float = 1e-3  # Adam learning rate (the paper's 1e-3)
    record_every: int = 10  # iterations between records of eps and band errors (the paper's 10)
    snapshot_every: int = 10  # iterations between stored outputs (for Fig. 5 and the animation)
    n_bands: int = param(8, ge=1)  # equal-width radial frequency bands over [0, 0.5] cycles/pixel
    band_delta: float = param(0.05, gt=0, lt=1, note="a relative error")  # a band has converged at or below this
    smooth: int = param(30, ge=1)  # iterations spanned by the running median that smooths eps
    min_rise: float = param(0.5, ge=0)  # smallest rebound of eps (relative to its minimum) counted as a divergence
    back: float = param(0.5, gt=0, le=1)  # second convergence: eps has fallen back this fraction of the rebound

    def check(self):
        area = _synthetic_area(self.image)
        if self.image.startswith("triangle-") and self.downsample != 1:
            raise ConfigError(
                f"downsample={self.downsample} would erase the pattern of {self.image}: it sits at "
                "the Nyquist frequency of the 256-pixel image, so use downsample=1 (or synthetic-A, "
                "which is drawn at the smaller size with its pattern kept at Nyquist)"
            )
        if area is not None and SYNTHETIC_SIZE // self.downsample < 2**self.depth:
            raise ConfigError(
                f"synthetic image of {SYNTHETIC_SIZE // self.downsample} pixels is smaller than "
                f"2**depth = {2**self.depth}: lower downsample or depth"
            )
        if self.crop and (len(self.crop) != 3 or self.crop[2] < 2**self.depth):
            raise ConfigError(
                f"crop must be (top, left, side) with top, left >= 0 and side >= 2**depth = "
                f"{2**self.depth}, or () for the whole image; got {self.crop!r}"
            )
        size = self.image_size()
        if self.crop and size is not None and (
            self.crop[0] + self.crop[2] > size[0] or self.crop[1] + self.crop[2] > size[1]
        ):
            raise ConfigError(
                f"crop {self.crop} does not fit in {self.image} at downsample={self.downsample}, "
                f"which is {size[0]}x{size[1]}: need top + side <= {size[0]} and left + side <= {size[1]}"
            )
        self.fit_config()  # iterations, lr, record_every, snapshot_every are checked there

    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the image after downsampling, before cropping; None for a file."""
        if _synthetic_area(self.image) is not None:
            return SYNTHETIC_SIZE // self.downsample, SYNTHETIC_SIZE // self.downsample
        if self.image in D.image_names():
            info = D.image_info(self.image)
            return info.height // self.downsample, info.width // self.downsample
        return None

    def fit_config(self) -> FitConfig:
        return FitConfig.of(self, snapshot_budget_mb=1024.0, checkpoint_every=max(self.record_every, 100))

    @property
    def window(self) -> int:
        """The smoothing window in records."""
        return max(1, round(self.smooth / self.record_every))


def load_target(cfg: TrajectoriesConfig) -> np.ndarray:
    """The clean image to fit, ``(C, H, W)`` float32 in [0, 1].

    ``synthetic-A`` is drawn directly at ``256 // downsample`` pixels, so its checkerboard stays
    at the Nyquist frequency however small it is; the triangle files are read at full size.
    """
    area = _synthetic_area(cfg.image)
    if area is not None:
        img = D.synthetic_triangle(SYNTHETIC_SIZE // cfg.downsample, area)
    else:
        img = D.load_image(cfg.image, downsample_factor=cfg.downsample)
    if cfg.crop:
        top, left, side = cfg.crop
        h, w = img.shape[-2:]
        if top + side > h or left + side > w:
            raise ConfigError(
                f"crop {cfg.crop} does not fit in the {h}x{w} image {cfg.image} "
                f"(downsample={cfg.downsample}): need top + side <= {h} and left + side <= {w}"
            )
        img = img[:, top : top + side, left : left + side]
    return np.ascontiguousarray(D.crop_to_multiple(img, 2**cfg.depth), dtype=np.float32)


def band_edges(n_bands: int) -> np.ndarray:
    """Edges of the radial bands of :func:`dipnb.spectral.band_masks`, cycles per pixel."""
    return np.linspace(0.0, 0.5, n_bands + 1)


def _nearest(values: np.ndarray, it: int | None) -> int | None:
    if it is None or values.size == 0:
        return None
    return int(np.argmin(np.abs(values - it)))


def _summary(data: dict, cfg: TrajectoriesConfig) -> dict:
    return {
        "image": cfg.image,
        "size": list(data["target"].shape[-2:]),
        "seeds": [cfg.seed, cfg.seed + 1],
        "eps": [float(v) for v in data["eps"]],
        "eps_iterations": [int(v) for v in data["iterations"]],
        "first_convergence": data["first_convergence"],
        "divergence_peak": data["divergence_peak"],
        "second_convergence": data["second_convergence"],
        "divergence": data["divergence"],
        "band_edges": [float(v) for v in data["band_edges"]],
        "band_convergence_iterations": data["band_convergence_iterations"],
        "final_psnr": [float(v) for v in data["psnr"][:, -1]],
    }


@experiment(
    "trajectories",
    config=TrajectoriesConfig,
    profiles={
        # quick: the full-size triangle (its pattern needs all 256 pixels) with a narrow net; eps
        # dips near iteration 140, peaks near 250 and has fallen half-way back by about 400
        "quick": {"width": 16, "iterations": 500, "record_every": 5, "snapshot_every": 10},
        "paper": {"width": 128, "iterations": 1000, "record_every": 10, "snapshot_every": 10},
        "colab": "paper",
    },
    summary=_summary,
    version=2,  # 2: the first convergence is no longer sought in the first half-window of eps
)
def trajectories(cfg: TrajectoriesConfig, ctx: Context) -> dict:
    """Fit the DIP twice to one clean image and record eps, band errors and snapshots."""
    target = load_target(cfg)
    c, h, w = target.shape
    seeds = (cfg.seed, cfg.seed + 1)
    nets = [
        M.build_skip(seed=s, in_channels=c, out_channels=c, width=cfg.width, depth=cfg.depth,
                     upsample_mode=cfg.upsample)
        for s in seeds
    ]
    zs = [D.input_noise((1, c, h, w), seed=s) for s in seeds]  # each (1, C, H, W)

    def bands(out):  # relative spectral error per radial band of one run's output
        return spectral.band_errors(out, target, cfg.n_bands)

    rec = fit(
        nets, zs, target, cfg.fit_config(), reference=target, metrics={"bands": bands},
        **ctx.fit_kwargs(f"two runs on {cfg.image}"),
    )
    conv = find_convergences(
        rec.iterations, rec.eps, window=cfg.window, min_rise=cfg.min_rise, back=cfg.back
    )
    band_err = rec.metrics["bands"]  # (2, T, B)
    mean_band = band_err.mean(axis=0)  # (T, B)
    band_conv = [
        spectral.convergence_iteration(rec.iterations, mean_band[:, b], cfg.band_delta, hold=2)
        for b in range(cfg.n_bands)
    ]
    snap_it = rec.snapshot_iterations
    keys = {"initial": 0, "first": conv["first"], "second": conv["second"]}
    key_idx = {k: _nearest(snap_it, v) for k, v in keys.items()}
    key_outputs = {
        k: (None if i is None else rec.snapshots[:, i].astype(np.float32))  # (2, C, H, W)
        for k, i in key_idx.items()
    } if rec.snapshots is not None else {k: None for k in keys}
    return {
        "target": target,
        "seeds": seeds,
        "iterations": rec.iterations,
        "eps": rec.eps,
        "eps_smooth": conv["smoothed"],
        "loss": rec.loss,
        "psnr": rec.psnr,
        "first_convergence": conv["first"],
        "divergence_peak": conv["peak"],
        "second_convergence": conv["second"],
        "divergence": conv["rebound"],
        "band_edges": band_edges(cfg.n_bands),
        "band_errors": band_err,
        "band_convergence_iterations": band_conv,
        "snapshot_iterations": snap_it,
        # run 1's outputs in half precision (enough for pictures and spectra, half the disk)
        "snapshots": None if rec.snapshots is None else rec.snapshots[0].astype(np.float16),
        "key_iterations": {k: (None if i is None else int(snap_it[i])) for k, i in key_idx.items()},
        "key_outputs": key_outputs,
        "final": rec.final,
        "fit_seconds": rec.seconds,
    }


# --------------------------------------------------------------------------------------------
# The controlled pattern: a sweep over the area it covers (Fig. 1 f-h)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaConfig(Config):
    source: str = param("files", one_of=SOURCES)  # files (the paper's triangle-A.png) or synthetic (our own)
    areas: tuple[float, ...] = param(TRIANGLE_AREAS, ge=0, le=1, min_len=3, distinct=True)  # pattern size A
    downsample: int = param(1, ge=1)  # synthetic only: draw the triangle at 256 // downsample pixels
    width: int = 128  # channels at every scale (the paper's 128)
    depth: int = 5  # scales of the skip net
    upsample: str = "bilinear"  # upsampling of the skip net
    seed: int = 0  # run 1's seed at every area; run 2 uses seed + 1
    iterations: int = 1000  # steps of each run
    lr: float = 1e-3  # Adam learning rate
    record_every: int = 10  # iterations between eps records
    snapshot_every: int = 0  # iterations between stored outputs of each sub-run (0: none, the sweep needs eps only)
    smooth: int = 30  # iterations spanned by the running median that smooths eps

    def check(self):
        for a in self.areas:
            if self.source == "files" and not any(abs(a - b) < 1e-9 for b in TRIANGLE_AREAS):
                raise ConfigError(
                    f"area {a} has no triangle file: with source=files use areas among "
                    f"{', '.join(map(str, TRIANGLE_AREAS))} (or source=synthetic for any area in [0, 1])"
                )
        if self.source == "files" and self.downsample != 1:
            raise ConfigError(
                "the triangle files must be used at full size (their pattern sits at the Nyquist "
                f"frequency): downsample must be 1 with source=files, got {self.downsample}"
            )
        for a in self.areas[:1]:  # every sub-run's config is valid if one is (they differ in image only)
            TrajectoriesConfig(**self.sub_config(a))

    def subruns(self) -> list[tuple[str, dict]]:
        """The ``trajectories`` run of every area, in order."""
        return [("trajectories", self.sub_config(a)) for a in self.areas]

    def image(self, area: float) -> str:
        """The image name of one area."""
        return f"triangle-{area:.1f}" if self.source == "files" else f"{SYNTHETIC_PREFIX}{area:g}"

    def sub_config(self, area: float) -> dict:
        """The ``trajectories`` parameters of the sub-run at ``area`` (every field set explicitly)."""
        return {
            "image": self.image(area),
            "downsample": self.downsample,
            "width": self.width,
            "depth": self.depth,
            "upsample": self.upsample,
            "seed": self.seed,
            "iterations": self.iterations,
            "lr": self.lr,
            "record_every": self.record_every,
            "snapshot_every": self.snapshot_every,
            "smooth": self.smooth,
        }


def _area_summary(data: dict, cfg: AreaConfig) -> dict:
    return {
        "source": cfg.source,
        "areas": [float(a) for a in data["areas"]],
        "divergence_by_area": {f"{a:g}": float(d) for a, d in zip(data["areas"], data["divergence"], strict=True)},
        "spearman": data["spearman"],
        "first_convergence": data["first_convergence"],
        "divergence_peak": data["divergence_peak"],
        "eps_iterations": [int(v) for v in data["iterations"]],
    }


@experiment(
    "trajectories-area",
    config=AreaConfig,
    profiles={
        # quick: our synthetic triangle drawn at 64x64 (pattern still at Nyquist), 5 of the 9
        # areas, a narrow net and 400 steps: about 6 s a sub-run on a CPU core, where the files
        # at 256x256 would take about 35 s each
        "quick": {"source": "synthetic", "downsample": 4, "areas": (0.2, 0.4, 0.6, 0.8, 1.0),
                  "width": 16, "iterations": 400, "record_every": 5},
        "paper": {"source": "files", "areas": TRIANGLE_AREAS, "width": 128, "iterations": 1000,
                  "record_every": 10},
        # colab: the files at full size with 128 channels, 5 of the 9 areas and 500 steps per run
        "colab": {"source": "files", "areas": (0.2, 0.4, 0.6, 0.8, 1.0), "width": 128, "iterations": 500,
                  "record_every": 5},
    },
    summary=_area_summary,
    version=2,  # 2: its sub-runs' divergence is measured after the first half-window of eps
)
def trajectories_area(cfg: AreaConfig, ctx: Context) -> dict:
    """Two runs on the triangle with a high-frequency pattern over each area: divergence vs area."""
    eps, smooth, div, first, peak, targets = [], [], [], [], [], []
    iterations = None
    for res in ctx.run_many(cfg.subruns()):
        d = res.data
        iterations = d["iterations"]
        eps.append(d["eps"])
        smooth.append(d["eps_smooth"])
        targets.append(d["target"])
        div.append(d["divergence"])
        first.append(d["first_convergence"])
        peak.append(d["divergence_peak"])
    return {
        "source": cfg.source,
        "areas": np.asarray(cfg.areas),
        "images": [cfg.image(a) for a in cfg.areas],
        "iterations": iterations,
        "eps": np.stack(eps),  # (n_areas, T)
        "eps_smooth": np.stack(smooth),  # (n_areas, T) running medians
        "targets": np.stack(targets),  # (n_areas, C, H, W)
        "divergence": np.asarray(div),
        "first_convergence": first,
        "divergence_peak": peak,
        "spearman": spearman(cfg.areas, div),
    }
