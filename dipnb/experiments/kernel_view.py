r"""The kernel view: the empirical tangent kernel of the 1D nets, and the per-frequency convergence
times it predicts for gradient descent, against the times measured (Part III of the book).

Two experiments:

- ``kernel-spectrum``: the empirical tangent kernel :math:`K = J J^\top` at initialisation of the
  1D conv encoder-decoder (:func:`dipnb.models.build_conv1d`) or of its fully connected twin
  (:func:`dipnb.models.build_fc1d`), for the fixed noise input; its eigenvalues and eigenvectors,
  its Rayleigh quotient per frequency :math:`\rho_k`, and how close it is to diagonal in the
  Fourier basis (:mod:`dipnb.ntk`). Seconds on a CPU at the quick sizes.
- ``kernel-view``: the same kernel, then a sum of sines of equal amplitude
  :math:`y = A \sum_k \sin(2\pi k n / N)` fitted by plain full-batch gradient descent and by Adam.
  For each frequency, the iteration at which :math:`SE(k) = (\tilde A_k - A)^2 \le \delta`
  (the paper's rule) is predicted from the kernel (:func:`dipnb.ntk.predict_iterations`, and
  from the full linearised dynamics) and measured; the summary gives their Spearman rank
  correlation and how Adam departs from the prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from .. import models as M
from .. import ntk, spectral
from ..errors import ConfigError, FitDivergedError
from ..fit import FitConfig, fit
from ..metrics import spearman
from ..params import Config, param
from .engine import Context, experiment

__all__ = ["KernelSpectrumConfig", "KernelViewConfig", "OPTIMIZERS", "AUTO_GD_STEP", "build"]

OPTIMIZERS = ("gd", "adam")
# gd_step = 0 picks these fractions of the linearised stability limit N / lambda_max. The deep fully
# connected twin is far from linear: above ~0.005 of the limit its real loss diverges in a few steps.
AUTO_GD_STEP = {"conv": 0.25, "linear": 0.002}




@dataclass(frozen=True)
class KernelSpectrumConfig(Config):
    """A 1D net of the decoupling chapter, whose tangent kernel and spectrum are computed."""

    model: str = param("conv", one_of=M.MODELS_1D)  # conv (DIP-Conv, 1D conv encoder-decoder) | linear (its FC twin)
    length: int = param(256, ge=8, le=4096, note="the kernel is length x length")  # samples = rows of the Jacobian
    width: int = param(64, ge=1)  # channels (conv) or units (linear) per layer; the paper's 256
    depth: int = param(10, ge=2)  # layers (the paper's 10)
    scales: int = param(-1, ge=-1)  # conv only: x2 down/up pairs; -1 = depth // 2, capped so >= 8 samples remain
    upsample_mode: str = param("nearest", **spectral.MODE_PARAM)  # conv only: nearest | bilinear, before each up conv
    seed: int = param(0, ge=0)  # seeds the weights; the fixed input noise uses seed + 10000

    def check(self):
        if self.model == "conv":
            M.check_scales(self.depth, self.length, self.scales)


@dataclass(frozen=True)
class KernelViewConfig(KernelSpectrumConfig):
    """The kernel sub-experiment's fields (the net and its seed), then the target and the fits."""

    frequencies: tuple[int, ...] = param((2, 5, 10, 20, 35, 50), gt=0, min_len=2, distinct=True)  # cycles per signal
    amplitude: float = param(1.0, gt=0)  # amplitude A of every sine (the paper's 1)
    delta: float = param(0.01, gt=0)  # frequency k has converged once SE(k) = (A_k - A)^2 <= delta (the paper's 0.01)
    optimizer: str = param("gd", one_of=OPTIMIZERS)  # measured optimiser of the headline: gd (the kernel's) | adam
    gd_step: float = param(0.0, ge=0, lt=1)  # GD step, a fraction of the stability limit; 0 = 0.25 conv, 0.002 linear
    gd_iterations: int = param(1500, ge=1)  # gradient-descent steps
    adam_lr: float = param(1e-3, gt=0)  # Adam learning rate (the paper's 1e-3)
    adam_iterations: int = param(300, ge=1)  # Adam steps (always run: it is the comparison)

    def check(self):
        super().check()
        for k in self.frequencies:
            if not k < self.length / 2:
                raise ConfigError(
                    f"frequency {k!r} must be an integer in (0, length / 2 = {self.length / 2:g}) cycles per "
                    f"signal; lengthen the signal to go higher"
                )
        if self.delta >= self.amplitude**2:
            raise ConfigError(
                f"delta={self.delta} must be below amplitude^2 = {self.amplitude**2:g}, "
                "or a zero output already counts as converged"
            )

    def subruns(self) -> list[tuple[str, dict]]:
        """The ``kernel-spectrum`` run of the same net (the fits are computed here)."""
        return [("kernel-spectrum", self.kernel_config())]

    def kernel_config(self) -> dict:
        """The fields of the kernel sub-experiment."""
        names = {f.name for f in fields(KernelSpectrumConfig)}
        return {k: v for k, v in asdict(self).items() if k in names}

    @property
    def step_fraction(self) -> float:
        return self.gd_step or AUTO_GD_STEP[self.model]


