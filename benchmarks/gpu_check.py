"""The paper profile on a CUDA GPU: run the chapters' claims at the paper's sizes, time each step.

One command for a machine with a CUDA GPU (python3 with torch, numpy, scipy, matplotlib, tqdm
and pillow; ipywidgets, pooch and jupyter are not needed)::

    DIPNB_IMAGES=/path/to/images python benchmarks/gpu_check.py --report gpu_check.md

It runs, in the paper profile and in this order: decoupling-1d (conv and linear, seeds 0-2,
then the wide, deep and one-resolution controls), upsampling, gp-prior, lowfreq-noise,
trajectories on triangle-0.9, and one image (house) of the denoising table with all four
models, seed 0. Every claim is checked through :mod:`dipnb.claims`; each step is timed and its
peak memory measured. The Markdown report is rewritten after every step, so an interrupted run
still leaves one. With ``--budget-minutes`` it stops between steps once the budget is spent and
reports what it finished (a step that has started runs to its end).

Sizing: the time plan (``dipnb.plan``'s cost model for an H100 SXM at 10% of its datasheet
peaks, an estimate, not a measurement) puts the seven steps at 0.13, 0.36, 0.25, 0.88, 0.28,
0.35 and 0.97 minutes, 3.2 in all, within the 8 minutes this check is sized for; the analytic
checks of the upsampling step and the start of CUDA come on top. Run it with
``--budget-minutes 8`` to be sure it stops in time.

``--smoke`` runs the same steps in smoke mode (the paper's sizes, a handful of steps, nothing
checked): on a CPU it shows that every code path works before a GPU is booked.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# The steps: (title, chapter, claim names (None: all of the chapter's), seeds, options for the claims).
STEPS: list[tuple[str, str, tuple[str, ...] | None, tuple[int, ...], dict]] = [
    ("decoupling-1d: conv and linear, 3 seeds", "decoupling-1d", ("conv-separates", "linear-together"),
     (0, 1, 2), {}),
    ("decoupling-1d: wide, deep and one-resolution controls", "decoupling-1d",
     ("linear-together-wide-deep", "one-resolution-separates-less"), (0,), {}),
    ("upsampling", "upsampling", None, (0,), {}),
    ("gp-prior", "gp-prior", None, (0,), {}),
    ("lowfreq-noise", "lowfreq-noise", None, (0,), {}),
    ("trajectories: triangle-0.9", "trajectories",
     ("first-output-low-pass", "diverge-then-fall-back", "low-rings-first"), (0,), {"images": ("triangle-0.9",)}),
    ("denoising table: house, four models, seed 0", "denoising", None, (0,), {"images": ("house",)}),
]
IMAGES = ("barbara", "baboon", "triangle-0.9", "house")  # every image the steps read


@dataclass
class StepResult:
    title: str
    status: str = "not run"  # done | failed | skipped (budget) | not run
    seconds: float = 0.0
    peak_bytes: int | None = None
    computed: int = 0  # experiment runs computed (not loaded from the cache)
    outcomes: list = field(default_factory=list)
    error: str = ""


def _peak_reset(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(cuda: bool) -> int:
    if cuda:
        import torch

        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def _machine(cuda: bool) -> str:
    import torch

    from dipnb.runtime import cpu_name

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if cuda else "none"
    return (f"GPU: {gpu}; CPU: {cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads); "
            f"torch {torch.__version__} (CUDA {torch.version.cuda}); Python {platform.python_version()}")


def _fmt_peak(b: int | None, cuda: bool) -> str:
    if b is None:
        return "-"
    return f"{b / 2**30:.2f} GiB" + ("" if cuda else " (RSS)")


def write_report(path: Path, results: list[StepResult], *, profile: str, smoke: bool, cuda: bool,
                 budget: float | None, started: str, machine: str, total: float, finished: bool) -> None:
    """The Markdown report: the machine, one row per step, one row per claim and seed, every check."""
    lines = [f"# GPU check: the paper profile{' (SMOKE: not results)' if smoke else ''}", ""]
    lines += [f"- started {started}; {'finished' if finished else 'in progress'} after {total / 60:.1f} min"
              + (f" (budget {budget:g} min)" if budget else ""),
              f"- {machine}",
              f"- profile `{profile}`" + (", smoke mode: a handful of steps per fit, nothing checked" if smoke else ""),
              f"- peak memory per step: {'torch.cuda.max_memory_allocated' if cuda else 'process peak RSS'}", ""]
    lines += ["| step | status | minutes | runs computed | peak memory | claims passed |",
              "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in results:
        passed = [o.passed for o in r.outcomes]
        if smoke:
            ok = f"{len(passed)} evaluated (SMOKE, not checked)" if passed else "-"
        else:
            ok = f"{sum(p is True for p in passed)}/{len(passed)}" if passed else "-"
        status = r.status + (f": {r.error}" if r.error else "")
        lines.append(f"| {r.title} | {status} | {r.seconds / 60:.2f} | {r.computed} | "
                     f"{_fmt_peak(r.peak_bytes, cuda)} | {ok} |")
    lines += ["", "## Claims", "", "| claim | seed | result | worst check | minutes |",
              "| --- | ---: | --- | --- | ---: |"]
    for r in results:
        for o in r.outcomes:
            res = "SMOKE" if o.smoke else {True: "holds", False: "**FAILS**", None: "n/a"}[o.passed]
            worst = str(o.worst).replace("|", "\\|") if o.worst is not None else "no check applies"
            lines.append(f"| {o.claim.id} | {o.seed} | {res} | {worst} | {o.seconds / 60:.2f} |")
    lines += ["", "## Every check", ""]
    for r in results:
        for o in r.outcomes:
            lines += ["```", o.report(), "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", default="gpu_check.md", help="where to write the Markdown report")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop between steps once this many minutes have passed (default: no limit)")
    p.add_argument("--smoke", action="store_true",
                   help="smoke mode: the same steps at the paper's sizes, a handful of iterations, nothing checked")
    p.add_argument("--profile", default="paper", help="the profile (default paper)")
    p.add_argument("--cache", default=None,
                   help="result cache folder (default: DIPNB_CACHE, else a new temporary folder)")
    p.add_argument("--only", default=None, help="comma-separated step numbers to run (1-based), e.g. 1,3")
    args = p.parse_args(argv)

    def bad(msg: str) -> int:
        print(f"gpu_check: error: {msg}", file=sys.stderr)
        return 2

    if args.budget_minutes is not None and not args.budget_minutes > 0:
        return bad(f"--budget-minutes must be > 0, got {args.budget_minutes}")
    steps = list(enumerate(STEPS, 1))
    if args.only:
        try:
            keep = {int(x) for x in args.only.split(",") if x.strip()}
        except ValueError:
            return bad(f"--only takes step numbers 1..{len(STEPS)} separated by commas, got {args.only!r}")
        if not keep or not keep <= set(range(1, len(STEPS) + 1)):
            return bad(f"--only takes step numbers 1..{len(STEPS)}, got {args.only!r}")
        steps = [(i, s) for i, s in steps if i in keep]
    if not os.environ.get("DIPNB_IMAGES"):
        return bad("set DIPNB_IMAGES to a folder holding the test images (barbara, baboon, triangle-0.9, house)")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        return bad("no CUDA GPU found: this check is for a GPU (use --smoke to exercise the code paths on a CPU)")
    cache = args.cache or os.environ.get("DIPNB_CACHE") or tempfile.mkdtemp(prefix="dipnb-gpu-check-")
    os.environ["DIPNB_CACHE"] = cache
    os.environ.setdefault("DIPNB_PROGRESS", "0")
    os.environ.setdefault("MPLBACKEND", "Agg")
    trace = Path(cache) / "gpu_check_trace.txt"  # one line per computed run (the engine's DIPNB_TRACE)
    os.environ["DIPNB_TRACE"] = str(trace)

    try:
        import dipnb
    except ImportError:  # not installed: use the checkout this script belongs to
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import dipnb
    from dipnb import claims as C
    from dipnb import data

    try:
        profile, _ = dipnb.experiments.resolve_profile(args.profile)
        for name in IMAGES:
            data.image_path(name)  # present and sha256-checked, before anything long runs
        for _, (_, chapter, names, _, _) in steps:
            C.claims_for(chapter, names)
    except dipnb.DipnbError as e:
        return bad(str(e).splitlines()[0])

    report = Path(args.report)
    machine = _machine(cuda)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.perf_counter()
    results = [StepResult(f"{i}. {title}") for i, (title, *_rest) in steps]
    budget_s = args.budget_minutes * 60 if args.budget_minutes else None

    def save(finished: bool) -> None:
        write_report(report, results, profile=profile, smoke=args.smoke, cuda=cuda, budget=args.budget_minutes,
                     started=started, machine=machine, total=time.perf_counter() - t_start, finished=finished)

    print(f"gpu_check: {machine}")
    print(f"gpu_check: profile {profile}{' SMOKE' if args.smoke else ''}, cache {cache}, report {report}")
    failed_any = False
    for res, (_, (_title, chapter, names, seeds, options)) in zip(results, steps, strict=True):
        if budget_s is not None and time.perf_counter() - t_start >= budget_s:
            res.status = "skipped (budget)"
            continue
        print(f"gpu_check: {res.title} ...", flush=True)
        n0 = len(trace.read_text().splitlines()) if trace.exists() else 0
        _peak_reset(cuda)
        t0 = time.perf_counter()
        try:
            res.outcomes = C.evaluate(chapter, profile=profile, seeds=seeds, smoke=args.smoke, names=names,
                                      **options)
            res.status = "done"
        except Exception as e:  # report it and go on with the next step
            res.status = "failed"
            res.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".replace("|", "\\|")
            failed_any = True
        res.seconds = time.perf_counter() - t0
        res.peak_bytes = _peak(cuda)
        res.computed = (len(trace.read_text().splitlines()) if trace.exists() else 0) - n0
        for o in res.outcomes:
            print(o.report())
        print(f"gpu_check: {res.title}: {res.status} in {res.seconds / 60:.2f} min, "
              f"peak {_fmt_peak(res.peak_bytes, cuda)}", flush=True)
        save(finished=False)
    save(finished=True)
    total = (time.perf_counter() - t_start) / 60
    fails = [o for r in results for o in r.outcomes if o.passed is False]
    print(f"gpu_check: finished in {total:.1f} min; {len(fails)} claim outcome(s) fail; report in {report}")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
