"""Sweep wall time on a Dask LocalCluster of 1 worker vs N workers (one torch thread each), and
a composite experiment's wall time in one process with every thread vs N worker processes.

    python benchmarks/sweep.py [--runs 8] [--workers 2] [--iterations 150]
    python benchmarks/sweep.py --composite capacity [--workers 2] [--set KEY=VALUE ...]

The first form runs the same CPU-bound sweep (small DIP denoising runs, one thread each) on 1
worker and on ``--workers`` workers, each with an empty result cache, and prints the wall times
and their ratio. For runs that use one thread each the ratio approaches the number of cores.

The second runs one composite experiment of the quick profile (its sub-runs are cached runs of
another experiment) twice, each time from an empty cache: in this process with all of torch's
threads (``workers=1``, the default), then with ``--workers`` local worker processes of one
thread each (``workers=N``, ``DIPNB_WORKERS=N``). It prints both wall times and their ratio:
the evidence for choosing one or the other.
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
    p.add_argument("--composite", metavar="NAME", help="time this composite experiment instead (see above)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --composite: a config parameter of the experiment (repeatable)")
    args = p.parse_args()
    os.environ["DIPNB_PROGRESS"] = "0"
    if args.composite:
        composite(args)
        return

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


def composite(args) -> None:
    import torch

    import dipnb
    from dipnb.cli import _parse_sets
    from dipnb.experiments.cache import ResultStore
    from dipnb.runtime import cpu_name

    overrides = _parse_sets(args.composite, args.set)
    threads = torch.get_num_threads()
    load = os.getloadavg()
    times, results = {}, {}
    for workers in (1, args.workers):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            results[workers] = dipnb.run(args.composite, profile="quick", store=ResultStore(tmp), workers=workers,
                                         verbose=False, **overrides)
            times[workers] = time.perf_counter() - t0
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"{args.composite}, quick profile{', ' + ', '.join(args.set) if args.set else ''}")
    print(f"{'how':>40}  {'wall s':>8}")
    print(f"{f'1 process, {threads} torch threads':>40}  {times[1]:8.1f}")
    print(f"{f'{args.workers} worker processes, 1 thread each':>40}  {times[args.workers]:8.1f}")
    print(f"speed-up of the workers: {times[1] / times[args.workers]:.2f}x")
    print(f"load average before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f} "
          "(well above 0: other work shared the CPUs)")


if __name__ == "__main__":
    main()