def build(cfg: KernelSpectrumConfig | KernelViewConfig) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model of ``cfg`` (weights from ``cfg.seed``) and its fixed input ``z``, ``(1, 1, L)``."""
    options = {"upsample_mode": cfg.upsample_mode} if cfg.model == "conv" else {}
    return M.build_1d(cfg.model, length=cfg.length, width=cfg.width, depth=cfg.depth, scales=cfg.scales,
                    seed=cfg.seed, **options)


def sum_of_sines(length: int, frequencies, amplitude: float) -> np.ndarray:
    """``A sum_k sin(2 pi k n / N)``, ``(N,)`` float64."""
    n = np.arange(length) / length
    return amplitude * np.sin(2 * np.pi * np.asarray(frequencies)[:, None] * n[None, :]).sum(axis=0)


def _chunk(device: torch.device) -> int:
    return 256 if device.type == "cuda" else 64


# --------------------------------------------------------------------------------------------
# kernel-spectrum
# --------------------------------------------------------------------------------------------


def _kernel_summary(data: dict, cfg: KernelSpectrumConfig) -> dict:
    rho = data["rho"]
    return {
        "model": cfg.model,
        "parameters": data["parameters"],
        "scales": data["scales"],
        "fourier_diagonal_fraction": data["diagonal_fraction"],
        "fourier_diagonal_fraction_without_identity": data["diagonal_fraction_centered"],
        "eigen_order_spearman": data["eigen_order_spearman"],
        "top_eigenvalues": data["eigenvalues"][:5].tolist(),
        "rho_at": {str(k): float(rho[k]) for k in (1, 2, 5, 10, 20, 50, cfg.length // 2) if k < rho.size},
        "jacobian_seconds": data["jacobian_seconds"],
    }


@experiment(
    "kernel-spectrum",
    config=KernelSpectrumConfig,
    profiles={
        # quick: 113k parameters (conv), a full 256-row Jacobian in ~2 s on one CPU thread
        "quick": {"length": 256, "width": 64},
        "paper": {"length": 256, "width": 256},
        "colab": {"length": 256, "width": 256},
    },
    summary=_kernel_summary,
    smoke={},  # one Jacobian at the profile's size, no iterations: smoke mode runs it whole
)
def kernel_spectrum(cfg: KernelSpectrumConfig, ctx: Context) -> dict:
    """Empirical tangent kernel of a 1D net at initialisation: spectrum and Fourier structure."""
    import time

    model, z = build(cfg)
    z = z.to(ctx.device)
    t0 = time.perf_counter()
    K = ntk.empirical_ntk(model, z, chunk_size=_chunk(ctx.device))  # (N, N)
    seconds = time.perf_counter() - t0
    w, V = ntk.eigh_descending(K)
    dominant, concentration, _ = ntk.eigenvector_frequencies(V)
    with torch.no_grad():
        f0 = model.to(ctx.device).train()(z).reshape(-1).cpu().double().numpy()  # (N,)
    return {
        "K": K,
        "eigenvalues": w,
        "eigenvectors": V.astype(np.float32),
        "rho": ntk.spectral_density(K),
        "dominant_frequency": dominant,
        "concentration": concentration,
        # +1 when the eigenvectors, largest eigenvalue first, climb steadily in frequency
        "eigen_order_spearman": spearman(np.arange(w.size), dominant),
        "diagonal_fraction": ntk.fourier_diagonal_fraction(K),
        "diagonal_fraction_centered": ntk.fourier_diagonal_fraction(K, remove_identity=True),
        "offset_profile": ntk.offset_energy_profile(K),
        "offset_profile_centered": ntk.offset_energy_profile(K, remove_identity=True),
        "f0": f0,
        "z": z.reshape(-1).cpu().numpy(),
        "parameters": M.count_parameters(model),
        "scales": M.resolve_scales(cfg.depth, cfg.length, cfg.scales) if cfg.model == "conv" else 0,
        "jacobian_seconds": seconds,
    }


# --------------------------------------------------------------------------------------------
# kernel-view
# --------------------------------------------------------------------------------------------


def predict(kernel: dict, frequencies, *, amplitude: float = 1.0, delta: float = 0.01, step_fraction: float,
            horizon: int = 0) -> dict:
    r"""What the tangent kernel predicts for gradient descent on a sum of sines.

    Args:
        kernel: the data of a ``kernel-spectrum`` result (``K``, ``eigenvalues``, ``rho``, ``f0``).
        frequencies: the sines of the target, cycles per signal.
        amplitude, delta: the target amplitude ``A`` and the convergence threshold on ``SE(k)``.
        step_fraction: the GD step as a fraction of the stability limit ``N / lambda_max``.
        horizon: also run the full linearised dynamics for this many steps (0: skip).

    Returns:
        ``lr``, ``target`` ``(N,)``, ``rho_k`` and ``a0`` ``(F,)``, ``predicted`` ``(F,)`` (the
        Rayleigh-quotient rule :func:`dipnb.ntk.predict_iterations`; ``inf`` = never), and with a
        horizon ``linearised`` ``(F,)`` and ``linearised_amplitudes`` ``(horizon, F)``.
    """
    K, w, f0 = kernel["K"], kernel["eigenvalues"], kernel["f0"]
    n = K.shape[0]
    ks = np.asarray(frequencies)
    y = sum_of_sines(n, ks, amplitude)  # (N,)
    lr = step_fraction * ntk.stable_lr(w[0], n)
    rho_k = kernel["rho"][ks]
    a0 = ntk.residual_amplitudes(f0, y, ks)
    out = {
        "lr": lr, "target": y, "rho_k": rho_k, "a0": a0,
        "predicted": ntk.predict_iterations(rho_k, a0, lr=lr, n=n, delta=delta),
    }
    if horizon:
        amps = ntk.linearised_amplitudes(K, f0, y, ks, lr=lr, iterations=horizon)  # (T, F)
        out["linearised_amplitudes"] = amps
        out["linearised"] = ntk.convergence_iterations(np.arange(horizon), amps, amplitude, delta)
    return out


def spread(times) -> float:
    """``slowest / fastest`` convergence iteration over the frequencies (1 = all together).

    ``inf`` if some frequency never converged while another did; NaN if none converged.
    """
    t = np.asarray(times, float)
    if not np.isfinite(t).any():
        return float("nan")
    if not np.isfinite(t).all():
        return float("inf")
    return float(t.max() / max(t.min(), 1.0))


def loglog_slope(predicted, measured) -> float:
    """Least-squares slope of log(measured) against log(predicted) over the finite, positive pairs.

    1 means measured times are proportional to the predicted ones; below 1, the measured times
    are compressed (a smaller spread between fast and slow frequencies than predicted).
    """
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = np.isfinite(p) & np.isfinite(m) & (p > 0) & (m > 0)
    if ok.sum() < 2 or np.ptp(np.log(p[ok])) == 0:
        return float("nan")
    return float(np.polyfit(np.log(p[ok]), np.log(m[ok]), 1)[0])


def _as_dict(ks, values) -> dict:
    """``{k: iteration}`` with None where a frequency never converged."""
    return {str(k): (None if not np.isfinite(v) else int(v)) for k, v in zip(ks, values, strict=True)}


def _num(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _summary(data: dict, cfg: KernelViewConfig) -> dict:
    ks = cfg.frequencies
    adam = data["adam"]
    out = {
        "model": cfg.model,
        "optimizer": cfg.optimizer,
        "frequencies": list(ks),
        "spearman_predicted_vs_measured": _num(data["spearman"]),
        "predicted_iterations": _as_dict(ks, data["predicted_iterations"]),
        "measured_iterations": _as_dict(ks, data["measured_iterations"]),
        "linearised_iterations": _as_dict(ks, data["linearised_iterations"]),
        "spearman_linearised_vs_measured": _num(data["spearman_linearised"]),
        "spread_predicted": _num(data["spread_predicted"]),
        "spread_measured": _num(data["spread_measured"]),
        "measured_over_predicted": data["measured_over_predicted"],
        "fourier_diagonal_fraction": data["fourier_diagonal_fraction"],
        "fourier_diagonal_fraction_without_identity": _num(data["fourier_diagonal_fraction_centered"]),
        "gd_lr": data["gd_lr"],
        "gd_step_fraction": data["gd_step_fraction"],
        "adam": {
            "lr": cfg.adam_lr,
            "measured_iterations": _as_dict(ks, adam["converged"]),
            "spearman_predicted_vs_measured": _num(adam["spearman"]),
            "loglog_slope_vs_predicted": _num(adam["loglog_slope"]),
            "spread_measured": _num(spread(adam["converged"])),
            "speedup_over_gd": adam.get("speedup_over_gd"),
        },
        "parameters": data["kernel"]["parameters"],
    }
    gd = data.get("gd")
    if gd is not None:
        out["gd"] = {
            "loglog_slope_vs_predicted": _num(gd["loglog_slope"]),
            "diverged_at": gd["diverged_at"],
            "kernel_change": {str(t): c for t, c in zip(gd["checkpoints"], gd["kernel_change"], strict=True)},
        }
    return out


def _run_gd(cfg: KernelViewConfig, ctx: Context, model, z, y, lr: float, ks, K0: np.ndarray) -> dict:
    """Plain gradient descent from the kernel's initialisation, re-measuring the kernel on the way."""
    T = cfg.gd_iterations
    checkpoints = sorted({max(1, T // 100), max(1, T // 10), T})
    chunk = _chunk(z.device)
    diverged_at = None
    try:
        rec = ntk.gradient_descent(
            model, z, y[None], lr=lr, iterations=T,
            record=lambda o: ntk.amplitudes(o.reshape(-1), ks),
            probe_at=tuple(checkpoints), probe=lambda m: ntk.empirical_ntk(m, z, chunk_size=chunk),
            progress=ctx.progress, description=f"gd {cfg.model} seed {cfg.seed}",
        )
    except FitDivergedError as e:  # an honest failure: kept, with the trajectory up to it
        rec = e.record
        diverged_at = rec["diverged_at"]
    iters, amps = rec["iterations"], rec["values"]
    kernels = rec["probes"]  # {t: K_t}
    done = [t for t in checkpoints if t in kernels]
    return {
        "iterations": iters,
        "amplitudes": amps,  # (T, F)
        "loss": rec["loss"],
        "converged": ntk.convergence_iterations(iters, amps, cfg.amplitude, cfg.delta),
        "diverged_at": diverged_at,
        # How far the kernel moved: the linearisation's blind spot.
        "checkpoints": np.asarray(done, dtype=int),
        "rho_checkpoints": np.stack([ntk.spectral_density(kernels[t]) for t in done]) if done else None,
        "kernel_change": [float(np.linalg.norm(kernels[t] - K0) / np.linalg.norm(K0)) for t in done],
    }


def _run_adam(cfg: KernelViewConfig, ctx: Context, model, z, y, ks) -> dict:
    rec = fit(
        model, z, y[None], FitConfig(iterations=cfg.adam_iterations, lr=cfg.adam_lr),
        metrics={"amplitudes": lambda o: ntk.amplitudes(o.reshape(-1), ks)},
        **{**ctx.fit_kwargs(f"adam {cfg.model} seed {cfg.seed}"), "checkpoint": None},
    )
    amps = rec.metrics["amplitudes"][0]  # (T, F)
    return {
        "iterations": rec.iterations,
        "amplitudes": amps,
        "loss": rec.loss[0],
        "converged": ntk.convergence_iterations(rec.iterations, amps, cfg.amplitude, cfg.delta),
    }


@experiment(
    "kernel-view",
    config=KernelViewConfig,
    profiles={
        # quick: width 64 (113k parameters), GD at a quarter of the stable step: ~1,000 steps for 50 cycles
        "quick": {"width": 64, "gd_iterations": 1500, "adam_iterations": 300},  # length: the default 256
        "paper": {"width": 256, "gd_iterations": 3000, "adam_iterations": 500},
        "colab": "paper",
    },
    summary=_summary,
)
def kernel_view(cfg: KernelViewConfig, ctx: Context) -> dict:
    """Predict each frequency's convergence time from the tangent kernel and measure it (GD, Adam)."""
    kern = ctx.run_many(cfg.subruns())[0].data
    ks = np.asarray(cfg.frequencies)
    pred = predict(kern, ks, amplitude=cfg.amplitude, delta=cfg.delta, step_fraction=cfg.step_fraction,
                   horizon=cfg.gd_iterations)
    predicted, y = pred["predicted"], pred["target"]

    model, z = build(cfg)
    z = z.to(ctx.device)
    gd = None
    if cfg.optimizer == "gd":
        gd = _run_gd(cfg, ctx, model, z, y, pred["lr"], ks, kern["K"])
        gd["loglog_slope"] = loglog_slope(predicted, gd["converged"])
        gd["spearman"] = spearman(predicted, gd["converged"])
    adam_model, _ = build(cfg)  # the same initial weights
    adam = _run_adam(cfg, ctx, adam_model, z, y, ks)
    adam["spearman"] = spearman(predicted, adam["converged"])
    adam["loglog_slope"] = loglog_slope(predicted, adam["converged"])
    measured = gd["converged"] if gd is not None else adam["converged"]
    if gd is not None:
        both = np.isfinite(gd["converged"]) & np.isfinite(adam["converged"])
        ratio = gd["converged"][both] / np.maximum(adam["converged"][both], 1)
        adam["speedup_over_gd"] = float(np.median(ratio)) if ratio.size else None
    ok = np.isfinite(measured) & np.isfinite(predicted) & (predicted > 0)
    mop = measured[ok] / predicted[ok]
    return {
        "frequencies": ks,
        "amplitude": cfg.amplitude,
        "delta": cfg.delta,
        "target": y,
        "f0": kern["f0"],
        "kernel": kern,
        "gd_lr": pred["lr"],
        "gd_step_fraction": cfg.step_fraction,
        "stable_lr": ntk.stable_lr(kern["eigenvalues"][0], cfg.length),
        "rho_k": pred["rho_k"],
        "a0": pred["a0"],
        "predicted_iterations": predicted,
        "linearised_iterations": pred["linearised"],
        "linearised_amplitudes": pred["linearised_amplitudes"],
        "measured_iterations": measured,
        "spearman": spearman(predicted, measured),
        "spearman_linearised": spearman(pred["linearised"], measured),
        "spread_predicted": spread(predicted),
        "spread_measured": spread(measured),
        "measured_over_predicted": (
            {"min": float(mop.min()), "median": float(np.median(mop)), "max": float(mop.max())} if mop.size else None
        ),
        "fourier_diagonal_fraction": kern["diagonal_fraction"],
        "fourier_diagonal_fraction_centered": kern["diagonal_fraction_centered"],
        "gd": gd,
        "adam": adam,
    }
