"""Where the book's time goes: every chapter executed top to bottom, timed, with what it computed.

Each chapter runs in a fresh kernel (as "Restart and run all" does), in the quick profile, one
after another in the book's order, and is timed from the kernel's start to its last cell. Every
run the chapter computes instead of loading is logged by the engine (``DIPNB_TRACE``), so the
table also gives the runs computed and their compute seconds per experiment.

Two modes:

- **cold** (default): each chapter gets its own empty results cache, so its time is what a reader
  waits for who runs only that chapter, with nothing cached.
- **demo** (``--archive PATH-or-URL``): the archive (``make demo-cache`` writes
  ``_build/html/demo-cache.zip``) is imported once into an empty cache, which every chapter then
  uses: the time a lecturer waits in front of the class. A complete archive leaves no run to
  compute; the target is 30 s a chapter.

Usage::

    python benchmarks/book_time.py                                   # cold, every chapter
    python benchmarks/book_time.py --chapters quickstart stopping
    make book demo-cache && python benchmarks/book_time.py --archive _build/html/demo-cache.zip
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_TARGET_S = 30.0  # what a live demo can afford per chapter


def chapters_in_book_order() -> list[str]:
    """The chapter notebooks listed in ``_toc.yml``, in its order (names without ``.ipynb``)."""
    import yaml

    names: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("notebooks/"):
                names.append(Path(f).stem)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return names


def execute(chapter: str, timeout: int) -> tuple[float, str]:
    """Run one chapter in a fresh kernel with the current environment: ``(seconds, error or "")``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except Exception as e:  # a failing chapter is a row of the table, not the end of it
        return time.perf_counter() - t0, f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:80]}"
    return time.perf_counter() - t0, ""


def read_trace(path: Path) -> list[tuple[str, float]]:
    """``(experiment, compute seconds)`` of every run the engine computed (``DIPNB_TRACE`` lines)."""
    if not path.is_file():
        return []
    return [(p[0], float(p[3])) for p in (line.split() for line in path.read_text().splitlines()) if len(p) == 4]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", help="demo mode: a path or URL of a results archive (cache export)")
    p.add_argument("--chapters", nargs="+", help="chapter names (default: every chapter)")
    p.add_argument("--timeout", type=int, default=900, help="seconds a cell may take (default 900)")
    args = p.parse_args(argv)

    known = chapters_in_book_order()
    todo = args.chapters or known
    unknown = [c for c in todo if c not in known]
    if unknown:
        print(f"book_time.py: unknown chapter(s) {unknown}; the chapters are: {' '.join(known)}", file=sys.stderr)
        return 2
    if args.archive and "://" not in args.archive and not Path(args.archive).is_file():
        print(f"book_time.py: no archive at {args.archive}: run `make book demo-cache` first", file=sys.stderr)
        return 2

    from dipnb.experiments import cache
    from dipnb.runtime import cpu_name

    rows, per_experiment = [], collections.defaultdict(lambda: [0, 0.0])
    with tempfile.TemporaryDirectory(prefix="dipnb-book-time-") as tmp:
        os.environ.update({"DIPNB_PROFILE": "quick", "DIPNB_PROGRESS": "0",
                           "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
        mode = "cold: an empty cache per chapter"
        if args.archive:
            shared = Path(tmp) / "demo"
            t0 = time.perf_counter()
            out = cache.import_results(args.archive, store=cache.ResultStore(shared))
            mode = (f"demo: {out['imported']} results of {args.archive} imported in "
                    f"{time.perf_counter() - t0:.1f} s")
        print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; {mode}", flush=True)
        for chapter in todo:
            os.environ["DIPNB_CACHE"] = str(shared if args.archive else Path(tmp) / f"cold-{chapter}")
            trace = Path(tmp) / f"trace-{chapter}.txt"
            os.environ["DIPNB_TRACE"] = str(trace)
            seconds, error = execute(chapter, args.timeout)
            runs = read_trace(trace)
            for name, s in runs:
                per_experiment[name][0] += 1
                per_experiment[name][1] += s
            rows.append((chapter, seconds, len(runs), sum(s for _, s in runs), error))
            print(f"  {chapter:14s} {seconds:7.1f} s, {len(runs)} run(s) computed{'  ' + error if error else ''}",
                  flush=True)

    demo = bool(args.archive)
    last = f"under {DEMO_TARGET_S:.0f} s" if demo else "of which computing (s)"
    print(f"\n| chapter | seconds | runs computed | {last} |")
    print("| --- | ---: | ---: | --- |")
    for chapter, seconds, n, compute, error in rows:
        if error:
            verdict = "failed: " + error
        elif demo:
            verdict = "yes" if seconds < DEMO_TARGET_S else "no"
        else:
            verdict = f"{compute:.0f}"
        print(f"| {chapter} | {seconds:.1f} | {n} | {verdict} |")
    print(f"\ntotal {sum(r[1] for r in rows):.0f} s for {len(rows)} chapters, each in a fresh kernel "
          "(kernel start included)")
    if per_experiment:
        print("\n| experiment | runs computed | compute seconds |\n| --- | ---: | ---: |")
        for name, (n, s) in sorted(per_experiment.items(), key=lambda kv: -kv[1][1]):
            print(f"| {name} | {n} | {s:.0f} |")
    return 1 if any(r[4] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
