"""Write the book's appendix "How robust is each claim" from the JSON files of ``dipnb claims``.

    python benchmarks/claims_appendix.py claims-*.json --out book/robustness.md

Each file is the ``--json`` output of ``python -m dipnb claims --chapter NAME --seeds N`` (what
``benchmarks/claims.sh`` writes). The page lists every chapter of ``dipnb.claims`` in the book's
order: for a chapter with a file, one row per claim (how many seeds it held on, its weakest
check over all seeds, its compute minutes); for a chapter without one, that it was not measured.
Nothing is computed here: the page says only what the files say.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HEADER = """\
# How robust is each claim

Every chapter checks its claims on one seed, the one the page shows. This appendix runs the
same checks (the definitions in `dipnb.claims`, which the chapters' check cells call) on seeds
{first} to {last}: a seed picks the network's weights and its input, and for a claim on a noisy
image, the noise. A claim that holds on one seed but not on most would be luck; the table shows
how often each one holds.

How it was made: `bash benchmarks/claims.sh {profile} {seeds}`, then
`python benchmarks/claims_appendix.py claims-*.json --out book/robustness.md`, on {date}, on
{machine}, in the {profile} profile. "Weakest check" is the check, over all seeds, that came
closest to its bound (or missed it by most), with its value and its bound.
"""


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != x:
            return "NaN"
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def weakest(outcomes: list[dict]) -> str:
    """The check of ``outcomes`` with the least margin relative to its bound, as one phrase."""
    checks = [c for o in outcomes for c in o["checks"]]
    if not checks:
        return "no check applies"

    def rel(c):
        m = c.get("margin")
        if m is None or m != m:
            return float("-inf")
        return m / max(abs(c["bound"]) if c["bound"] else 1.0, 1e-12)

    c = min(checks, key=rel)
    note = f" ({c['note']})" if c.get("note") else ""
    return f"{c['what']}: {_fmt(c['value'])} {c['op']} {_fmt(c['bound'])}{note}"


def chapter_rows(doc: dict) -> list[dict]:
    """One row per claim of one chapter's file: id, sentence, passes, runs, weakest check, minutes."""
    rows: dict[str, dict] = {}
    for o in doc["outcomes"]:
        r = rows.setdefault(o["claim"], {"claim": o["claim"], "sentence": o["sentence"], "outcomes": []})
        r["outcomes"].append(o)
    out = []
    for r in rows.values():
        os_ = r.pop("outcomes")
        applies = [o for o in os_ if o["passed"] is not None]
        r["passes"] = sum(o["passed"] is True for o in applies)
        r["seeds"] = len(applies)
        r["weakest"] = weakest(os_)
        r["minutes"] = sum(o["seconds"] for o in os_) / 60
        out.append(r)
    return out


def render(docs: dict[str, dict], chapters: list[str], machine: str,
           registered: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """The appendix page (MyST Markdown) for the files in ``docs`` (chapter -> JSON document).

    ``registered`` (chapter -> ``(claim id, sentence)`` of every claim ``dipnb.claims`` defines
    today): a claim of a measured chapter that its file lacks is listed as not measured.
    """
    any_doc = next(iter(docs.values()))
    seeds = any_doc["seeds"]
    days = sorted({d["created"][:10] for d in docs.values()})
    date = days[0] if len(days) == 1 else f"{', '.join(days[:-1])} and {days[-1]} (chapters rerun after a change)"
    text = HEADER.format(first=0, last=seeds - 1, profile=any_doc["profile"], seeds=seeds,
                         date=date, machine=machine)
    weak, total = [], 0
    for ch in chapters:
        text += f"\n## {{doc}}`/notebooks/{ch}`\n\n"
        if ch not in docs:
            text += ("Not measured in this run: run `python -m dipnb claims --chapter "
                     f"{ch} --seeds {seeds}` to add it.\n")
            continue
        rows = chapter_rows(docs[ch])
        minutes = sum(r["minutes"] for r in rows)
        text += f"{len(rows)} claims, {minutes:.1f} minutes of compute for {seeds} seeds.\n\n"
        text += "| claim | holds on | weakest check |\n| --- | ---: | --- |\n"
        for r in rows:
            total += 1
            held = f"{r['passes']}/{r['seeds']}" if r["seeds"] else "n/a"
            if r["seeds"] and r["passes"] < 0.9 * r["seeds"]:
                weak.append((ch, r))
                held = f"**{held}**"
            sentence = r["sentence"].replace("|", "\\|")
            text += f"| {sentence} | {held} | {r['weakest'].replace('|', '/')} |\n"
        missing = [sentence for cid, sentence in (registered or {}).get(ch, [])
                   if cid not in {r["claim"] for r in rows}]
        if missing:
            text += "\nNot measured in this run (the file holds no outcome for it):\n\n"
            text += "".join(f"- {m}\n" for m in missing)
    text += "\n## Summary\n\n"
    measured = [c for c in chapters if c in docs]
    text += (f"{total} claims of {len(measured)} chapters measured "
             f"({', '.join(measured)}); {len(chapters) - len(measured)} chapters not yet measured.\n")
    if weak:
        text += ("\nClaims that held on fewer than 9 seeds in 10 (in bold above). Each needs either a "
                 "stronger experiment or a weaker sentence on its chapter's page:\n\n")
        for ch, r in weak:
            text += f"- {ch}: {r['sentence']} ({r['passes']}/{r['seeds']})\n"
    else:
        text += "\nEvery measured claim held on at least 9 seeds in 10.\n"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="JSON files of python -m dipnb claims --json, one per chapter")
    p.add_argument("--out", default="book/robustness.md", help="the page to write")
    p.add_argument("--machine", default=None,
                   help="the machine the files were made on (default: this one's CPU, core count and torch)")
    args = p.parse_args(argv)

    import os

    import torch

    import dipnb.claims as C
    from dipnb.runtime import cpu_name

    chapters = C.chapters()
    docs: dict[str, dict] = {}
    for f in args.files:
        try:
            doc = json.loads(Path(f).read_text())
            names = {o["claim"].split("/")[0] for o in doc["outcomes"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"claims_appendix: {f} is not a JSON file of `dipnb claims --json` ({e})", file=sys.stderr)
            return 2
        if len(names) != 1 or not names <= set(chapters):
            print(f"claims_appendix: {f} must hold the claims of one chapter of {', '.join(chapters)}; "
                  f"it holds {sorted(names)}", file=sys.stderr)
            return 2
        docs[names.pop()] = doc
    seeds = {d["seeds"] for d in docs.values()}
    profiles = {d["profile"] for d in docs.values()}
    if len(seeds) != 1 or len(profiles) != 1:
        print(f"claims_appendix: the files mix seed counts {sorted(seeds)} or profiles {sorted(profiles)}; "
              "give files of one run", file=sys.stderr)
        return 2
    machine = args.machine or f"{cpu_name()} ({os.cpu_count()} CPUs, torch {torch.__version__})"
    registered = {ch: [(c.id, c.sentence) for c in C.claims_for(ch)] for ch in chapters}
    Path(args.out).write_text(render(docs, chapters, machine, registered))
    print(f"claims_appendix: {args.out} ({len(docs)} of {len(chapters)} chapters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
