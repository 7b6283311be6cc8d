"""The on-disk result cache: one file per (experiment, config, engine version).

Results are pickled dictionaries written atomically (a temporary file renamed into place), so
an interrupted write never leaves a half-written result under the final name; a file that is
truncated or unreadable all the same is treated as missing and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from dataclasses import asdict, fields
from pathlib import Path

__all__ = ["ResultStore", "config_key", "default_root"]


def default_root() -> Path:
    """``DIPNB_CACHE`` if set, else the user's cache folder (``~/.cache/dipnb/results`` on Linux)."""
    env = os.environ.get("DIPNB_CACHE")
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("dipnb")) / "results"


def config_key(name: str, cfg, engine_version: str) -> str:
    """A stable hash of the experiment name, every config field and the engine version."""
    # Fields marked ``metadata={"cache": False}`` (e.g. where to write a file) do not change the result.
    values = asdict(cfg)
    values = {f.name: values[f.name] for f in fields(cfg) if f.metadata.get("cache", True)}
    payload = json.dumps(
        {"experiment": name, "config": values, "engine": engine_version},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class ResultStore:
    """Results of experiments on disk under ``root/<experiment>/<key>.pkl``."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, name: str, key: str) -> Path:
        return self.root / name / f"{key}.pkl"

    def checkpoint_path(self, name: str, key: str) -> Path:
        """Where a run in progress keeps its resumable state."""
        return self.root / name / f"{key}.ckpt"

    def load(self, name: str, key: str) -> dict | None:
        """The stored entry, or None if absent or unreadable (a warning says which)."""
        p = self.path(name, key)
        if not p.exists():
            return None
        try:
            with open(p, "rb") as f:
                entry = pickle.load(f)
            if not isinstance(entry, dict) or "data" not in entry:
                raise ValueError("not a dipnb result")
            return entry
        except Exception as e:  # truncated, corrupt, or from an incompatible version
            warnings.warn(f"ignoring unreadable cache file {p} ({type(e).__name__}: {e}); recomputing", stacklevel=2)
            return None

    def save(self, name: str, key: str, entry: dict) -> Path:
        p = self.path(name, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return p

    def clear(self, name: str | None = None) -> int:
        """Delete stored results (of one experiment, or all). Returns how many files were removed."""
        base = self.root / name if name else self.root
        n = 0
        for p in base.rglob("*.pkl") if base.exists() else []:
            p.unlink()
            n += 1
        return n
