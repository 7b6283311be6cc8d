"""Command line: ``python -m dipnb list`` and ``python -m dipnb run NAME [--set key=value ...]``.

It fills the same config dataclasses the notebooks use and writes the same cache the book
reads. Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import asdict

import numpy as np

from .errors import DipnbError

__all__ = ["main", "parse_value"]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not np.isfinite(x):
        return None if np.isnan(x) else (1e308 if x > 0 else -1e308)
    return x


def parse_value(text: str, tp, name: str):
    """Parse ``text`` as a value of the dataclass field type ``tp``; ValueError says what was expected."""
    from .params import type_name

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is not None and type(None) in args:  # Optional[X]
        if text.lower() in ("none", "null", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return parse_value(text, inner[0], name)
    try:
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
        if origin is tuple:
            inner = args[0]
            parts = [p for p in text.replace(" ", "").split(",") if p]
            return tuple(parse_value(p, inner, name) for p in parts)
    except ValueError:
        pass
    else:
        return text
    raise ValueError(f"--set {name}={text!r}: expected a value of type {type_name(tp)}")


def _parse_sets(name: str, sets: list[str]) -> dict:
    from .experiments import get

    exp = get(name)
    hints = typing.get_type_hints(exp.config)
    out = {}
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set needs key=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in hints:
            raise ValueError(f"unknown parameter {k!r} for experiment {name!r}: allowed are {', '.join(hints)}")
        out[k] = parse_value(v.strip(), hints[k], k)
    return out


def _parse_grid(name: str, items: list[str]) -> dict:
    """``key=v1,v2`` (``a..b`` is an inclusive integer range) or ``k1,k2=x1:y1,x2:y2`` (varied together)."""
    from .experiments import get

    hints = typing.get_type_hints(get(name).config)
    grid: dict = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--grid needs key=v1,v2,..., got {item!r}")
        k, v = item.split("=", 1)
        keys = [x.strip() for x in k.split(",")]
        for key in keys:
            if key not in hints:
                raise ValueError(f"unknown parameter {key!r} for experiment {name!r}: allowed are {', '.join(hints)}")
        values = []
        for part in [p.strip() for p in v.split(",") if p.strip()]:
            if len(keys) == 1 and ".." in part and hints[keys[0]] is int:
                lo, hi = part.split("..", 1)
                try:
                    values += list(range(int(lo), int(hi) + 1))
                except ValueError:
                    raise ValueError(f"--grid {keys[0]}: bad range {part!r}, expected e.g. 0..4") from None
                continue
            sub = part.split(":") if len(keys) > 1 else [part]
            if len(sub) != len(keys):
                raise ValueError(f"--grid {k}: {part!r} must give {len(keys)} values separated by ':'")
            vals = tuple(parse_value(x, hints[key], key) for x, key in zip(sub, keys, strict=True))
            values.append(vals if len(keys) > 1 else vals[0])
        if not values:
            raise ValueError(f"--grid {k} has no values")
        grid[tuple(keys) if len(keys) > 1 else keys[0]] = values
    return grid


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _table(rows: list[dict]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cmd_sweep(args) -> int:
    from contextlib import nullcontext

    from .experiments import SweepFailure, sweep

    grid = _parse_grid(args.name, args.grid or [])
    fixed = _parse_sets(args.name, args.set or [])
    if args.scheduler and args.local_cluster:
        raise ValueError("give --scheduler or --local-cluster, not both")
    if args.workers is not None and (args.scheduler or args.local_cluster):
        raise ValueError("--workers is for local worker processes: give it without --scheduler or --local-cluster")
    if args.local_cluster is not None and args.local_cluster < 1:
        raise ValueError(f"--local-cluster must be >= 1 workers, got {args.local_cluster}")
    if args.scheduler or args.local_cluster:
        from .distributed import dask_executor

        if args.scheduler:
            ctx = dask_executor(args.scheduler)
        else:
            ctx = dask_executor(local_workers=args.local_cluster, threads_per_worker=args.threads_per_worker)
    else:
        ctx = nullcontext(None)
    with ctx as executor:
        results = sweep(
            args.name, grid, profile=args.profile, errors="collect", progress=not args.quiet,
            workers=executor if executor is not None else args.workers, **fixed,
        )
    grid_keys = [x for key in grid for x in (key if isinstance(key, tuple) else (key,))]
    rows, failures = [], []
    for r in results:
        if isinstance(r, SweepFailure):
            failures.append(r)
            rows.append({**r.params, "status": "FAILED"})
        else:
            params = {k: getattr(r.config, k) for k in grid_keys}
            rows.append({**params, **{k: v for k, v in _scalars(r.summary()).items() if k not in grid_keys},
                         "status": "cached" if r.cached else "computed"})
    print(_table(rows))
    for f in failures:
        print(f"dipnb: failed: {f}", file=sys.stderr)
    if args.json:
        out = {
            "experiment": args.name,
            "results": [
                {"params": f.params, "error": f.error} if isinstance(f, SweepFailure)
                else {"config": _jsonable(asdict(f.config)), "cached": f.cached, "summary": _jsonable(f.summary())}
                for f in results
            ],
        }
        with open(args.json, "w") as fh:
            fh.write(json.dumps(out, indent=2) + "\n")
        print(f"dipnb: sweep summary written to {args.json}")
    return 1 if failures else 0


def _cmd_list(args) -> int:
    from .experiments import get, names

    for n in names():
        exp = get(n)
        print(f"{n}: {exp.description}")
        for pname, tname, default, comment, allowed in exp.parameters():
            profs = ", ".join(f"{p}={v[pname]!r}" for p, v in exp.profiles.items() if pname in v)
            extra = f" [{profs}]" if profs else ""
            allowed = f"; {allowed}" if allowed else ""
            print(f"    {pname} ({tname}, default {default!r}{allowed}){extra}  {comment}")
        print()
    return 0


def _cmd_run(args) -> int:
    from .claims import smoke_from_env
    from .experiments import make_config, run_config
    from .experiments.engine import use_workers
    from .runtime import pick_device

    overrides = _parse_sets(args.name, args.set or [])
    smoke = args.smoke or smoke_from_env()  # DIPNB_SMOKE=1 makes every run a smoke run, as in the API
    cfg, prof, reason = make_config(args.name, args.profile, smoke=smoke, **overrides)
    dev = pick_device(args.device)
    with use_workers(args.workers, dev, smoke=smoke) as workers:
        res = run_config(
            args.name, cfg, profile=prof, reason=reason, cache=not args.no_cache,
            progress=not args.quiet, device=dev, smoke=smoke, workers=workers,
        )
    summary = _jsonable(res.summary())
    out = {
        "experiment": args.name,
        "profile": prof,
        "config": _jsonable(asdict(cfg)),
        "cached": res.cached,
        "meta": _jsonable(res.meta),
        "summary": summary,
    }
    if res.smoke:
        out = {"SMOKE": True, **out, "config": _jsonable(asdict(res.config))}
        peak = res.meta.get("peak_memory_bytes")
        if peak is not None:
            kind = res.meta["peak_memory_kind"]
            print(f"dipnb: SMOKE run of {args.name}: peak memory {peak / 2**30:.2f} GiB ({kind})")
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
        print(f"dipnb: summary written to {args.json}")
    else:
        print(json.dumps(summary, indent=2))
    return 0


def claims_table(outcomes: list) -> list[dict]:
    """One row per claim: chapter, claim, passes out of the seeds, the worst check, minutes."""
    rows: dict[str, dict] = {}
    for o in outcomes:
        row = rows.setdefault(o.claim.id, {"chapter": o.claim.chapter, "claim": o.claim.name, "outcomes": []})
        row["outcomes"].append(o)
    out = []
    for row in rows.values():
        os_ = row.pop("outcomes")
        checks = [c for o in os_ for c in o.checks]
        worst = min(checks, key=lambda c: c.relative_margin) if checks else None
        smoke = any(o.smoke for o in os_)
        passes = sum(o.passed is True for o in os_)
        row["passes"] = "SMOKE" if smoke else (f"{passes}/{len(os_)}" if checks else "n/a")
        row["worst"] = (f"{worst.what}: {_short(worst.value)} {worst.op} {_short(worst.bound)}"
                        if worst is not None else "no check applies")
        row["minutes"] = round(sum(o.seconds for o in os_) / 60, 2)
        out.append(row)
    return out


def _short(x: float) -> str:
    from .claims import _fmt

    return _fmt(x)


def _cmd_claims(args) -> int:
    import time

    from . import claims as C

    if args.seeds < 1:
        raise ValueError(f"--seeds must be an integer >= 1 (seeds 0..N-1), got {args.seeds}")
    todo = C.claims_for(args.chapter)  # an unknown chapter fails here, before anything runs
    from .experiments import resolve_profile

    prof, reason = resolve_profile(args.profile)
    print(f"dipnb: {len(todo)} claims x {args.seeds} seeds, profile {prof} ({reason})"
          + (", SMOKE" if args.smoke else ""), flush=True)
    outcomes = []
    for c in todo:
        for seed in range(args.seeds):
            o = c.evaluate(prof, seed, smoke=args.smoke or None)
            outcomes.append(o)
            if not args.quiet:
                status = "SMOKE" if o.smoke else {True: "holds", False: "FAILS", None: "n/a"}[o.passed]
                print(f"dipnb: {c.id} seed {seed}: {status} ({o.seconds:.1f} s)", flush=True)
    rows = claims_table(outcomes)
    print(_table(rows))
    if args.json:
        out = {
            "profile": prof, "seeds": args.seeds, "smoke": any(o.smoke for o in outcomes),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "table": rows,
            "outcomes": [
                {"claim": o.claim.id, "sentence": o.claim.sentence, "seed": o.seed, "passed": o.passed,
                 "seconds": o.seconds,
                 "checks": [{"what": c.what, "value": c.value, "op": c.op, "bound": c.bound, "passed": c.passed,
                             "margin": c.margin, "note": c.note} for c in o.checks]}
                for o in outcomes
            ],
        }
        with open(args.json, "w") as fh:
            fh.write(json.dumps(_jsonable(out), indent=2) + "\n")
        print(f"dipnb: claims written to {args.json}")
    return 1 if any(o.passed is False for o in outcomes) else 0


def _cmd_cache(args) -> int:
    from .experiments import cache

    if args.cache_command == "export":
        only = cache.read_used(args.used) if args.used else None
        out = cache.export_results(args.path, experiments=args.experiment, only=only)
        skipped = f" ({out['skipped']} left out: another engine version, smoke runs or unreadable)" \
            if out["skipped"] else ""
        print(f"dipnb: {out['results']} results written to {out['path']} ({out['bytes'] / 2**20:.1f} MiB){skipped}")
        return 0
    out = cache.import_results(args.source)
    print(f"dipnb: {out['imported']} results imported into {cache.default_root()}, "
          f"{out['present']} already present")
    return 0


def _cmd_plan(args) -> int:
    from .plan import format_table, plan

    result = plan(args.profile, args.device, args.chapters or None)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(_jsonable(result), indent=2) + "\n")
        print(f"dipnb: plan written to {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dipnb", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their parameters")
    pl = sub.add_parser("plan", help="runs, GFLOP, peak memory and estimated minutes of every chapter")
    pl.add_argument("chapters", nargs="*", metavar="CHAPTER", help="only these chapters (default: all)")
    pl.add_argument("--profile", default=None, help="quick, paper, colab or auto (default: DIPNB_PROFILE or auto)")
    pl.add_argument("--device", default="cpu",
                    help="cpu (this machine, measured by a probe of a few seconds), t4, a100 or h100 (estimates)")
    pl.add_argument("--json", metavar="PATH", help="write every chapter's numbers and the cost model's rates as JSON")
    r = sub.add_parser("run", help="run (or load from the cache) one experiment")
    r.add_argument("name", help="experiment name (see `list`)")
    r.add_argument("--profile", default=None, help="quick, paper, colab or auto (default: DIPNB_PROFILE or auto)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="set a config parameter (repeatable)")
    r.add_argument("--json", metavar="PATH", help="write the summary, config and metadata as JSON")
    r.add_argument("--device", default=None, help="auto, cuda, mps or cpu")
    r.add_argument("--no-cache", action="store_true", help="compute even if a cached result exists")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--smoke", action="store_true",
                   help="smoke run: the profile's sizes, a handful of steps, peak memory reported; never a result")
    r.add_argument("--workers", type=int, default=None, metavar="N",
                   help="a composite's uncached sub-runs in N local processes, one torch thread each, "
                        "on a CPU; 1: here, one after another (default DIPNB_WORKERS, else one per core)")
    c = sub.add_parser("claims", help="check every chapter's claims over seeds 0..N-1 and print a table")
    c.add_argument("--chapter", default=None, help="only this chapter's claims (default: every chapter)")
    c.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per claim (default 1)")
    c.add_argument("--profile", default=None, help="quick, paper, colab or auto (default: DIPNB_PROFILE or auto)")
    c.add_argument("--json", metavar="PATH", help="write every check of every seed as JSON")
    c.add_argument("--smoke", action="store_true", help="smoke runs: exercise the code, check nothing")
    c.add_argument("--quiet", action="store_true", help="no line per claim and seed")
    k = sub.add_parser("cache", help="export stored results to one archive, or import one (a path or URL)")
    ksub = k.add_subparsers(dest="cache_command", required=True)
    ke = ksub.add_parser("export", help="write the cached results (DIPNB_CACHE) to a zip archive")
    ke.add_argument("path", help="the archive to write, e.g. demo-cache.zip")
    ke.add_argument("--experiment", action="append", metavar="NAME", help="only this experiment (repeatable)")
    ke.add_argument("--used", metavar="FILE",
                    help="only the results listed in FILE, written by runs with DIPNB_USED=FILE")
    ki = ksub.add_parser("import", help="check an archive whole, then add its results to the cache")
    ki.add_argument("source", help="a path or an http(s) URL of an archive written by `cache export`")
    s = sub.add_parser("sweep", help="run an experiment over a grid of configs, here or on a Dask cluster")
    s.add_argument("name", help="experiment name (see `list`)")
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="values to sweep (repeatable): key=v1,v2 / seed=0..4 / model,width=linear:128,linear:2048")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="a fixed config parameter (repeatable)")
    s.add_argument("--profile", default=None, help="quick, paper, colab or auto")
    s.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler address, e.g. tcp://host:8786")
    s.add_argument("--local-cluster", type=int, metavar="N", help="start a local Dask cluster of N worker processes")
    s.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per local worker (default 1)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="without a cluster: the uncached configs in N local processes, one torch thread each, "
                        "on a CPU; 1: here, one after another (default DIPNB_WORKERS, else one per core)")
    s.add_argument("--json", metavar="PATH", help="write every config and summary as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "plan":
            return _cmd_plan(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "cache":
            return _cmd_cache(args)
        if args.command == "claims":
            return _cmd_claims(args)
    except (DipnbError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"dipnb: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dipnb: interrupted; finished results are cached and a rerun resumes", file=sys.stderr)
        return 130
    return 2
