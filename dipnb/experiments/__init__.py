"""The book's experiments. Each module in this package registers one or more with
:func:`~dipnb.experiments.engine.experiment`; they are imported on first use."""

from __future__ import annotations

import importlib
import pkgutil

from .engine import (
    ENGINE_VERSION,
    Context,
    Experiment,
    Result,
    SweepFailure,
    Workers,
    experiment,
    get,
    make_config,
    names,
    resolve_profile,
    result_key,
    run,
    run_config,
    sweep,
)

__all__ = [
    "ENGINE_VERSION",
    "Context",
    "Experiment",
    "Result",
    "SweepFailure",
    "Workers",
    "experiment",
    "get",
    "make_config",
    "names",
    "resolve_profile",
    "result_key",
    "run",
    "run_config",
    "sweep",
]

_LOADED = False
_INFRASTRUCTURE = {"engine", "cache"}


def _load_all() -> None:
    """Import every experiment module of this package once (each registers itself)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _INFRASTRUCTURE and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
