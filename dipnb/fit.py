r"""The one fitting loop of the book: Adam on the mean squared error to a single target.

The Deep Image Prior fits a network :math:`f_\theta` with a fixed input :math:`z` to one signal
:math:`x_0` by minimising :math:`\|f_\theta(z) - x_0\|^2` (paper, Sec. 1). :func:`fit` runs R
independent copies of that optimisation side by side (the paper's two runs for
:math:`\varepsilon`, or several seeds), recording per-iteration scalars and output snapshots.

The output recorded at iteration ``i`` is :math:`f_{\theta_i}(z)`, the output of the forward pass
that step ``i`` back-propagates through, so the loop runs one forward pass per step (the original
code ran a second one to record, see the book's errata). It never plots.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, FitDivergedError
from .metrics import psnr as _psnr
from .params import Config, param
from .runtime import pick_device, tune_cpu_allocator

__all__ = ["FitConfig", "FitRecord", "fit", "atomic_save"]

PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class FitConfig(Config):
    iterations: int = param(1000, ge=1)  # optimisation steps per run
    lr: float = param(1e-3, gt=0)  # learning rate (the paper's Adam 1e-3)
    optimizer: str = param("adam", one_of=OPTIMIZERS)  # adam (the paper's) or sgd (full-batch GD, no momentum)
    record_every: int = param(1, ge=1)  # iterations between recorded scalars (loss, PSNR, eps, metrics)
    snapshot_every: int = param(0, ge=0)  # iterations between stored outputs; 0 stores none
    snapshot_budget_mb: float = param(256.0, gt=0)  # memory for snapshots; past it, every other one is dropped
    batch_pixels: int = param(0, ge=0)  # > 0: train on random minibatches of this many pixels (coordinate nets)
    precision: str = param("fp32", one_of=PRECISIONS)  # fp32, or bf16 autocast (faster on CPUs with bf16 support)
    channels_last: bool | None = None  # 2D conv memory layout; None picks it on the CPU
    checkpoint_every: int = param(0, ge=0)  # iterations between resumable checkpoints; 0 writes none

    @classmethod
    def of(cls, cfg, **overrides) -> FitConfig:
        """The fit of an experiment's config: every field of ``cfg`` that a FitConfig also has
        (``iterations``, ``lr``, ``record_every`` ...), then ``overrides``."""
        names = {f.name for f in dataclasses.fields(cls)}
        own = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
        return cls(**{**own, **overrides})


@dataclass
class FitRecord:
    """What one call of :func:`fit` recorded. Arrays are numpy; R runs, T records, S snapshots."""

    iterations: np.ndarray  # (T,) iteration numbers of the records
    loss: np.ndarray  # (R, T) MSE to the target (full signal)
    psnr: np.ndarray | None  # (R, T) PSNR to the reference in dB, if one was given
    eps: np.ndarray | None  # (T,) sum of squared differences between runs (mean over pairs), R >= 2
    metrics: dict[str, np.ndarray]  # name -> (R, T, ...) values of the user's metric functions
    snapshot_iterations: np.ndarray  # (S,)
    snapshots: np.ndarray | None  # (R, S, C, *spatial) float32 outputs, or None
    final: np.ndarray  # (R, C, *spatial) the output at the last recorded step
    seconds: float = 0.0  # wall time of the optimisation (this process's part, if resumed)
    device: str = "cpu"
    best_output: np.ndarray | None = None  # (R, C, *spatial) each run's output at its best recorded PSNR
    extra: dict = field(default_factory=dict)

    def best(self, run: int = 0) -> tuple[float, int]:
        """Best PSNR along run ``run``'s trajectory (dB) and the iteration where it occurred."""
        if self.psnr is None:
            raise ValueError("no reference was given, so no PSNR was recorded")
        i = int(np.nanargmax(self.psnr[run]))
        return float(self.psnr[run, i]), int(self.iterations[i])


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _as_batch(x, ndim: int, device) -> torch.Tensor:
    """``x`` as a float32 tensor with a batch dimension, so that it has ``ndim`` dimensions."""
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    if t.dim() == ndim - 1:
        t = t[None]  # (1, C, *spatial)
    if t.dim() != ndim or t.shape[0] != 1:
        raise ConfigError(f"expected a signal of shape (C, *spatial) matching the input's, got {tuple(t.shape)}")
    return t.to(device)


