r"""Conv vs fully connected layers on a sum of two sines: the paper's Sec. 3.1 and Fig. 3.

The target is :math:`x_0 = \sin(2\pi k_1 t) + \sin(2\pi k_2 t)` on ``length`` samples. At every
iteration the amplitude :math:`\tilde A_i` of each frequency is read from the FFT of the output
(:func:`dipnb.spectral.amplitude_at`) and compared with the true amplitude :math:`A_i` (1 here):

.. math:: SE(k_i) = (\tilde A_i - A_i)^2 .

Frequency :math:`k_i` has *converged* at the first iteration with :math:`SE(k_i) \le \delta`
(:func:`dipnb.spectral.convergence_iteration`, the paper's rule with :math:`\delta = 0.01`).

Two models, built from the same seed and fed the same fixed noise ``z`` of shape ``(1, 1, L)``:

- ``conv``: :class:`dipnb.models.ConvAE1d`, the DIP-Conv encoder-decoder: ``depth // 2`` conv
  layers going down, the first ``scales`` of them with stride 2, and the rest going up, the last
  ``scales`` of them after a x2 upsampling; BN and LeakyReLU after every conv.
- ``linear``: :class:`dipnb.models.FullyConnectedAE`, its fully connected twin (DIP-Linear):
  ``depth`` linear layers of ``width`` units, no BN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import data as D
from .. import models as M
from .. import spectral as S
from ..errors import ConfigError
from ..fit import FitConfig, fit
from ..params import Config, param
from .engine import Context, experiment

__all__ = ["DecouplingConfig", "build"]

# the 1D builder and its scale rule live in dipnb.models (shared with capacity and kernel-view)


@dataclass(frozen=True)
class DecouplingConfig(Config):
    model: str = param("conv", one_of=M.MODELS_1D)  # conv (DIP-Conv, a 1D conv encoder-decoder) | linear (its FC twin)
    k1: int = param(5, gt=0)  # the low frequency, in cycles per signal (the paper's 5)
    k2: int = param(50, gt=0)  # the high frequency, in cycles per signal (the paper's 50)
    length: int = param(256, ge=8)  # samples in the signal (not stated in the paper; must exceed 2 * k2)
    depth: int = param(10, ge=2)  # conv layers (conv) or linear layers (linear), the paper's 10
    width: int = param(256, ge=1)  # channels (conv) or units (linear) per layer, the paper's 256
    scales: int = param(-1, ge=-1)  # conv only: strided down/up pairs; -1 = depth // 2, capped so >= 8 samples remain
    batch_norm: bool = True  # conv only: BatchNorm after every conv, as in the DIP
    delta: float = param(0.01, gt=0)  # a frequency has converged once SE(k) <= delta (the paper's 0.01)
    seed: int = param(0, ge=0)  # seeds the weights and the fixed input noise
    iterations: int = 200  # Adam steps (the quick profile's; paper profile 1000)
    lr: float = 1e-3  # Adam learning rate (the DIP's 1e-3)

    def check(self):
        for name in ("k1", "k2"):
            if getattr(self, name) >= self.length / 2:
                raise ConfigError(
                    f"{name} must be below length / 2 = {self.length / 2:g} cycles per signal, "
                    f"got {getattr(self, name)}; lengthen the signal to go higher"
                )
        if self.k1 == self.k2:
            raise ConfigError(f"k1 and k2 must differ, both are {self.k1}")
        M.check_scales(self.depth, self.length, self.scales)
        self.fit_config()  # checks iterations and lr

    @property
    def frequencies(self) -> tuple[int, int]:
        return (self.k1, self.k2)

    def fit_config(self) -> FitConfig:
        # Every iteration is recorded (convergence times are exact) and every output kept, so the
        # outputs at the two convergence times can be picked afterwards (iterations x length floats).
        return FitConfig(iterations=self.iterations, lr=self.lr, record_every=1, snapshot_every=1)


def build(cfg: DecouplingConfig):
    """The model of ``cfg`` (weights from ``cfg.seed``) and its fixed input ``z``, ``(1, 1, L)``."""
    return M.build_1d(cfg.model, length=cfg.length, width=cfg.width, depth=cfg.depth, scales=cfg.scales,
                    seed=cfg.seed, batch_norm=cfg.batch_norm)


def _summary(data: dict, cfg: DecouplingConfig) -> dict:
    return {
        "model": cfg.model,
        "frequencies": list(cfg.frequencies),
        "convergence_iteration": dict(data["convergence_iteration"]),
        "ratio": data["ratio"],
        "scales": data["scales"],
        "parameters": data["parameters"],
        "se": {str(k): data["se"][i].tolist() for i, k in enumerate(cfg.frequencies)},
    }


@experiment(
    "decoupling-1d",
    config=DecouplingConfig,
    profiles={
        # quick: the paper's sizes; the BN encoder-decoder fits both sines within ~50 steps
        "quick": {"iterations": 200},
        "paper": {"iterations": 1000},
        "colab": {"iterations": 1000},
    },
    summary=_summary,
)
def decoupling(cfg: DecouplingConfig, ctx: Context) -> dict:
    """Fit a 1D conv or fully connected net to two sines; track each frequency's squared amplitude error."""
    x0 = D.two_sines(cfg.length, cfg.k1, cfg.k2)  # (1, L)
    true = np.array([S.amplitude_at(x0, k) for k in cfg.frequencies])  # (2,), both 1 up to rounding
    model, z = build(cfg)

    def amplitudes(out):  # (1, 1, L) -> (2,)
        sig = out.detach().cpu().numpy().reshape(-1)
        return np.array([S.amplitude_at(sig, k) for k in cfg.frequencies])

    rec = fit(
        model, z, x0, cfg.fit_config(), metrics={"amplitude": amplitudes},
        **dict(ctx.fit_kwargs(f"{cfg.model} d{cfg.depth} w{cfg.width} seed {cfg.seed}"), checkpoint=None),
    )
    amp = rec.metrics["amplitude"][0].T  # (2, T)
    se = (amp - true[:, None]) ** 2  # (2, T)
    conv = {
        str(k): S.convergence_iteration(rec.iterations, se[i], cfg.delta) for i, k in enumerate(cfg.frequencies)
    }
    t1, t2 = conv[str(cfg.k1)], conv[str(cfg.k2)]
    ratio = None if t1 is None or t2 is None else t2 / max(t1, 1)

    # The outputs when each frequency converged and at the end (Fig. 3 b-d).
    snaps = rec.snapshots[0, :, 0]  # (S, L); S = iterations, one per step
    where = {int(i): j for j, i in enumerate(rec.snapshot_iterations)}
    outputs, output_iterations = {}, {}
    for name, it in ((f"k1={cfg.k1}", t1), (f"k2={cfg.k2}", t2), ("end", int(rec.iterations[-1]))):
        if it is not None and it in where:
            outputs[name] = snaps[where[it]].copy()
            output_iterations[name] = it
    return {
        "signal": x0[0],  # (L,)
        "frequencies": cfg.frequencies,
        "true_amplitude": true,
        "iterations": rec.iterations,  # (T,)
        "loss": rec.loss[0],  # (T,)
        "amplitude": amp,  # (2, T)
        "se": se,  # (2, T)
        "convergence_iteration": conv,  # {"k": iteration or None}
        "ratio": ratio,  # t(k2) / t(k1), None if either never converged
        "outputs": outputs,  # name -> (L,)
        "output_iterations": output_iterations,
        "scales": M.resolve_scales(cfg.depth, cfg.length, cfg.scales) if cfg.model == "conv" else None,
        "parameters": M.count_parameters(model),
        "fit_seconds": rec.seconds,
    }
