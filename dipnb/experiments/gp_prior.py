r"""The prior at initialisation: outputs of many randomly initialised nets (Cheng et al. 2019).

Three experiments:

- ``gp-prior-samples``: draw ``samples`` skip nets (:func:`dipnb.models.build_skip`, one seed
  each), feed them all the same input ``z``, and measure their outputs: the covariance as a
  function of the pixel offset (over the whole interior and over separate blocks of it, to test
  stationarity), the variance at every pixel, and the mean power spectrum.
- ``gp-prior-kernel``: the same measurement for a small 1D conv-ReLU decoder
  (:class:`dipnb.kernels.ConvReLUDecoder1d`), next to the kernel that the infinite-width
  recursion predicts (:func:`dipnb.kernels.decoder_kernel`).
- ``gp-prior``: the chapter: one ``gp-prior-samples`` run, the correlation length over a grid of
  depths and upsampling modes (each grid point a cached ``gp-prior-samples`` run), and
  ``gp-prior-kernel``.

Every output channel of a net counts as one sample (the three channels of one net are
uncorrelated, though not independent, at finite width). Before measuring, each sample's own
mean over its pixels is subtracted: a brightness offset shared by the whole image says nothing
about smoothness. The nets run in training mode, as the DIP does at its first iteration, with a
batch of one: each batch norm then normalises a channel over the pixels of that one output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import data as D
from .. import kernels as Kn
from .. import models as M
from .. import spectral
from ..errors import ConfigError
from ..params import Config, param
from .engine import Context, experiment

__all__ = [
    "SamplesConfig",
    "GPKernelConfig",
    "GPPriorConfig",
    "sample_skip_outputs",
    "image_statistics",
    "TOLERANCES",
]

# The claims the chapter asserts, with their tolerances (quick profile; the paper profile,
# with more samples, lands well inside them).
TOLERANCES = {
    "stationarity": 0.15,  # covariance per block vs whole interior, max abs difference / variance
    "isotropy": 0.05,  # horizontal vs vertical normalised covariance, max abs difference
    "high_low_energy_ratio": 0.25,  # energy above 3/8 cycles/pixel over energy below 1/8
    "kernel": 0.05,  # analytic vs measured normalised 1D kernel, max abs difference over offsets
}
N_BANDS = 4  # radial bands of the spectrum: the ratio compares the top band with the bottom one


def _check_size(size: int, depth: int, max_offset: int, blocks: int) -> None:
    if size % 2**depth:
        raise ConfigError(
            f"size {size} cannot be halved depth={depth} times: it must be a multiple of {2**depth} "
            f"(e.g. {max(2**depth, size - size % 2**depth)}); change size or lower depth"
        )
    if size - 2 * max_offset < 8 * blocks:
        raise ConfigError(
            f"size {size} is too small for max_offset={max_offset} and blocks={blocks}: the interior "
            f"(size - 2 * max_offset) must be at least {8 * blocks} pixels; raise size or lower max_offset"
        )


# --------------------------------------------------------------------------------------------
# 2D: samples of the skip net
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplesConfig(Config):
    size: int = param(128, ge=8)  # side of the square output (pixels); a multiple of 2**depth
    depth: int = param(5, ge=1, le=8)  # scales of the skip net (the paper's 5)
    width: int = param(128, ge=1)  # channels at every scale (the paper's 128)
    upsample_mode: str = param("bilinear", **spectral.MODE_PARAM)  # nearest | bilinear (the paper's: bilinear)
    skip_channels: int = param(4, ge=0)  # channels of each skip branch (the paper's 4; 0 removes the skips)
    in_channels: int = param(3, ge=1)  # channels of the fixed input z (the paper's code: shaped like the image)
    samples: int = param(256, ge=2)  # networks drawn, one seed each; their 3 output channels are 3 samples each
    seed: int = param(0, ge=0)  # nets use seeds seed, seed + 1, ...; the input z uses seed + 10_000
    max_offset: int = param(16, ge=1)  # largest offset (pixels) of the measured covariance; also the border margin
    blocks: int = param(2, ge=1)  # the interior is cut into blocks x blocks regions to test stationarity
    keep: int = param(4, ge=0)  # outputs kept for display

    def check(self):
        _check_size(self.size, self.depth, self.max_offset, self.blocks)


@torch.no_grad()
def sample_skip_outputs(cfg: SamplesConfig, start: int, count: int, device=None) -> np.ndarray:
    """Outputs of the nets ``start .. start + count - 1`` of ``cfg`` on its fixed input.

    Returns:
        ``(count, 3, size, size)`` float32 in [0, 1] (the nets end in a sigmoid).
    """
    dev = torch.device(device or "cpu")
    z = D.input_noise((1, cfg.in_channels, cfg.size, cfg.size), seed=cfg.seed).to(dev)
    out = []
    for i in range(start, start + count):
        net = M.build_skip(
            seed=cfg.seed + i, in_channels=cfg.in_channels, out_channels=3, width=cfg.width,
            depth=cfg.depth, upsample_mode=cfg.upsample_mode, skip_channels=cfg.skip_channels,
        ).to(dev)
        net.train()  # as in the DIP's first iteration: batch norm uses this output's statistics
        out.append(net(z)[0].float().cpu().numpy())  # (3, H, W)
    return np.stack(out)


class _Moments:
    """Running sums of the second-order statistics of centred ``(N, H, W)`` samples."""

    def __init__(self, size: int, max_offset: int, blocks: int):
        D = max_offset
        self.D, self.n = D, 0
        self.interior = np.zeros((size, size), bool)
        self.interior[D : size - D, D : size - D] = True
        edges = np.linspace(D, size - D, blocks + 1).round().astype(int)
        self.block_masks = []
        for a in range(blocks):
            for b in range(blocks):
                m = np.zeros((size, size), bool)
                m[edges[a] : edges[a + 1], edges[b] : edges[b + 1]] = True
                self.block_masks.append(m)
        self.cov = np.zeros((2 * D + 1, 2 * D + 1))
        self.cov_blocks = np.zeros((len(self.block_masks), 2 * D + 1, 2 * D + 1))
        self.var = np.zeros((size, size))
        self.power = np.zeros((size, size))

    def add(self, x: np.ndarray) -> None:
        b = len(x)
        self.cov += Kn.offset_covariance(x, self.interior, self.D) * b
        for i, m in enumerate(self.block_masks):
            self.cov_blocks[i] += Kn.offset_covariance(x, m, self.D) * b
        self.var += (x**2).sum(axis=0)
        self.power += (np.abs(np.fft.fft2(x)) ** 2).sum(axis=0) / x[0].size
        self.n += b


def image_statistics(m: _Moments) -> dict:
    """Normalised covariance, profiles, stationarity, isotropy and spectrum from the sums."""
    D, n = m.D, m.n
    cov, blocks = m.cov / n, m.cov_blocks / n
    c0 = cov[D, D]
    rho = cov / c0  # (2D + 1, 2D + 1), 1 at zero offset
    d = np.arange(D + 1)
    right, left = rho[D, D:], rho[D, D::-1]
    down, up = rho[D:, D], rho[D::-1, D]
    prof_x, prof_y = (right + left) / 2, (down + up) / 2
    prof = (prof_x + prof_y) / 2
    diag = (rho[D + d, D + d] + rho[D - d, D - d] + rho[D + d, D - d] + rho[D - d, D + d]) / 4
    r = d * np.sqrt(2)
    inside = r <= D
    diag_dev = float(np.abs(diag[inside] - np.interp(r[inside], d, prof)).max())
    block_prof = np.stack([
        (b[D, D:] + b[D, D::-1] + b[D:, D] + b[D::-1, D]) / 4 / c0 for b in blocks
    ])  # (n_blocks, D + 1)

    power = np.fft.fftshift(m.power / n)  # (H, W), DC at the centre
    masks = spectral.band_masks(power.shape, N_BANDS)
    energy = np.array([power[k].sum() for k in masks])
    counts = masks.sum(axis=(1, 2))
    bins = spectral.band_masks(power.shape, 32)
    radial = np.array([power[k].mean() for k in bins])
    return {
        "offsets": d,
        "covariance_map": rho,
        "variance": float(c0),
        "variance_map": m.var / n,
        "profile": prof,
        "profile_x": prof_x,
        "profile_y": prof_y,
        "profile_diagonal": diag,
        "block_profiles": block_prof,
        "correlation_length": Kn.correlation_length(prof),
        "stationarity_max_deviation": float(np.abs(blocks - cov).max() / c0),
        "isotropy_max_deviation": float(np.abs(prof_x - prof_y).max()),
        "diagonal_max_deviation": diag_dev,
        "power_2d": power,
        "radial_frequencies": (np.arange(32) + 0.5) * 0.5 / 32,
        "radial_power": radial,
        "band_energy": energy,
        "high_low_energy_ratio": float(energy[-1] / energy[0]),
        "white_high_low_energy_ratio": float(counts[-1] / counts[0]),
    }


def _samples_summary(data: dict, cfg: SamplesConfig) -> dict:
    keys = ("correlation_length", "stationarity_max_deviation", "isotropy_max_deviation",
            "diagonal_max_deviation", "high_low_energy_ratio", "white_high_low_energy_ratio", "n_samples")
    return {"depth": cfg.depth, "upsample_mode": cfg.upsample_mode, **{k: data[k] for k in keys}}


@experiment(
    "gp-prior-samples",
    config=SamplesConfig,
    profiles={
        "quick": {"size": 128, "width": 32, "samples": 48},
        "paper": {"size": 256, "width": 128, "samples": 256, "max_offset": 24},
        "colab": {"size": 256, "width": 128, "samples": 256, "max_offset": 24},
    },
    summary=_samples_summary,
)
def gp_prior_samples(cfg: SamplesConfig, ctx: Context) -> dict:
    """Outputs of many randomly initialised skip nets on one input: covariance and spectrum."""
    moments = _Moments(cfg.size, cfg.max_offset, cfg.blocks)
    kept, chunk = [], 16
    for start in range(0, cfg.samples, chunk):
        y = sample_skip_outputs(cfg, start, min(chunk, cfg.samples - start), ctx.device)  # (B, 3, H, W)
        if len(kept) < cfg.keep:
            kept.extend(y[: cfg.keep - len(kept)])
        x = y.reshape(-1, cfg.size, cfg.size).astype(np.float64)  # every channel is a sample
        moments.add(x - x.mean(axis=(1, 2), keepdims=True))
    stats = image_statistics(moments)
    return {
        **stats,
        "examples": np.stack(kept) if kept else np.zeros((0, 3, cfg.size, cfg.size), np.float32),
        "n_samples": moments.n,
        "block_masks": np.stack(moments.block_masks),
    }


# --------------------------------------------------------------------------------------------
# 1D: analytic kernel against samples
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPKernelConfig(Config):
    length: int = 128  # length of the output signal (samples)
    stages: int = 3  # x2 upsamplings of the 1D decoder (its input has length / 2**stages)
    upsample_mode: str = "bilinear"  # nearest | bilinear (linear interpolation) | none (stride-1 convs only)
    width: int = 256  # channels of every hidden layer (the theory's infinite limit)
    in_channels: int = 32  # channels of the input noise z
    kernel_size: int = 3  # taps of every convolution
    samples: int = param(10000, ge=2)  # decoders drawn
    seed: int = param(0, ge=0)  # seeds the decoders' weights; the input z uses seed + 10_000
    margin: int = param(16, ge=0)  # positions this close to a border are left out of the profiles (zero padding)
    max_offset: int = param(32, ge=1)  # largest offset of the profiles (samples)
    bias_std: float = 0.0  # sigma_b of the biases (0: no bias)

    def check(self):
        self.decoder()  # validates length, stages, mode, width, in_channels, kernel_size, bias_std
        if self.length - 2 * self.margin - self.max_offset < 8:
            raise ConfigError(
                f"length {self.length} leaves fewer than 8 positions for margin={self.margin} and "
                f"max_offset={self.max_offset}: need length >= 2 * margin + max_offset + 8"
            )

    def decoder(self) -> Kn.Decoder1dConfig:
        return Kn.Decoder1dConfig(
            length=self.length, in_channels=self.in_channels, width=self.width, stages=self.stages,
            kernel_size=self.kernel_size, upsample_mode=self.upsample_mode, bias_std=self.bias_std,
        )


def theory_lengths(modes=("nearest", "bilinear"), stages=(1, 2, 3, 4, 5), length: int = 256) -> dict:
    """Correlation length (samples) of the ideal infinite-width kernel, per mode and stage count.

    The kernel is centred (each sample's mean removed, as for the 2D samples) and profiled away
    from the borders (margin ``length // 8``).
    """
    out = {}
    for mode in modes:
        out[mode] = []
        for s in stages:
            K = Kn.decoder_kernel(Kn.Decoder1dConfig(length=length, stages=s, upsample_mode=mode))
            rho = Kn.kernel_profile(Kn.centre_kernel(K), length // 8, length // 4)
            out[mode].append(Kn.correlation_length(rho))
    return out


def _kernel_summary(data: dict, cfg: GPKernelConfig) -> dict:
    keys = ("kernel_max_abs_error", "kernel_max_abs_error_centred", "kernel_ideal_max_abs_error",
            "theory_ideal_max_abs_difference", "correlation_length_theory", "correlation_length_empirical")
    return {"stages": cfg.stages, "upsample_mode": cfg.upsample_mode, "width": cfg.width,
            "samples": cfg.samples, **{k: data[k] for k in keys}}


@experiment(
    "gp-prior-kernel",
    config=GPKernelConfig,
    profiles={"quick": {"width": 64, "samples": 2000}, "paper": {"width": 256, "samples": 10000},
              "colab": {"width": 256, "samples": 10000}},
    summary=_kernel_summary,
    version=2,  # 2: the theory's lengths keyed "bilinear" (was "linear"), one mode name in 1D and 2D
)
def gp_prior_kernel(cfg: GPKernelConfig, ctx: Context) -> dict:
    """A small 1D conv-ReLU decoder: the infinite-width kernel against the measured covariance."""
    dec = cfg.decoder()
    z = D.input_noise((1, dec.in_channels, dec.input_length), seed=cfg.seed)
    y = Kn.sample_decoder1d(dec, z, cfg.samples, seed=cfg.seed, device=ctx.device)  # (N, L)
    K_theory = Kn.decoder_kernel(dec, Kn.input_gram(z))  # given this z
    K_ideal = Kn.decoder_kernel(dec)  # z ideal white noise
    prof = lambda K: Kn.kernel_profile(K, cfg.margin, cfg.max_offset)  # noqa: E731
    emp, emp_c = prof(Kn.second_moment(y)), prof(Kn.second_moment(y, centre=True))
    th, th_c = prof(K_theory), prof(Kn.centre_kernel(K_theory))
    ideal, ideal_c = prof(K_ideal), prof(Kn.centre_kernel(K_ideal))
    return {
        "offsets": np.arange(cfg.max_offset + 1),
        "rho_empirical": emp,
        "rho_theory": th,
        "rho_ideal": ideal,
        "rho_empirical_centred": emp_c,
        "rho_theory_centred": th_c,
        "rho_ideal_centred": ideal_c,
        "kernel_theory": K_theory,
        "kernel_empirical": Kn.second_moment(y),
        "examples": y[:4],
        "kernel_max_abs_error": float(np.abs(emp - th).max()),
        "kernel_max_abs_error_centred": float(np.abs(emp_c - th_c).max()),
        "kernel_ideal_max_abs_error": float(np.abs(emp - ideal).max()),
        "theory_ideal_max_abs_difference": float(np.abs(th - ideal).max()),
        "correlation_length_theory": Kn.correlation_length(th_c),
        "correlation_length_empirical": Kn.correlation_length(emp_c),
        "plateau_theory": float(th[-1]),
        "theory_lengths": theory_lengths(),
    }


# --------------------------------------------------------------------------------------------
# The chapter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPPriorConfig(Config):
    size: int = 128  # side of the skip net's square output (pixels)
    depth: int = 5  # scales of the skip net whose samples are shown (the paper's 5)
    width: int = 128  # channels per scale of the skip net (the paper's 128)
    samples: int = 256  # skip nets drawn per configuration (each gives 3 output channels)
    seed: int = 0  # first net's seed; the fixed input z uses seed + 10_000
    upsample_mode: str = "bilinear"  # nearest | bilinear, for the samples shown
    depths: tuple[int, ...] = param((2, 3, 4, 5), ge=1, le=8, min_len=1)  # depths of the smoothness sweep
    modes: tuple[str, ...] = param(("nearest", "bilinear"), **spectral.MODE_PARAM, min_len=1, distinct=True)  # swept
    kernel_width: int = 256  # channels of the 1D decoder compared with the theory
    kernel_samples: int = 10000  # 1D decoders drawn
    kernel_stages: int = 3  # x2 upsamplings of the 1D decoder
    kernel_mode: str = "bilinear"  # nearest | bilinear | none: upsampling of the 1D decoder

    def check(self):
        # The sub-configs check the rest, before anything runs.
        self.samples_config(self.depth, self.upsample_mode)
        self.samples_config(max(self.depths), self.modes[0])
        self.kernel_config()

    def subruns(self) -> list[tuple[str, dict]]:
        """The smoothness sweep (mode by mode, depth by depth), the samples shown, then the 1D kernel."""

        def samples(depth: int, mode: str) -> tuple[str, dict]:
            c = self.samples_config(depth, mode)
            return "gp-prior-samples", {"size": c.size, "depth": depth, "width": c.width, "upsample_mode": mode,
                                        "samples": c.samples, "seed": c.seed}

        k = self.kernel_config()
        kernel = ("gp-prior-kernel", {"width": k.width, "samples": k.samples, "seed": k.seed, "stages": k.stages,
                                      "upsample_mode": k.upsample_mode})
        return [*(samples(d, m) for m in self.modes for d in self.depths),
                samples(self.depth, self.upsample_mode), kernel]

    def samples_config(self, depth: int, mode: str) -> SamplesConfig:
        return SamplesConfig(size=self.size, depth=depth, width=self.width, upsample_mode=mode,
                             samples=self.samples, seed=self.seed)

    def kernel_config(self) -> GPKernelConfig:
        return GPKernelConfig(width=self.kernel_width, samples=self.kernel_samples, seed=self.seed,
                            stages=self.kernel_stages, upsample_mode=self.kernel_mode)


SWEEP_KEYS = ("correlation_length", "profile", "covariance_map", "high_low_energy_ratio",
              "stationarity_max_deviation", "radial_power", "radial_frequencies", "offsets")


def _summary(data: dict, cfg: GPPriorConfig) -> dict:
    s, k = data["samples"], data["kernel"]
    return {
        "depth": cfg.depth,
        "upsample_mode": cfg.upsample_mode,
        "n_samples": s["n_samples"],
        "stationarity_max_deviation": s["stationarity_max_deviation"],
        "isotropy_max_deviation": s["isotropy_max_deviation"],
        "diagonal_max_deviation": s["diagonal_max_deviation"],
        "high_low_energy_ratio": s["high_low_energy_ratio"],
        "white_high_low_energy_ratio": s["white_high_low_energy_ratio"],
        "correlation_length": s["correlation_length"],
        "kernel_max_abs_error": k["kernel_max_abs_error"],
        "kernel_max_abs_error_centred": k["kernel_max_abs_error_centred"],
        "kernel_ideal_max_abs_error": k["kernel_ideal_max_abs_error"],
        "correlation_length_by_depth": {
            mode: {str(d): v["correlation_length"] for d, v in per.items()} for mode, per in data["sweep"].items()
        },
        "tolerances": dict(TOLERANCES),
    }


@experiment(
    "gp-prior",
    config=GPPriorConfig,
    profiles={
        "quick": {"size": 128, "width": 32, "samples": 48, "kernel_width": 64, "kernel_samples": 2000},
        "paper": {"size": 256, "width": 128, "samples": 256, "kernel_width": 256, "kernel_samples": 10000},
        "colab": {"size": 256, "width": 128, "samples": 256, "kernel_width": 256, "kernel_samples": 10000},
    },
    summary=_summary,
)
def gp_prior(cfg: GPPriorConfig, ctx: Context) -> dict:
    """The DIP at initialisation: samples, spectrum, covariance, 1D kernel theory, smoothness sweep."""

    def brief(d: dict) -> dict:  # what the sweep keeps of one grid point
        return {**{k: d[k] for k in SWEEP_KEYS}, "examples": d["examples"][:2]}

    grid = [(mode, d) for mode in cfg.modes for d in cfg.depths]
    *swept, main, kern = ctx.run_many(cfg.subruns())
    sweep: dict[str, dict] = {mode: {} for mode in cfg.modes}
    for (mode, d), res in zip(grid, swept, strict=True):
        sweep[mode][d] = brief(res.data)
    return {"samples": main.data, "sweep": sweep, "kernel": kern.data}