class _Recorder:
    """Collects scalars and snapshots; thins snapshots to stay within a memory budget."""

    def __init__(self, cfg: FitConfig, n_runs: int, out_shape, has_ref: bool):
        self.cfg = cfg
        self.iterations: list[int] = []
        self.loss: list[list[float]] = []
        self.psnr: list[list[float]] | None = [] if has_ref else None
        self.eps: list[float] | None = [] if n_runs >= 2 else None
        self.metrics: dict[str, list] = {}
        self.snap_iters: list[int] = []
        self.snaps: list[np.ndarray] = []  # each (R, C, *spatial)
        self.snap_every = cfg.snapshot_every
        self.snap_bytes = 4 * n_runs * math.prod(out_shape)
        self.n_runs = n_runs
        self.final: np.ndarray | None = None
        # Each run's best recorded PSNR and output: kept here so that a checkpoint carries them.
        self.best_psnr: list[float] = [-math.inf] * n_runs
        self.best_out: list[np.ndarray | None] = [None] * n_runs

    def state(self) -> dict:
        return dict(self.__dict__, cfg=None)

    def load(self, state: dict) -> None:
        cfg = self.cfg
        self.__dict__.update(state)
        self.cfg = cfg

    def add_snapshot(self, it: int, outs: np.ndarray) -> None:
        self.snap_iters.append(it)
        self.snaps.append(outs)
        budget = self.cfg.snapshot_budget_mb * 2**20
        while len(self.snaps) > 2 and len(self.snaps) * self.snap_bytes > budget:
            # Keep every other snapshot and record half as often from now on.
            self.snaps, self.snap_iters = self.snaps[::2], self.snap_iters[::2]
            self.snap_every *= 2

    def record(self) -> FitRecord:
        snaps = np.stack(self.snaps, axis=1) if self.snaps else None  # (R, S, C, ...)
        metrics = {k: np.stack([np.asarray(v) for v in vals], axis=1) for k, vals in self.metrics.items()}

        def by_run(rows):  # T lists of R values -> (R, T), also when T = 0
            return np.asarray(rows, dtype=np.float64).reshape(-1, self.n_runs).T

        return FitRecord(
            iterations=np.asarray(self.iterations),
            loss=by_run(self.loss),
            psnr=None if self.psnr is None else by_run(self.psnr),
            eps=None if self.eps is None else np.asarray(self.eps),
            metrics=metrics,
            snapshot_iterations=np.asarray(self.snap_iters, dtype=int),
            snapshots=snaps,
            final=self.final,
            best_output=None if any(b is None for b in self.best_out) else np.stack(self.best_out),
        )


