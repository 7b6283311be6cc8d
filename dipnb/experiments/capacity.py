"""Depth and width sweeps of the two-sines experiment: the paper's Appendix B and Fig. 6.

For one model (``conv`` or ``linear``) and one capacity knob (``vary``: depth or width), every
value of the grid is run with seeds ``0 .. runs-1``; each (value, seed) is one cached
``decoupling-1d`` result (:meth:`Context.run`), so an interrupted sweep resumes where it stopped
and a chapter that asks for the same run again loads it. The result holds, per value, the mean
and standard deviation over seeds of the iteration at which each frequency converged.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .. import models as M
from ..errors import ConfigError
from ..metrics import spearman
from ..params import Config, param
from .engine import Context, experiment, get

__all__ = ["CapacityConfig", "GRIDS", "BASE_WIDTH", "BASE_DEPTH", "VARY", "run_data", "run_ratios", "rank_trend",
           "findings"]

VARY = ("depth", "width")
# The built-in grids, used when `values` is left empty. Depths count layers; widths count
# channels (conv) or units (linear). quick: CPU-sized; paper: Fig. 6's range (up to 1280 channels).
GRIDS = {
    "quick": {
        ("conv", "depth"): (4, 6, 10, 16, 24),
        ("conv", "width"): (16, 32, 64, 128, 256),
        ("linear", "depth"): (4, 6, 10, 16, 24),
        ("linear", "width"): (16, 64, 256, 1024),
    },
    "paper": {
        ("conv", "depth"): (4, 6, 8, 10, 12, 16, 20, 24),
        ("conv", "width"): (32, 64, 128, 256, 512, 1024, 1280),
        ("linear", "depth"): (4, 6, 8, 10, 12, 16, 20, 24),
        ("linear", "width"): (64, 256, 1024, 2048, 4096),
    },
}
# The size that stays fixed while the other one varies, when `width` / `depth` are left at 0.
BASE_WIDTH = {"quick": {"conv": 64, "linear": 256}, "paper": {"conv": 256, "linear": 256}}
BASE_DEPTH = 10


@dataclass(frozen=True)
class CapacityConfig(Config):
    model: str = param("conv", one_of=M.MODELS_1D)  # conv | linear (see decoupling-1d)
    vary: str = param("depth", one_of=VARY)  # depth | width: the capacity knob swept
    values: tuple[int, ...] = param((), ge=1, distinct=True)  # the depths or widths; () = the grid named by `grid`
    runs: int = param(3, ge=1, note="seeds per value")  # runs per value (the paper's 10)
    first_seed: int = param(0, ge=0)  # the runs of a value use seeds first_seed .. first_seed + runs - 1
    grid: str = param("quick", one_of=tuple(GRIDS))  # quick | paper: the grid and fixed sizes for () and 0 below
    width: int = param(0, ge=0, note="0 = the grid's")  # the fixed width while depth varies; 0 = the grid's
    depth: int = param(0, ge=0, note="0 = the paper's 10")  # the fixed depth while width varies; 0 = the paper's 10
    length: int = 256  # samples in the signal
    k1: int = 5  # the low frequency (cycles per signal)
    k2: int = 50  # the high frequency (cycles per signal)
    delta: float = 0.01  # convergence threshold on SE(k)
    iterations: int = 200  # Adam steps per run
    lr: float = 1e-3  # Adam learning rate
    batch_norm: bool = True  # conv only: BN after every conv

    def check(self):
        # Fill the defaults in, so that the stored config (and its cache key) names every size.
        if not self.values:
            object.__setattr__(self, "values", GRIDS[self.grid][(self.model, self.vary)])
        if self.width == 0:
            object.__setattr__(self, "width", BASE_WIDTH[self.grid][self.model])
        if self.depth == 0:
            object.__setattr__(self, "depth", BASE_DEPTH)
        if self.vary == "depth" and min(self.values) < 2:
            raise ConfigError(f"each depth in values must be an integer >= 2, got {self.values}")
        for v in self.values:  # every sub-run's config must be valid before anything runs
            self.run_config(v, 0)

    def overrides(self, value: int, seed: int) -> dict:
        """The ``decoupling-1d`` parameters of one (value, seed) sub-run."""
        sizes = {"depth": self.depth, "width": self.width, self.vary: value}
        return dict(
            model=self.model, seed=seed, length=self.length, k1=self.k1, k2=self.k2, delta=self.delta,
            iterations=self.iterations, lr=self.lr, batch_norm=self.batch_norm, scales=-1, **sizes,
        )

    def subruns(self) -> list[tuple[str, dict]]:
        """The ``decoupling-1d`` runs of the sweep, value by value, then seed by seed."""
        seeds = range(self.first_seed, self.first_seed + self.runs)
        return [("decoupling-1d", self.overrides(v, s)) for v in self.values for s in seeds]

    def run_config(self, value: int, seed: int):
        """The validated ``decoupling-1d`` config of one sub-run (raises :class:`ConfigError`)."""
        return get("decoupling-1d").config(**self.overrides(value, seed))


def _stats(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sample std (ddof 1; 0 for one run) and count over seeds (axis 1) of the runs that
    converged; NaN where none did. ``t``: (V, R, 2) with NaN for never."""
    V, _, F = t.shape
    mean, std = np.full((V, F), np.nan), np.full((V, F), np.nan)
    n = (~np.isnan(t)).sum(axis=1)  # (V, F)
    for j in range(V):
        for i in range(F):
            x = t[j, :, i][~np.isnan(t[j, :, i])]
            if x.size:
                mean[j, i] = x.mean()
                std[j, i] = x.std(ddof=1) if x.size > 1 else 0.0
    return mean, std, n


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _summary(data: dict, cfg: CapacityConfig) -> dict:
    per_value = {}
    for j, v in enumerate(data["values"]):
        per_value[str(v)] = {
            str(k): {
                "mean": _num(data["mean"][j, i]),
                "std": _num(data["std"][j, i]),
                "converged": int(data["converged"][j, i]),
            }
            for i, k in enumerate(data["frequencies"])
        }
    return {
        "model": cfg.model,
        "vary": cfg.vary,
        "values": list(cfg.values),
        "runs": cfg.runs,
        "fixed": data["fixed"],
        "iterations": cfg.iterations,
        "per_value": per_value,
    }


