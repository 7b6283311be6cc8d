"""Benchmark one Adam step of the skip net: PyTorch's three CPU implementations, side by side.

:func:`dipnb.fit.fit` builds Adam with ``foreach=True``. This script shows what that choice is
worth and why ``fused=True`` is not used:

- **time**: one ``optimizer.step()`` of the 5-scale skip net at each width (gradients filled
  with noise), per-tensor (PyTorch's CPU default), ``foreach`` and ``fused``, interleaved and
  repeated, best of the repeats;
- **numbers**: the same short fit (house at 64x64, a 32-channel skip net) with each
  implementation, and how far its PSNR trajectory lands from the per-tensor one (0 dB means the
  same numbers).

Usage::

    python benchmarks/optimizer.py                     # widths 32 and 64, one thread
    python benchmarks/optimizer.py --widths 128 --threads 2 --fit-steps 0
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dipnb import data as D
from dipnb import models as M

IMPLEMENTATIONS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def step_ms(width: int, kw: dict, steps: int) -> float:
    """Milliseconds per ``Adam.step()`` of the skip net of ``width`` channels (gradients fixed)."""
    net = M.build_skip(seed=0, in_channels=3, out_channels=3, width=width, depth=5)
    params = list(net.parameters())
    gen = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    opt = torch.optim.Adam(params, lr=1e-3, **kw)
    for _ in range(5):  # state allocated, caches warm
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def psnr_trajectory(kw: dict, steps: int) -> np.ndarray:
    """PSNR (dB) every 25 steps of a plain Adam + MSE fit of house (64x64) with ``kw``."""
    target = torch.as_tensor(D.load_image("house", downsample_factor=4))[None]
    net = M.build_skip(seed=0, in_channels=3, out_channels=3, width=32, depth=5)
    z = D.input_noise((1, 3, 64, 64), seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, **kw)
    out = []
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(z), target)
        loss.backward()
        opt.step()
        if i % 25 == 24:
            out.append(-10 * np.log10(float(loss.detach())))  # MSE to the target: PSNR of the fit, dB
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--steps", type=int, default=100, help="timed Adam steps per measurement")
    ap.add_argument("--repeats", type=int, default=5, help="measurements per implementation (best is kept)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fit-steps", type=int, default=200, help="steps of the fit that compares the numbers; 0 skips")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    for width in args.widths:
        times: dict[str, list[float]] = {k: [] for k in IMPLEMENTATIONS}
        for _ in range(args.repeats):  # interleaved, so that a noisy moment hits every variant
            for name, kw in IMPLEMENTATIONS.items():
                times[name].append(step_ms(width, kw, args.steps))
        base = min(times["per-tensor"])
        cells = "  ".join(f"{k} {min(v):5.2f} ms ({base / min(v):.2f}x)" for k, v in times.items())
        print(f"skip net, {width:3d} channels: {cells}")
    if args.fit_steps:
        ref = psnr_trajectory(IMPLEMENTATIONS["per-tensor"], args.fit_steps)
        for name, kw in IMPLEMENTATIONS.items():
            traj = psnr_trajectory(kw, args.fit_steps)
            print(f"fit of house, {args.fit_steps} steps, {name:10s}: PSNR of the fit at the end {traj[-1]:.3f} dB,"
                  f" largest distance from per-tensor along the way {np.abs(traj - ref).max():.3f} dB")


if __name__ == "__main__":
    main()
