"""dipnb: the engine behind *The Spectral Bias of the Deep Image Prior*, an explorable textbook.

Modules: :mod:`~dipnb.models` (the networks), :mod:`~dipnb.fit` (the fitting loop),
:mod:`~dipnb.spectral` (frequency analysis), :mod:`~dipnb.data` (images and signals),
:mod:`~dipnb.experiments` (named, cached experiments), :mod:`~dipnb.plots` and
:mod:`~dipnb.widgets` (figures for the book), :mod:`~dipnb.cli` (``python -m dipnb``).
"""

__version__ = "0.1.0"

from .errors import ConfigError, DataError, DipnbError, FitDivergedError  # noqa: E402


def run(name: str, **kwargs):
    """Shortcut for :func:`dipnb.experiments.run`."""
    from .experiments import run as _run

    return _run(name, **kwargs)


def sweep(name: str, grid, **kwargs):
    """Shortcut for :func:`dipnb.experiments.sweep`."""
    from .experiments import sweep as _sweep

    return _sweep(name, grid, **kwargs)


__all__ = ["__version__", "run", "sweep", "ConfigError", "DataError", "DipnbError", "FitDivergedError"]

_SUBMODULES = (
    "claims", "cli", "data", "experiments", "fit", "metrics", "models", "plots", "runtime", "spectral", "widgets",
)


def __getattr__(name: str):
    """Import a submodule on first access, so ``dipnb.experiments`` works after ``import dipnb``."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