@experiment(
    "capacity",
    config=CapacityConfig,
    profiles={
        # quick: 3 seeds, the CPU grid (conv depth sweep at 64 channels, widths up to 256)
        "quick": {"grid": "quick", "runs": 3, "iterations": 200},
        # paper: 10 seeds, Fig. 6's range of depths and widths (1280 channels), 256 channels fixed
        "paper": {"grid": "paper", "runs": 10, "iterations": 1000},
        # colab: Fig. 6's grid and sizes, 3 seeds instead of 10 and 500 iterations instead of 1,000
        # (the quick grid's runs all converge within 200)
        "colab": {"grid": "paper", "runs": 3, "iterations": 500},
    },
    summary=_summary,
)
def capacity(cfg: CapacityConfig, ctx: Context) -> dict:
    """Sweep depth or width of the two-sines experiment; convergence iterations over seeds."""
    V, R = len(cfg.values), cfg.runs
    freqs = (cfg.k1, cfg.k2)
    t = np.full((V, R, 2), np.nan)  # convergence iteration per value, seed, frequency
    se = np.zeros((V, R, 2, cfg.iterations), dtype=np.float32)  # SE curves of every run
    seconds = np.zeros((V, R))
    iterations = None
    runs = ctx.run_many(cfg.subruns())
    for (j, r), res in zip(itertools.product(range(V), range(R)), runs, strict=True):
        d = res.data
        iterations = d["iterations"]
        se[j, r] = d["se"]
        seconds[j, r] = d["fit_seconds"]
        for i, k in enumerate(freqs):
            c = d["convergence_iteration"][str(k)]
            t[j, r, i] = np.nan if c is None else c
    mean, std, n = _stats(t)
    return {
        "model": cfg.model,
        "vary": cfg.vary,
        "values": np.array(cfg.values),  # (V,)
        "frequencies": freqs,
        "fixed": {"depth": cfg.depth} if cfg.vary == "width" else {"width": cfg.width},
        "delta": cfg.delta,
        "convergence": t,  # (V, R, 2), NaN where a run never converged
        "mean": mean,  # (V, 2) over the runs that converged
        "std": std,  # (V, 2)
        "converged": n,  # (V, 2) how many runs converged
        "iterations": iterations,  # (T,)
        "se": se,  # (V, R, 2, T)
        "fit_seconds": seconds,  # (V, R)
    }


