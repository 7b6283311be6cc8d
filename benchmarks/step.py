"""Benchmark one optimisation step of the DIP skip net: a paper-style loop against the engine.

Runs side by side, on this machine, for each image size (default 64x64 and 128x128; the skip net
of depth 5 with 128 channels, RGB):

- ``paper``: a straightforward loop in the style of the paper's code: Adam + MSE, then a second
  forward pass to record the output, copied to numpy and scored (PSNR) at every step; plain
  memory layout, glibc's default allocator settings.
- ``engine``: :func:`dipnb.fit.fit` with its defaults (one forward pass per step, channels_last on
  the CPU, ``mallopt`` thresholds set once), recording PSNR every step and a snapshot every 10.
- ``engine-contiguous`` / ``engine-no-mallopt``: the engine with one of its two CPU tunings
  switched off, to show what each is worth.
- ``engine-bf16``: the engine under bf16 autocast (the reduced-precision option).

Every measurement runs in its own fresh process (allocator settings are process-wide), with the
same thread count. It prints the median ms per step, the ratio to the paper-style loop, the work
per step counted with ``torch.utils.flop_counter.FlopCounterMode`` on one forward + backward
(convolutions and matrix products; BN and element-wise work are not counted), and the achieved
GFLOP/s against a measured fp32 matrix-multiply peak (2048 x 2048, best of 10). Finally it checks
that bf16 keeps the denoising chapter's claim: the best PSNR of a short DIP denoising run (the
quick profile's) under bf16 against fp32.

Usage::

    python benchmarks/step.py                        # 64 and 128, 10 timed steps, all cores
    python benchmarks/step.py --sizes 128 --steps 20 --threads 2
    python benchmarks/step.py --quality-iterations 0  # timings only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("paper", "engine", "engine-contiguous", "engine-no-mallopt", "engine-bf16")
WIDTH, DEPTH, CHANNELS = 128, 5, 3


# --------------------------------------------------------------------------------------------
# Workers: each runs in a fresh process and prints one JSON line
# --------------------------------------------------------------------------------------------


def _problem(size: int):
    """A smooth synthetic RGB image, its noisy version (sigma 25/255) and the fixed input z."""
    import numpy as np

    from dipnb import data as D

    clean = np.clip(D.lowfreq_noise((CHANNELS, size, size), max_cycles=6, std=0.2, seed=0) + 0.5, 0, 1)
    noisy = D.add_gaussian_noise(clean, 25 / 255, seed=1)
    z = D.noise_like((1, CHANNELS, size, size), seed=2)
    return clean.astype(np.float32), noisy, z


def _net(seed: int = 0):
    from dipnb.models import build_skip

    return build_skip(seed=seed, in_channels=CHANNELS, out_channels=CHANNELS, width=WIDTH, depth=DEPTH)


def _paper_loop(size: int, warmup: int, steps: int) -> list[float]:
    """The paper-style loop: forward twice per step, snapshots copied to numpy every step."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    clean, noisy, z = _problem(size)
    target = torch.from_numpy(noisy)[None]
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    psnrs, snapshots, times = [], [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        out = net(z)
        loss = F.mse_loss(out, target)
        loss.backward()
        opt.step()
        with torch.no_grad():
            out = net(z)  # the second forward pass, to record the output
        snap = out.detach().cpu().numpy()[0].copy()
        psnrs.append(10 * np.log10(1.0 / np.mean((snap - clean) ** 2)))
        snapshots.append(snap)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def _engine_loop(size: int, warmup: int, steps: int, precision: str, channels_last) -> list[float]:
    from dipnb.fit import FitConfig, fit

    clean, noisy, z = _problem(size)
    stamps: list[float] = []
    cfg = FitConfig(
        iterations=warmup + steps + 1, record_every=1, snapshot_every=10, precision=precision,
        channels_last=channels_last,
    )
    fit(_net(), z, noisy, cfg, reference=clean, progress=False, device="cpu",
        callbacks=[lambda it: stamps.append(time.perf_counter())])
    return [b - a for a, b in zip(stamps[warmup:-1], stamps[warmup + 1:], strict=True)]


def _matmul_peak(n: int = 2048, reps: int = 10) -> dict:
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n**3 / best / 1e9
    return out


def _quality(precision: str, iterations: int) -> dict:
    import tempfile

    import dipnb

    # A fresh cache folder: no stored result, and no checkpoint of an earlier, interrupted run
    # to resume from (which would make the timing meaningless).
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DIPNB_CACHE"] = tmp
        res = dipnb.run("denoising", profile="quick", precision=precision, iterations=iterations,
                        cache=False, progress=False, verbose=False, device="cpu")
    s = res.summary()
    return {"best_psnr": s["best_psnr"], "best_iteration": s["best_iteration"],
            "final_psnr": s["final_psnr"], "noisy_psnr": s["noisy_psnr"], "seconds": res.meta["seconds"]}


def _worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kind = args.worker
    if kind == "matmul":
        out = _matmul_peak()
    elif kind == "quality":
        out = _quality(args.precision, args.quality_iterations)
    elif kind == "paper":
        out = {"times": _paper_loop(args.size, args.warmup, args.steps)}
    else:
        precision = "bf16" if kind == "engine-bf16" else "fp32"
        channels_last = False if kind == "engine-contiguous" else None
        out = {"times": _engine_loop(args.size, args.warmup, args.steps, precision, channels_last)}
    out["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(out), flush=True)


def _spawn(kind: str, args, **extra) -> dict:
    """Run one measurement in a fresh process with the same thread count."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--steps", str(args.steps)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), DIPNB_PROGRESS="0")
    if kind in ("paper", "engine-no-mallopt"):
        env["DIPNB_NO_MALLOPT"] = "1"  # glibc's defaults, as the paper's code ran
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _gflop_per_step(size: int) -> float:
    """FLOPs of one forward + backward, counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    _, _, z = _problem(size)
    net = _net()
    with FlopCounterMode(display=False) as counter:
        net(z).mean().backward()
    return counter.get_total_flops() / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="image sizes (default 64 128)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    p.add_argument("--quality-iterations", type=int, default=600,
                   help="iterations of the bf16-vs-fp32 denoising check (the quick profile's 600; 0 skips)")
    p.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant {bad[0]!r}: allowed are {', '.join(VARIANTS)}")
    if any(s % 32 or s < 64 for s in args.sizes):
        p.error(f"sizes must be multiples of 32 and >= 64 (the depth-5 skip net halves them 5 times), got {args.sizes}")
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("steps and threads must be >= 1, warmup >= 0")

    import torch

    from dipnb.runtime import cpu_name

    torch.set_num_threads(1)
    load0 = os.getloadavg()
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} threads")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} "
          "(other processes on the machine inflate every timing below)")
    peak = _spawn("matmul", args)
    print(f"matmul 2048^2 peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")

    rows = []
    for size in args.sizes:
        gflop = _gflop_per_step(size)
        base = None
        for v in variants:
            times = _spawn(v, args, size=size)["times"]
            ms = 1e3 * statistics.median(times)
            base = ms if v == "paper" else base
            rows.append({
                "size": size, "variant": v, "ms_per_step": ms, "ms_min": 1e3 * min(times),
                "gflop_per_step": gflop, "gflops": gflop / (ms / 1e3),
                "pct_fp32_peak": 100 * gflop / (ms / 1e3) / peak["fp32"],
                "speedup_vs_paper": (base / ms) if base else None,
            })
            print(f"  {size}x{size} {v:<18} {ms:8.1f} ms/step", flush=True)

    print()
    hdr = (f"{'size':>7}  {'variant':<18} {'ms/step':>8} {'min':>8} {'x paper':>8} {'GFLOP':>6} "
           f"{'GFLOP/s':>8} {'% peak':>7}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        sp = f"{r['speedup_vs_paper']:.2f}" if r["speedup_vs_paper"] else "-"
        print(f"{r['size']:>4}^2  {r['variant']:<18} {r['ms_per_step']:8.1f} {r['ms_min']:8.1f} {sp:>8} "
              f"{r['gflop_per_step']:6.2f} {r['gflops']:8.1f} {r['pct_fp32_peak']:6.0f}%")
    print("(% peak: useful forward+backward FLOPs per second over the fp32 matmul peak; the paper-style")
    print(" loop also runs a second, uncounted forward pass each step)")
    by = {(r["size"], r["variant"]): r for r in rows}
    for size in args.sizes:
        e, b = by.get((size, "engine")), by.get((size, "engine-bf16"))
        if e and b:
            print(f"{size}x{size}: bf16 autocast is {e['ms_per_step'] / b['ms_per_step']:.2f}x the fp32 engine "
                  f"(target >= 1.7x); fp32 engine at {e['pct_fp32_peak']:.0f}% of the matmul peak (target >= 85%)")

    quality = None
    if args.quality_iterations > 0:
        print(f"\nbf16 vs fp32 on the denoising chapter's claim (quick profile: house 64x64, DIP 128 ch, "
              f"{args.quality_iterations} iterations, sigma 25):")
        quality = {pr: _spawn("quality", args, precision=pr, quality_iterations=args.quality_iterations)
                   for pr in ("fp32", "bf16")}
        for pr, q in quality.items():
            print(f"  {pr}: best PSNR {q['best_psnr']:.2f} dB at iteration {q['best_iteration']}, final "
                  f"{q['final_psnr']:.2f} dB (noisy input {q['noisy_psnr']:.2f} dB), {q['seconds']:.0f} s")
        diff = quality["bf16"]["best_psnr"] - quality["fp32"]["best_psnr"]
        verdict = "holds" if abs(diff) <= 0.5 else "does NOT hold"
        print(f"  difference {diff:+.2f} dB: the claim (best PSNR within 0.5 dB of fp32) {verdict} under bf16")

    load1 = os.getloadavg()
    print(f"\nload average at the end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu_name(), "torch": torch.__version__, "threads": args.threads,
                       "load_start": load0, "load_end": load1, "matmul_peak_gflops": peak,
                       "rows": rows, "quality": quality}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
