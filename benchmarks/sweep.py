"""Sweep wall time on a Dask LocalCluster of 1 worker vs N workers (one torch thread each).

    python benchmarks/sweep.py [--runs 8] [--workers 2] [--iterations 150]

Runs the same CPU-bound sweep (small DIP denoising runs, one thread each) on 1 worker and on
``--workers`` workers, each with an empty result cache, and prints the wall times and their
ratio. For runs that use one thread each the ratio approaches the number of cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8, help="configs in the sweep (seeds)")
    p.add_argument("--workers", type=int, default=2, help="workers of the parallel cluster")
    p.add_argument("--iterations", type=int, default=150, help="iterations per run")
    args = p.parse_args()
    os.environ["DIPNB_PROGRESS"] = "0"

    import torch

    import dipnb
    from dipnb.distributed import dask_executor
    from dipnb.experiments.cache import ResultStore

    fixed = dict(image="house", model="dip", width=32, depth=4, iterations=args.iterations, record_every=10)
    grid = {"seed": list(range(args.runs))}
    times = {}
    for n in (1, args.workers):
        with tempfile.TemporaryDirectory() as tmp, dask_executor(local_workers=n, threads_per_worker=1) as ex:
            # Warm the workers (imports) before timing.
            list(ex.map(abs, range(n)))
            t0 = time.perf_counter()
            res = dipnb.sweep("denoising", grid, executor=ex, store=ResultStore(tmp), profile="quick",
                              verbose=False, **fixed)
            times[n] = time.perf_counter() - t0
            assert len(res) == args.runs
    from dipnb.runtime import cpu_name

    load = os.getloadavg()
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"{args.runs} runs of {args.iterations} iterations")
    print(f"{'workers':>8}  {'wall s':>8}  {'s/run':>8}")
    for n, t in times.items():
        print(f"{n:>8}  {t:8.1f}  {t / args.runs:8.2f}")
    print(f"speed-up {args.workers} vs 1 worker: {times[1] / times[args.workers]:.2f}x")
    print(f"load average before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f} "
          "(well above 0: other work shared the CPUs)")


if __name__ == "__main__":
    main()