def run_data(data: dict, value: int, seed: int = 0) -> dict:
    """One sub-run's SE curves in the form :func:`dipnb.plots.decoupling.plot_se` takes; ``seed``
    counts the runs of a value from 0 (the run with seed ``first_seed + seed``)."""
    j = list(np.asarray(data["values"]).tolist()).index(value)
    t = data["convergence"][j, seed]
    return {
        "iterations": data["iterations"],
        "se": data["se"][j, seed],
        "frequencies": data["frequencies"],
        "convergence_iteration": {
            str(k): None if np.isnan(t[i]) else int(t[i]) for i, k in enumerate(data["frequencies"])
        },
    }


def _slope(values, y) -> float:
    """Least-squares slope of ``y`` against ``values`` (iterations per layer or per channel)."""
    return float(np.polyfit(np.asarray(values, float), np.asarray(y, float), 1)[0])


def run_ratios(data: dict) -> np.ndarray:
    """``t(k2) / t(k1)`` of every run, ``(V, R)`` (NaN where either never converged)."""
    t = data["convergence"]
    return t[:, :, 1] / np.maximum(t[:, :, 0], 1)


def rank_trend(data: dict, seed: int | None = None) -> np.ndarray:
    """Spearman's rank correlation between the swept size and the convergence time, per frequency.

    A trend over the whole grid, not a comparison of two hand-picked points: -1 when the time
    falls with every step of the size, +1 when it grows with every step, near 0 without a trend.
    Ties get average ranks; runs that never converged are left out.

    Args:
        data: a ``capacity`` result's data.
        seed: one seed's runs only (one point per size); None pools every (size, seed) run.

    Returns:
        ``(2,)`` rho for ``k1`` and ``k2`` (NaN where runs converged at fewer than 3 sizes, or all
        at the same time).
    """
    t = np.asarray(data["convergence"], dtype=float)  # (V, R, 2)
    if seed is not None:
        t = t[:, seed : seed + 1]
    size = np.broadcast_to(np.asarray(data["values"], dtype=float)[:, None], t.shape[:2])  # (V, R)
    out = np.full(2, np.nan)
    for i in range(2):
        ok = ~np.isnan(t[..., i])
        x, y = size[ok], t[..., i][ok]
        if np.unique(x).size >= 3 and np.ptp(y) > 0:
            out[i] = spearman(x, y)
    return out