def _is_conv2d_model(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _optimizers(models: Sequence[nn.Module], cfg: FitConfig) -> list[torch.optim.Optimizer]:
    # foreach: one call per operation over all of a model's tensors instead of a Python loop over
    # them. It gives the same numbers, bit for bit, as PyTorch's CPU default (tests/test_fit.py),
    # and Adam's step is 1.1-1.7x faster for the book's skip nets (benchmarks/optimizer.py).
    # fused=True would be faster still, but it rounds differently, and Adam amplifies that: the
    # trajectories, and every stored result, would change.
    if cfg.optimizer == "adam":
        return [torch.optim.Adam(m.parameters(), lr=cfg.lr, foreach=True) for m in models]
    return [torch.optim.SGD(m.parameters(), lr=cfg.lr, momentum=0.0, foreach=True) for m in models]


def _fingerprint(cfg: FitConfig, models: Sequence[nn.Module], inputs: Sequence[torch.Tensor], target) -> dict:
    """What a checkpoint must match to be resumed: the config, each model's class and the name,
    shape and dtype of each of its tensors (parameters and buffers), the inputs' and target's shapes."""
    return {
        "cfg": asdict(cfg),
        "runs": len(models),
        "shape": list(target.shape),
        "inputs": [list(z.shape) for z in inputs],
        "models": [
            [f"{type(m).__module__}.{type(m).__qualname__}"]
            + [[k, list(v.shape), str(v.dtype)] for k, v in m.state_dict().items()]
            for m in models
        ],
    }


def fit(
    models: nn.Module | Sequence[nn.Module],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    target,
    cfg: FitConfig = FitConfig(),
    *,
    reference=None,
    metrics: Mapping[str, Callable[[torch.Tensor], float | np.ndarray]] | None = None,
    minibatch_seed: int = 0,
    device: str | torch.device | None = None,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callable[[int], None]] = (),
    description: str = "fit",
) -> FitRecord:
    """Fit each model to ``target`` from its own fixed input with Adam (or plain SGD) + MSE, side by side.

    Args:
        models: one network or R networks (independent runs; build each with its own seed).
        inputs: the fixed input of each run, ``(1, C_in, *spatial)`` (one tensor for all runs, or R).
        target: the signal to fit, ``(C, *spatial)`` or ``(1, C, *spatial)``.
        cfg: iterations, learning rate, recording schedule, precision, checkpointing.
        reference: a clean signal to score the outputs against (PSNR in dB), e.g. the clean
            image when ``target`` is noisy.
        metrics: name -> function of one run's output ``(1, C, *spatial)`` (float32, on the fitting
            device) returning a float or a 1D array, evaluated at every recorded iteration.
            Keep them pure: after a resume, state held in a closure is lost (the output at the
            best PSNR is recorded for you in ``FitRecord.best_output``).
        minibatch_seed: seeds the choice of pixels when ``cfg.batch_pixels > 0``.
        device: where to compute; default :func:`dipnb.runtime.pick_device`.
        checkpoint: a file to save resumable state to every ``cfg.checkpoint_every`` iterations;
            if it exists at the start the fit resumes from it, and it is removed when the fit ends.
            A checkpoint of another fit (another config, model class, tensor names or shapes,
            input or target shape) or one that does not load is discarded with a one-line
            warning, and the fit starts from iteration 0 with the models' own initial weights.
        progress: show a tqdm progress bar (default: on unless ``DIPNB_PROGRESS=0``).
        callbacks: functions called with the iteration number after every step.

    Returns:
        A :class:`FitRecord`. Iteration numbers count optimisation steps from 0.

    Raises:
        FitDivergedError: the loss became NaN or infinite; its ``record`` holds the trajectory so far.
    """
    device = device if isinstance(device, torch.device) else pick_device(device)  # validates names, 'auto'
    if device.type == "cpu":
        tune_cpu_allocator()
    models = [models] if isinstance(models, nn.Module) else list(models)
    R = len(models)
    if R == 0:
        raise ConfigError("fit needs at least one model")
    inputs = [inputs] * R if torch.is_tensor(inputs) else list(inputs)
    if len(inputs) != R:
        raise ConfigError(f"got {len(inputs)} inputs for {R} models: give one, or one per model")
    ndim = inputs[0].dim()
    tgt = _as_batch(target, ndim, device)
    ref = None if reference is None else _as_batch(reference, ndim, device)
    if ref is not None and ref.shape != tgt.shape:
        raise ConfigError(f"reference shape {tuple(ref.shape)} differs from target shape {tuple(tgt.shape)}")
    metrics = dict(metrics or {})

    channels_last = cfg.channels_last
    if channels_last is None:
        channels_last = device.type == "cpu" and tgt.dim() == 4
    mem = torch.channels_last if channels_last and tgt.dim() == 4 else torch.contiguous_format
    models = [m.to(device=device, memory_format=mem) if _is_conv2d_model(m) else m.to(device) for m in models]
    zs = [z.to(device).contiguous(memory_format=mem) if z.dim() == 4 else z.to(device) for z in inputs]
    for m in models:
        m.train()
    opts = _optimizers(models, cfg)
    gen = torch.Generator(device="cpu").manual_seed(int(minibatch_seed))
    n_pixels = math.prod(tgt.shape[2:])
    tgt_flat = tgt.flatten(2)  # (1, C, N)
    if cfg.batch_pixels and not all(hasattr(m, "forward_at") for m in models):
        raise ConfigError("batch_pixels > 0 needs a coordinate network with forward_at (e.g. ReLUNet)")

    rec = _Recorder(cfg, R, tgt.shape[1:], ref is not None)
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    fingerprint = _fingerprint(cfg, models, zs, tgt)
    if ckpt is not None and ckpt.exists():
        initial = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models]
        try:
            state = torch.load(ckpt, map_location=device, weights_only=False)
            if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
                raise ValueError("it belongs to another fit (config, model or data)")
            for m, s in zip(models, state["models"], strict=True):
                m.load_state_dict(s)
            for o, s in zip(opts, state["opts"], strict=True):
                o.load_state_dict(s)
            gen.set_state(state["gen"])
            rec.load(state["recorder"])
            start = int(state["next"])
        except Exception as e:  # an unreadable or foreign checkpoint: start over rather than crash
            reason = (str(e).strip().splitlines() or [""])[0][:200]
            warnings.warn(
                f"discarding checkpoint {ckpt} ({type(e).__name__}: {reason}); the fit starts from iteration 0",
                stacklevel=2,
            )
            # A failed load may have copied part of the state: restore everything it touched.
            for m, s in zip(models, initial, strict=True):
                m.load_state_dict(s)
            opts = _optimizers(models, cfg)
            gen = torch.Generator(device="cpu").manual_seed(int(minibatch_seed))
            rec = _Recorder(cfg, R, tgt.shape[1:], ref is not None)
            start = 0
            ckpt.unlink(missing_ok=True)
        del initial

    check_every_step = device.type == "cpu"
    amp_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
    use_amp = amp_dtype is not None
    show = progress if progress is not None else os.environ.get("DIPNB_PROGRESS", "1") != "0"
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.iterations, initial=start, desc=description, disable=not show, leave=False)
    t0 = time.perf_counter()
    last = cfg.iterations - 1
    try:
        for it in range(start, cfg.iterations):
            do_record = it % cfg.record_every == 0 or it == last
            do_snap = cfg.snapshot_every > 0 and (it % max(rec.snap_every, 1) == 0 or it == last)
            outs, losses = [], []
            diverged = False
            for m, z, opt in zip(models, zs, opts, strict=True):
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    if cfg.batch_pixels:
                        idx = torch.randint(n_pixels, (cfg.batch_pixels,), generator=gen).to(device)
                        pred = m.forward_at(z, idx)  # (1, C, B)
                        loss = F.mse_loss(pred.float(), tgt_flat[..., idx])
                    else:
                        out = m(z)  # (1, C, *spatial)
                        loss = F.mse_loss(out.float(), tgt)
                loss.backward()
                opt.step()
                # On the CPU reading the loss is free, so a divergence is caught at once; on a GPU
                # it would synchronise every step, so there it is checked at recorded iterations.
                if check_every_step and not do_record and not math.isfinite(float(loss.detach())):
                    do_record, diverged = True, True
                if do_record or do_snap:
                    if cfg.batch_pixels:  # the minibatch loss is not the image's: predict it whole
                        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                            out = m(z)
                    o = out.detach().float().contiguous()
                    outs.append(o)
                    losses.append(float(F.mse_loss(o, tgt)) if cfg.batch_pixels else float(loss.detach()))
            if do_record:
                if diverged or not all(math.isfinite(v) for v in losses):
                    rec.final = torch.cat(outs).cpu().numpy()
                    if not bool(torch.isfinite(tgt).all()):
                        hint = "the target contains NaN or infinite values: clean it"
                    else:
                        hint = "lower the learning rate"
                        hint += " or use fp32" if cfg.precision != "fp32" else ""
                    raise FitDivergedError(
                        f"the loss became {losses} at iteration {it} (lr={cfg.lr}, precision="
                        f"{cfg.precision}): {hint}",
                        record=rec.record(),
                    )
                rec.iterations.append(it)
                rec.loss.append(losses)
                if rec.psnr is not None:
                    rec.psnr.append([_psnr(o, ref) for o in outs])
                    for r, p in enumerate(rec.psnr[-1]):
                        if p > rec.best_psnr[r]:
                            rec.best_psnr[r], rec.best_out[r] = p, outs[r][0].cpu().numpy()
                if rec.eps is not None:
                    pairs = [
                        float(((outs[a] - outs[b]) ** 2).sum()) for a in range(R) for b in range(a + 1, R)
                    ]
                    rec.eps.append(float(np.mean(pairs)))
                for name, fn in metrics.items():
                    rec.metrics.setdefault(name, []).append([np.asarray(fn(o)) for o in outs])
                rec.final = torch.cat(outs).cpu().numpy()
            if do_snap:
                rec.add_snapshot(it, torch.cat(outs).cpu().numpy())
            bar.update(1)
            if ckpt is not None and cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0 and it < last:
                atomic_save(
                    {
                        "fingerprint": fingerprint,
                        "models": [m.state_dict() for m in models],
                        "opts": [o.state_dict() for o in opts],
                        "gen": gen.get_state(),
                        "recorder": rec.state(),
                        "next": it + 1,
                    },
                    ckpt,
                )
            for cb in callbacks:
                cb(it)
    finally:
        bar.close()
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    out = rec.record()
    out.seconds = time.perf_counter() - t0
    out.device = str(device)
    return out
