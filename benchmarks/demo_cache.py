"""How long each chapter takes, top to bottom, once the demo cache is loaded.

A lecturer imports the site's ``demo-cache.zip`` (``make demo-cache`` writes it) and runs a
chapter in front of the class. This script does exactly that on this machine and prints one row
per chapter: it imports the archive into a fresh, empty results cache, then executes each chapter
in a fresh kernel (as "Restart and run all" does) and times it from the kernel's start to the last
cell. Every run that the chapter had to compute instead of loading is counted (``DIPNB_TRACE``);
with a complete archive there is none. Chapters run one after another, in the book's order.

Usage::

    make book demo-cache
    python benchmarks/demo_cache.py                     # every chapter, _build/html/demo-cache.zip
    python benchmarks/demo_cache.py --archive URL --chapters quickstart stopping
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 30.0  # what a live demo can afford per chapter


def chapters_in_book_order() -> list[str]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
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

    walk(toc)
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", default=str(ROOT / "_build" / "html" / "demo-cache.zip"),
                   help="a path or URL of the archive (default: the built site's)")
    p.add_argument("--chapters", nargs="+", help="chapter names (default: every chapter)")
    p.add_argument("--timeout", type=int, default=900, help="seconds a cell may take (default 900)")
    args = p.parse_args(argv)

    known = chapters_in_book_order()
    todo = args.chapters or known
    unknown = [c for c in todo if c not in known]
    if unknown:
        print(f"demo_cache.py: unknown chapter(s) {unknown}; the chapters are: {' '.join(known)}", file=sys.stderr)
        return 2
    if "://" not in args.archive and not Path(args.archive).is_file():
        print(f"demo_cache.py: no archive at {args.archive}: run `make book demo-cache` first", file=sys.stderr)
        return 2

    import nbformat
    from nbclient import NotebookClient

    from dipnb.experiments import cache
    from dipnb.plan import _cpu_name

    with tempfile.TemporaryDirectory(prefix="dipnb-demo-") as tmp:
        os.environ.update({
            "DIPNB_CACHE": str(Path(tmp) / "results"), "DIPNB_PROFILE": "quick", "DIPNB_PROGRESS": "0",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        })
        t0 = time.perf_counter()
        out = cache.import_results(args.archive, store=cache.ResultStore(Path(tmp) / "results"))
        t_import = time.perf_counter() - t0
        print(f"machine: {_cpu_name()}, {os.cpu_count()} CPUs; archive {args.archive}: "
              f"{out['imported']} results imported in {t_import:.1f} s")
        rows = []
        for chapter in todo:
            trace = Path(tmp) / f"trace-{chapter}.txt"
            os.environ["DIPNB_TRACE"] = str(trace)
            nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
            client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(ROOT / "notebooks")}})
            t0 = time.perf_counter()
            error = ""
            try:
                client.execute()
            except Exception as e:  # a failing chapter is a row of the table, not the end of it
                error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:80]}"
            seconds = time.perf_counter() - t0
            computed = len(trace.read_text().splitlines()) if trace.is_file() else 0
            rows.append((chapter, seconds, computed, error))
            print(f"  {chapter:14s} {seconds:6.1f} s, {computed} run(s) computed{'  ' + error if error else ''}",
                  flush=True)

    print(f"\n| chapter | seconds, cache loaded | runs computed | under {TARGET_S:.0f} s |")
    print("| --- | ---: | ---: | --- |")
    for chapter, seconds, computed, error in rows:
        verdict = "failed: " + error if error else ("yes" if seconds < TARGET_S else "no")
        print(f"| {chapter} | {seconds:.1f} | {computed} | {verdict} |")
    total = sum(r[1] for r in rows)
    print(f"\ntotal {total:.0f} s for {len(rows)} chapters; each in a fresh kernel, kernel start included")
    return 1 if any(r[3] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