def findings(sweeps: dict) -> list[dict]:
    """Test the paper's Appendix B findings on the four sweeps.

    Args:
        sweeps: ``{(model, vary): capacity data}`` for ``("conv" | "linear", "depth" | "width")``;
            a missing sweep makes its findings untested.

    Returns:
        One dict per finding: ``claim`` (the paper's, in our words), ``test`` (how we decide),
        ``holds`` (True, False, or None when the grid cannot test it) and ``evidence`` (numbers).
    """
    out = []

    def add(claim, test, holds, evidence):
        verdict = None if holds is None else bool(holds)
        out.append({"claim": claim, "test": test, "holds": verdict, "evidence": evidence})

    cd, cw = sweeps.get(("conv", "depth")), sweeps.get(("conv", "width"))
    ld, lw = sweeps.get(("linear", "depth")), sweeps.get(("linear", "width"))
    if cd is not None:
        s1, s2 = (_slope(cd["values"], cd["mean"][:, i]) for i in range(2))
        gap = cd["mean"][:, 1] - cd["mean"][:, 0]
        add("conv: deeper nets separate the frequencies more",
            "t(k2) grows faster with depth than t(k1) (least-squares slopes), and the gap t(k2) - t(k1) "
            "is wider at the deepest than at the shallowest net",
            s2 > s1 and gap[-1] > gap[0],
            f"slopes {s1:+.2f} (k1) and {s2:+.2f} (k2) iterations per layer; gap {gap[0]:.1f} at depth "
            f"{cd['values'][0]}, {gap[-1]:.1f} at depth {cd['values'][-1]}")
    if cw is not None:
        m = cw["mean"]
        add("conv: wider nets converge faster",
            "the widest net beats the narrowest on both frequencies",
            bool(np.all(m[-1] < m[0])),
            f"t(k1), t(k2) = {m[0, 0]:.1f}, {m[0, 1]:.1f} at width {cw['values'][0]}; "
            f"{m[-1, 0]:.1f}, {m[-1, 1]:.1f} at width {cw['values'][-1]}")
        steps = np.diff(m, axis=0)  # (V-1, 2)
        worse = [int(cw["values"][j + 1]) for j in range(len(steps)) if np.any(steps[j] > 0.1 * m[j] + 1)]
        add("conv: wider is faster at every step of the grid",
            "no frequency gets slower (by more than 10% + 1 iteration) from one width to the next",
            not worse, "slower at width " + ", ".join(map(str, worse)) if worse else "monotone over the grid")
        drop = m[0] - m[-1]
        add("conv: the time of k2 drops faster with width than that of k1",
            "narrowest to widest, t(k2) falls by more iterations than t(k1)",
            drop[1] > drop[0], f"t(k1) falls by {drop[0]:.1f}, t(k2) by {drop[1]:.1f} iterations")
        wide = [j for j, v in enumerate(cw["values"]) if v >= 1024]
        first = [int(cw["values"][j]) for j in wide if m[j, 1] < m[j, 0]]
        add("conv: very wide nets (1280 channels) fit k2 first",
            "t(k2) < t(k1) at some width >= 1024",
            None if not wide else bool(first),
            f"the grid stops at {int(max(cw['values']))} channels" if not wide
            else ("k2 first at width " + ", ".join(map(str, first)) if first else "k1 first at every width >= 1024"))
    lin = [d for d in (ld, lw) if d is not None]
    if lin:
        med = np.concatenate([np.nanmedian(run_ratios(d), axis=1) for d in lin])
        allr = np.concatenate([run_ratios(d).ravel() for d in lin])
        outside = int(np.sum((allr < 1 / 1.5) | (allr > 1.5)))
        add("linear: the two frequencies converge together at every depth and width",
            "at every value, the median over seeds of t(k2)/t(k1) is within a factor 1.5 of 1",
            bool(np.all((med >= 1 / 1.5) & (med <= 1.5))),
            f"median ratios from {med.min():.2f} to {med.max():.2f}; {outside} of {allr.size} single runs "
            "outside [0.67, 1.5]")
    if ld is not None:
        both = ld["mean"].mean(axis=1)
        add("linear: deeper nets converge later", "the mean time of both frequencies grows with depth (slope > 0)",
            _slope(ld["values"], both) > 0, f"slope {_slope(ld['values'], both):+.2f} iterations per layer")
    if lw is not None:
        both = lw["mean"].mean(axis=1)
        dec = bool(np.all(np.diff(both) <= 0.1 * both[:-1] + 1))
        add("linear: wider nets converge faster", "the mean time of both frequencies never grows with width",
            dec, "mean times " + ", ".join(f"{t:.1f}" for t in both) + " at widths "
            + ", ".join(str(int(v)) for v in lw["values"]))
    return out
