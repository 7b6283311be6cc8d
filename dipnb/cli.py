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
    from .experiments.engine import _type_name

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
    raise ValueError(f"--set {name}={text!r}: expected a value of type {_type_name(tp)}")


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


def _cmd_list(args) -> int:
    from .experiments import get, names

    for n in names():
        exp = get(n)
        print(f"{n}: {exp.description}")
        for pname, tname, default, comment in exp.parameters():
            profs = ", ".join(f"{p}={v[pname]!r}" for p, v in exp.profiles.items() if pname in v)
            extra = f" [{profs}]" if profs else ""
            print(f"    {pname} ({tname}, default {default!r}){extra}  {comment}")
        print()
    return 0


def _cmd_run(args) -> int:
    from .experiments import make_config, run_config

    overrides = _parse_sets(args.name, args.set or [])
    cfg, prof, reason = make_config(args.name, args.profile, **overrides)
    res = run_config(
        args.name, cfg, profile=prof, reason=reason, cache=not args.no_cache,
        progress=not args.quiet, device=args.device,
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
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
        print(f"dipnb: summary written to {args.json}")
    else:
        print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dipnb", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their parameters")
    r = sub.add_parser("run", help="run (or load from the cache) one experiment")
    r.add_argument("name", help="experiment name (see `list`)")
    r.add_argument("--profile", default=None, help="quick, paper or auto (default: DIPNB_PROFILE or auto)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="set a config parameter (repeatable)")
    r.add_argument("--json", metavar="PATH", help="write the summary, config and metadata as JSON")
    r.add_argument("--device", default=None, help="auto, cuda, mps or cpu")
    r.add_argument("--no-cache", action="store_true", help="compute even if a cached result exists")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "run":
            return _cmd_run(args)
    except (DipnbError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"dipnb: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dipnb: interrupted; finished results are cached and a rerun resumes", file=sys.stderr)
        return 130
    return 2
