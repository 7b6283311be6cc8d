r"""Upsampling as zero insertion plus a fixed kernel, and what its stride does to a generator
(paper Sec. 3.2, Appendix E, Fig. 4).

Nearest and (bi)linear upsampling by a stride ``L`` both equal "insert ``L - 1`` zeros between
samples, then convolve with a fixed kernel ``h``" (:func:`dipnb.spectral.upsampling_kernel`).
With ``k`` in cycles per *output* sample, the output spectrum is

.. math:: Y(k) = H(k)\, X(L k),

so ``|H|`` is the operator's frequency response. Its exact closed forms (our derivation, checked
against PyTorch's operator in :func:`response_data`) are, normalised to ``H(0) = 1``,

.. math::
   |H_\mathrm{nearest}(k)| = \left|\frac{\sin \pi L k}{L \sin \pi k}\right|, \qquad
   |H_\mathrm{bilinear}(k)| = \left(\frac{\sin \pi L k}{L \sin \pi k}\right)^2
   \times \begin{cases} 1 & L \text{ odd} \\ |\cos \pi k| & L \text{ even}, \end{cases}

where the ``|cos pi k|`` appears because with ``align_corners=False`` PyTorch samples the
triangle ``1 - |t|/L`` half a sample off the integers when ``L`` is even
(:func:`dipnb.spectral.analytic_response`).

The experiment ``upsampling`` measures those responses and fits a small decoder whose only change
of resolution is one upsampling by the stride (:func:`dipnb.models.build_decoder`) to a
grayscale image, recording the relative error of the output's spectrum in radial bands at every
recorded iteration (:func:`dipnb.spectral.band_errors`, the paper's Fig. 4 a-b) and the energy of
the output above a cutoff frequency. A run with ``stride != base_stride`` is the comparison of
the two strides; each stride is fitted as its own cached sub-run (``stride == base_stride``), so
a slider over strides recomputes nothing twice.

A stride changes two things: the kernel (its pass band narrows as ``1 / L``) and the bottleneck
(the input is ``(H / L) x (W / L)``). The experiment ``upsampling-control`` separates them over
several seeds: the small stride with its own kernel, the small stride with the large stride's
kernel (``kernel_stride``: same bottleneck, same learned layers, only the fixed kernel differs),
and the large stride itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from .. import models as M
from .. import spectral
from ..errors import ConfigError
from ..fit import FitConfig, fit
from ..params import Config, param
from .engine import Context, experiment

__all__ = [
    "UpsamplingConfig",
    "response_data",
    "high_frequency_energy",
    "fitted_frequency",
    "image_leakage",
    "image_size",
    "UpsamplingControlConfig",
    "CONTROL_VARIANTS",
]

# the operator (zero insertion + kernel) and its responses live in dipnb.spectral
RESPONSE_TOLERANCE = 1e-9  # analytic vs measured responses must agree to this (max abs error)


# --------------------------------------------------------------------------------------------
# The operator: zero insertion + kernel, and its exact response
# --------------------------------------------------------------------------------------------


def response_data(mode: str, stride: int, n_out: int = 4096) -> dict:
    """Every version of the response of one upsampler on PyTorch's frequency grid, and their errors.

    Returns:
        A dict with ``k`` (cycles per output sample, 0 .. 0.5), ``measured`` (PyTorch's operator,
        :func:`dipnb.spectral.measured_response`), ``analytic`` (:func:`dipnb.spectral.analytic_response`),
        ``discrete`` (the DTFT of the taps), ``continuous`` (the paper's formulas, normalised to
        DC gain 1), ``paper`` (the paper's formulas exactly as printed); the max abs errors
        ``max_abs_error`` (analytic vs measured), ``discrete_error``, ``continuous_error`` (over
        all k) and ``continuous_error_low`` (over k <= 1 / (2L), the band the low-resolution
        input can hold); ``decomposition_error`` (zero insertion + kernel vs PyTorch on a random
        signal) and ``separable_error`` (PyTorch's 2D operator vs the outer product of 1D kernels).
    """
    spectral.check_mode_stride(mode, stride)
    L = int(stride)
    k, measured = spectral.measured_response(mode, L, n_out)
    analytic = spectral.analytic_response(mode, L, k)
    discrete = spectral.discrete_response(mode, L, k)
    continuous = spectral.continuous_response(mode, L, k)
    low = k <= 1 / (2 * L)
    x = np.random.default_rng(L).standard_normal(24)
    y, _, h = spectral.upsample_by_zero_insertion(x, mode, L)
    return {
        "mode": mode,
        "stride": L,
        "k": k,
        "measured": measured,
        "analytic": analytic,
        "discrete": discrete,
        "continuous": continuous,
        "paper": spectral.paper_response(mode, L, k),
        "kernel": h,
        "max_abs_error": float(np.abs(analytic - measured).max()),
        "discrete_error": float(np.abs(discrete - measured).max()),
        "continuous_error": float(np.abs(continuous - measured).max()),
        "continuous_error_low": float(np.abs(continuous - measured)[low].max()),
        "decomposition_error": float(np.abs(y - spectral.torch_upsample_1d(x, mode, L)).max()),
        "separable_error": _separable_error(mode, L),
    }


def _separable_error(mode: str, L: int) -> float:
    """Max abs difference between PyTorch's 2D impulse response and the outer product of the 1D one."""
    n = 6
    imp = torch.zeros(1, 1, n, n, dtype=torch.float64)
    imp[..., n // 2, n // 2] = 1.0
    kw = {"mode": "nearest"} if mode == "nearest" else {"mode": "bilinear", "align_corners": False}
    two_d = F.interpolate(imp, scale_factor=L, **kw)[0, 0].numpy()  # (n L, n L)
    e = np.zeros(n)
    e[n // 2] = 1.0
    one_d = spectral.torch_upsample_1d(e, mode, L)  # (n L,)
    return float(np.abs(two_d - np.outer(one_d, one_d)).max())


def high_frequency_energy(img, cutoff: float) -> float:
    """Mean square of the part of an image above ``cutoff`` cycles per pixel (radially).

    By Parseval this is the sum of :func:`dipnb.spectral.power_spectrum_2d` over the bins with
    radial frequency >= ``cutoff``, divided by the number of pixels (channels averaged): the
    variance of the image's high-pass component, in squared intensity units.
    """
    p = spectral.power_spectrum_2d(img)
    r = spectral.radial_frequency(p.shape)
    return float(p[r >= cutoff].sum() / p.size)


def image_leakage(mode: str, stride: int, n: int = 4096) -> float:
    """Share of the kernel's energy ``|H|^2`` above ``1 / (2L)`` cycles per output sample.

    Zero insertion fills ``(1 / (2L), 0.5]`` with copies (images) of the input's spectrum; this is
    the fraction of the response that lets them through (0 for an ideal low-pass upsampler).
    """
    k = np.linspace(0, 0.5, n + 1)
    H2 = spectral.analytic_response(mode, stride, k) ** 2
    return float(H2[k > 1 / (2 * stride)].sum() / H2.sum())


def fitted_frequency(run: dict, threshold: float = 0.1) -> np.ndarray:
    """The radial frequency below which every band is fitted, at each recorded iteration.

    Args:
        run: one fitted stride of an ``upsampling`` result (``result["runs"][stride]``).
        threshold: a band counts as fitted when its relative spectral error is <= this.

    Returns:
        ``(T,)`` the upper edge (cycles/pixel) of the lowest run of fitted bands; 0 where even
        the lowest band is not fitted. It traces the top of the dark region of Fig. 4 a-b.
    """
    e = np.asarray(run["band_errors"])  # (T, n_bands)
    edges = np.asarray(run["band_edges"])
    ok = e <= threshold
    first_bad = np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))  # (T,)
    return edges[first_bad]


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def image_size(image: str, downsample: int) -> tuple[int, int]:
    """``(H, W)`` of ``image`` after block-averaging by ``downsample`` (read from the registry or
    the file's header, without decoding it)."""
    if image in D.image_names():
        info = D.image_info(image)
        h, w = info.height, info.width
    else:
        from PIL import Image

        with Image.open(image) as im:
            w, h = im.size
    return h // downsample, w // downsample


@dataclass(frozen=True)
class UpsamplingConfig(Config):
    mode: str = param("bilinear", **spectral.MODE_PARAM)  # nearest | bilinear: the decoder's and the responses'
    stride: int = param(32, ge=1)  # the upsampling factor studied (the paper's large stride, 32)
    base_stride: int = param(4, ge=1)  # the stride it is compared with (the paper's 4); = stride: one run only
    image: str = param("barbara", check=D.check_image)  # a test image name or a path; grayscale unless gray=False
    downsample: int = param(2, ge=1)  # block-average downsampling; both sides must be multiples of the strides
    gray: bool = True  # average the colour channels (one output channel)
    width: int = param(64, ge=1)  # channels of every conv of the decoder
    seed: int = param(0, ge=0)  # seeds the decoder's weights and its fixed input noise
    iterations: int = 500  # optimisation steps (the paper's Fig. 4 shows the first 500)
    lr: float = 1e-3  # Adam learning rate (the paper's 1e-3)
    record_every: int = 5  # iterations between records of the spectral error
    snapshot_every: int = 100  # iterations between stored outputs (0: only the last)
    n_bands: int = param(32, ge=2)  # radial frequency bands of the spectral error, over [0, 0.5] cycles/pixel
    hf_cutoff: float = param(0.25, gt=0, lt=0.5)  # "high frequency" = radial frequency >= this, in cycles/pixel
    kernel_stride: int = param(0, ge=0, note="0: the stride's own kernel")  # upsample with this stride's kernel

    def check(self):
        k = self.kernel_stride
        if k == self.stride:  # the stride's own kernel: one name (and one cache entry) for one run
            object.__setattr__(self, "kernel_stride", 0)
        if self.kernel_stride and self.stride != self.base_stride:
            raise ConfigError(
                f"kernel_stride={k} changes the kernel of a single run: set base_stride equal to "
                f"stride ({self.stride}), or use the experiment upsampling-control"
            )
        h, w = image_size(self.image, self.downsample)
        for name in ("stride", "base_stride"):
            s = getattr(self, name)
            if h % s or w % s:
                ok = [d for d in (1, 2, 4, 8, 16, 32, 64) if h % d == 0 and w % d == 0]
                raise ConfigError(
                    f"{name}={s} does not divide the image size: {self.image!r} downsampled by "
                    f"{self.downsample} is {h}x{w} pixels; use a {name} that divides both sides "
                    f"(e.g. {', '.join(map(str, ok))}) or another downsample"
                )
        if self.n_bands > min(h, w) // 2:
            raise ConfigError(f"n_bands={self.n_bands} is more than half the image side ({min(h, w)}): use fewer")
        self.fit_config()  # iterations, lr, record_every, snapshot_every

    def subruns(self) -> list[tuple[str, dict]]:
        """With two strides, each is its own ``upsampling`` run (smaller stride first); with one,
        none: the run fits itself."""
        if self.stride == self.base_stride:
            return []
        return [("upsampling", {**asdict(self), "stride": s, "base_stride": s})
                for s in sorted({self.base_stride, self.stride})]

    def fit_config(self) -> FitConfig:
        return FitConfig.of(self, checkpoint_every=max(self.record_every, 100))


def load_target(cfg: UpsamplingConfig) -> np.ndarray:
    """The image to fit, ``(C, H, W)`` float32 in [0, 1]."""
    return D.load_image(cfg.image, downsample_factor=cfg.downsample, gray=cfg.gray)


def build(cfg: UpsamplingConfig, shape: tuple[int, int, int]):
    """The decoder for ``cfg.stride`` and its fixed input, ``(1, 32, H / L, W / L)`` white noise.

    The input's size, the bottleneck, is set by the stride; ``cfg.kernel_stride`` changes only the
    fixed kernel of the upsampling (:class:`dipnb.models.FixedKernelUpsample`).
    """
    c, h, w = shape
    model = M.build_decoder(seed=cfg.seed, out_channels=c, width=cfg.width, stride=cfg.stride,
                            upsample_mode=cfg.mode, kernel_stride=cfg.kernel_stride)
    z = D.input_noise((1, model.cfg.in_channels, h // cfg.stride, w // cfg.stride), seed=cfg.seed)
    return model, z


def _fit_one(cfg: UpsamplingConfig, ctx: Context) -> dict:
    target = load_target(cfg)
    model, z = build(cfg, target.shape)
    rec = fit(
        model, z, target, cfg.fit_config(), reference=target,
        metrics={
            "band_errors": lambda o: spectral.band_errors(o, target, cfg.n_bands),
            "hf_energy": lambda o: high_frequency_energy(o, cfg.hf_cutoff),
        },
        **ctx.fit_kwargs(f"{cfg.mode} stride {cfg.stride}"
                         + (f", kernel of stride {cfg.kernel_stride}" if cfg.kernel_stride else "")),
    )
    return {
        "mode": cfg.mode,
        "stride": cfg.stride,
        "kernel_stride": cfg.kernel_stride or cfg.stride,
        "response": response_data(cfg.mode, cfg.stride),
        "iterations": rec.iterations,  # (T,)
        "band_errors": rec.metrics["band_errors"][0],  # (T, n_bands)
        "band_edges": np.linspace(0, 0.5, cfg.n_bands + 1),  # cycles/pixel
        "hf_energy": rec.metrics["hf_energy"][0],  # (T,)
        "loss": rec.loss[0],
        "psnr": rec.psnr[0],
        "final": rec.final[0],  # (C, H, W) at the last iteration
        "final_iteration": int(rec.iterations[-1]),
        "hf_energy_final": float(rec.metrics["hf_energy"][0][-1]),
        "snapshot_iterations": rec.snapshot_iterations,
        "snapshots": None if rec.snapshots is None else rec.snapshots[0],
        "parameters": M.count_parameters(model),
        "fit_seconds": rec.seconds,
    }


def _summary(data: dict, cfg: UpsamplingConfig) -> dict:
    runs = data["runs"]
    return {
        "mode": cfg.mode,
        "strides": sorted(runs),
        "iteration": data["iteration"],
        "max_abs_error": data["max_abs_error"],
        "tolerance": RESPONSE_TOLERANCE,
        "continuous_max_abs_error": {str(s): r["response"]["continuous_error"] for s, r in sorted(runs.items())},
        "high_frequency_energy": {str(s): r["hf_energy_final"] for s, r in sorted(runs.items())},
        "target_high_frequency_energy": data["target_hf_energy"],
        "final_psnr": {str(s): float(r["psnr"][-1]) for s, r in sorted(runs.items())},
    }


# The sizes of each profile, shared by ``upsampling`` and its control ``upsampling-control``.
# quick: 128x128 grayscale Barbara, a 32-channel decoder, 300 iterations (~5 s a stride)
# paper: strides 4 vs 32 over 500 iterations on a 256x256 image, 64 channels
SIZES = {
    "quick": {"image": "barbara", "downsample": 4, "width": 32, "iterations": 300},
    "paper": {"image": "barbara", "downsample": 2, "width": 64, "iterations": 500, "n_bands": 64},
    "colab": {"image": "barbara", "downsample": 2, "width": 64, "iterations": 500, "n_bands": 64},
}


@experiment("upsampling", config=UpsamplingConfig, profiles=SIZES, summary=_summary, version=2)
def upsampling(cfg: UpsamplingConfig, ctx: Context) -> dict:
    """Responses of an upsampler and a decoder fitted with a small and a large stride (Fig. 4)."""
    if not cfg.subruns():
        runs = {cfg.stride: _fit_one(cfg, ctx)}
    else:  # each stride is its own cached sub-run
        runs = {}
        for sub in ctx.run_many(cfg.subruns()):
            runs.update(sub.data["runs"])
    target = load_target(cfg)
    return {
        "runs": runs,  # stride -> one fit and the response of its upsampler
        "target": target,
        "target_hf_energy": high_frequency_energy(target, cfg.hf_cutoff),
        "iteration": int(runs[cfg.stride]["final_iteration"]),
        "max_abs_error": max(r["response"]["max_abs_error"] for r in runs.values()),
        "fit_seconds": sum(r["fit_seconds"] for r in runs.values()),
    }


# --------------------------------------------------------------------------------------------
# The control: the kernel alone, at a fixed stride and bottleneck
# --------------------------------------------------------------------------------------------

CONTROL_VARIANTS = ("own kernel", "wide kernel", "large stride")


@dataclass(frozen=True)
class UpsamplingControlConfig(Config):
    mode: str = param("bilinear", **spectral.MODE_PARAM)  # nearest | bilinear: the kernel's shape in every variant
    stride: int = param(4, ge=1)  # the small stride; its input (the bottleneck) is (H / stride, W / stride)
    kernel_stride: int = param(32, ge=1)  # the large stride: its kernel is tried at the small stride
    seeds: int = param(5, ge=1)  # seeds 0 .. seeds-1, each for the decoder's weights and its input noise
    image: str = "barbara"  # a test image name or a path; fitted in grayscale
    downsample: int = 2  # block-average downsampling; both sides must be multiples of kernel_stride
    width: int = 64  # channels of every conv of the decoder
    iterations: int = 500  # optimisation steps
    lr: float = 1e-3  # Adam learning rate
    record_every: int = 5  # iterations between records of the spectral error
    n_bands: int = 32  # radial frequency bands of the spectral error
    hf_cutoff: float = 0.25  # "high frequency" = radial frequency >= this, in cycles/pixel

    def check(self):
        if self.kernel_stride <= self.stride:
            raise ConfigError(
                f"kernel_stride ({self.kernel_stride}) must be larger than stride ({self.stride}): "
                "the control widens the kernel of the small stride"
            )
        for v in CONTROL_VARIANTS:  # every sub-run must be valid before anything runs
            UpsamplingConfig(**self.sub_config(v, 0))

    def subruns(self) -> list[tuple[str, dict]]:
        """The ``upsampling`` run of every variant (in :data:`CONTROL_VARIANTS` order) and seed."""
        return [("upsampling", self.sub_config(v, s)) for v in CONTROL_VARIANTS for s in range(self.seeds)]

    def sub_config(self, variant: str, seed: int) -> dict:
        """The ``upsampling`` parameters of one variant and seed (a single run each).

        ``own kernel``: the small stride as it is; ``wide kernel``: the small stride with the large
        stride's kernel (same bottleneck, same learned layers); ``large stride``: the large stride
        as it is (its kernel and its smaller bottleneck).
        """
        stride = self.kernel_stride if variant == "large stride" else self.stride
        return {
            "mode": self.mode, "stride": stride, "base_stride": stride,
            "kernel_stride": self.kernel_stride if variant == "wide kernel" else 0,
            "image": self.image, "downsample": self.downsample, "gray": True, "width": self.width,
            "seed": seed, "iterations": self.iterations, "lr": self.lr,
            "record_every": self.record_every, "n_bands": self.n_bands,
            "hf_cutoff": self.hf_cutoff,
        }


def _control_summary(data: dict, cfg: UpsamplingControlConfig) -> dict:
    return {
        "mode": cfg.mode,
        "stride": cfg.stride,
        "kernel_stride": cfg.kernel_stride,
        "seeds": cfg.seeds,
        "variants": list(CONTROL_VARIANTS),
        "high_frequency_energy": {v: data["hf_energy"][i].tolist() for i, v in enumerate(CONTROL_VARIANTS)},
        "fitted_frequency": {v: data["fitted_frequency"][i].tolist() for i, v in enumerate(CONTROL_VARIANTS)},
        "final_psnr": {v: data["final_psnr"][i].tolist() for i, v in enumerate(CONTROL_VARIANTS)},
        "target_high_frequency_energy": data["target_hf_energy"],
    }


@experiment("upsampling-control", config=UpsamplingControlConfig, profiles=SIZES, summary=_control_summary)
def upsampling_control(cfg: UpsamplingControlConfig, ctx: Context) -> dict:
    """The kernel alone: a small stride with its own kernel and with a large stride's, over seeds."""
    V, S = len(CONTROL_VARIANTS), cfg.seeds
    hf, top, final_psnr, top_err = (np.zeros((V, S)) for _ in range(4))
    hf_curves, fitted_curves = [], []
    iterations = None
    subs = iter(ctx.run_many(cfg.subruns()))
    for i in range(V):
        hc, fc = [], []
        for s in range(S):
            sub = next(subs)
            run = sub.data["runs"][sub.config.stride]
            iterations = run["iterations"]
            ff = fitted_frequency(run, threshold=0.1)  # (T,)
            hf[i, s] = run["hf_energy_final"]
            top[i, s] = ff[-1]
            final_psnr[i, s] = float(run["psnr"][-1])
            top_err[i, s] = float(np.array_split(np.asarray(run["band_errors"])[-1], 2)[1].mean())
            hc.append(run["hf_energy"])
            fc.append(ff)
        hf_curves.append(np.stack(hc))
        fitted_curves.append(np.stack(fc))
    target = load_target(UpsamplingConfig(**cfg.sub_config(CONTROL_VARIANTS[0], 0)))
    return {
        "variants": CONTROL_VARIANTS,
        "iterations": iterations,  # (T,)
        "hf_energy": hf,  # (V, S) at the last iteration
        "fitted_frequency": top,  # (V, S) cycles/pixel, at the last iteration
        "final_psnr": final_psnr,  # (V, S) dB
        "top_half_error": top_err,  # (V, S) mean relative error of the upper half of the bands
        "hf_energy_curves": np.stack(hf_curves),  # (V, S, T)
        "fitted_frequency_curves": np.stack(fitted_curves),  # (V, S, T)
        "target_hf_energy": high_frequency_energy(target, cfg.hf_cutoff),
        "response": {L: response_data(cfg.mode, L) for L in (cfg.stride, cfg.kernel_stride)},
    }
