"""Named experiments: a frozen config dataclass -> a result, computed once and cached on disk.

Every chapter's computation is registered here with :func:`experiment`. :func:`run` resolves the
profile (``quick`` for a CPU, ``paper`` for the paper's sizes on a GPU), fills the config from the
profile's values and the caller's overrides, validates it before anything is computed, and
either loads the stored result or computes and stores it. :func:`sweep` does the same for a grid
of configs and hands the missing ones to any :class:`concurrent.futures.Executor`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ConfigError
from ..params import convert_all, describe, type_name
from ..runtime import describe_device, pick_device
from .cache import ResultStore, config_key

__all__ = [
    "ENGINE_VERSION",
    "PROFILES",
    "Experiment",
    "Context",
    "Result",
    "experiment",
    "get",
    "names",
    "resolve_profile",
    "in_colab",
    "make_config",
    "run",
    "run_config",
    "sweep",
    "SweepFailure",
    "grid_combinations",
    "compute_task",
    "SMOKE_STEPS",
    "smoke_overrides",
    "on_result_stored",
    "Workers",
    "use_workers",
    "workers_from_env",
    "usable_cores",
]

# Bump the suffix when a change of the engine changes what a stored result means.
ENGINE_VERSION = f"{__version__}+r1"
# quick: a CPU; paper: the paper's sizes on a GPU; colab: a free Colab GPU (a T4), each chapter in
# 10 minutes or less by `python -m dipnb plan --profile colab --device t4`.
PROFILES = ("quick", "paper", "colab")


@dataclass(frozen=True)
class Experiment:
    """A registered experiment. ``func(cfg, ctx) -> dict`` computes the result's data."""

    name: str
    config: type
    func: Callable[[Any, Context], dict]
    profiles: Mapping[str, Mapping[str, Any]]
    summary: Callable[[dict, Any], dict] | None
    description: str
    after: Callable[[Result], None] | None = None  # run on every result, computed or loaded (e.g. write a file)
    version: int = 1  # bump when the experiment's code changes what it returns: old results are recomputed
    smoke: Mapping[str, Any] | str | None = None  # how smoke mode shortens it (see smoke_overrides)

    def parameters(self) -> list[tuple[str, str, Any, str, str]]:
        """``(name, type, default, comment, allowed)`` for every config field; ``allowed`` is its
        declared constraint in words (:func:`dipnb.params.describe`), or ``""``."""
        hints = typing.get_type_hints(self.config)
        out = []
        comments = _field_comments(self.config)
        for f in fields(self.config):
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append((f.name, type_name(hints[f.name]), default, comments.get(f.name, ""), describe(f)))
        return out


class Workers:
    """Where a composite experiment computes its sub-runs that are not cached (see
    :meth:`Context.run_many`): a given executor (a Dask cluster's, say), or ``n`` local worker
    processes with ``threads`` torch threads each, started on first use and closed by :func:`run`.
    """

    def __init__(self, n: int = 0, *, executor: Executor | None = None, threads: int | None = 1):
        if executor is None and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
            raise ConfigError(f"local workers must be an integer >= 2, got {n!r}")
        self.n = n
        self.threads = None if executor is not None else threads  # a Dask worker pins its own
        self._executor = executor
        self._own = executor is None

    @property
    def local(self) -> bool:
        """True for worker processes this object starts itself, False for a given executor."""
        return self._own

    def executor(self) -> Executor:
        if self._executor is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child inherits torch's thread pools in an unknown state
            self._executor = ProcessPoolExecutor(self.n, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def close(self) -> None:
        if self._own and self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def __repr__(self) -> str:
        if self._own:
            return f"Workers({self.n} local processes, {self.threads} torch thread(s) each)"
        return f"Workers({type(self._executor).__name__})"


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def workers_from_env() -> int:
    """``DIPNB_WORKERS``: local worker processes for a composite's sub-runs. ``auto`` (the
    default) is one per usable core; 1 runs the sub-runs in this process, one after another."""
    v = os.environ.get("DIPNB_WORKERS", "auto").strip().lower() or "auto"
    if v == "auto":
        return usable_cores()
    if not v.isdigit() or int(v) < 1:
        raise ConfigError(
            f"DIPNB_WORKERS={v!r} is not allowed: use auto or an integer >= 1 (1: no worker processes)"
        )
    return int(v)


@contextmanager
def use_workers(
    workers: int | Executor | Workers | None, device: torch.device, *, smoke: bool = False
) -> Iterator[Workers | None]:
    """The :class:`Workers` that ``workers`` (see :func:`run`) asks for on ``device``, or None for
    none; worker processes started here are closed on exit.

    In smoke mode the default (``workers=None``) is none: a sub-run of a handful of steps takes
    less time than starting a worker process that imports torch. A number given is obeyed.
    """
    if isinstance(workers, Workers):
        yield workers
        return
    if workers is None and smoke:
        yield None
        return
    n = workers_from_env() if workers is None else workers
    if isinstance(n, Executor):
        pool = Workers(executor=n)
    elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"workers={n!r} is not allowed: use an integer >= 1 or a concurrent.futures.Executor")
    elif n == 1 or device.type != "cpu":  # one GPU: its runs would queue on it anyway
        pool = None
    else:
        pool = Workers(n)
    try:
        yield pool
    finally:
        if pool is not None:
            pool.close()


@dataclass
class Context:
    """What an experiment function may use besides its config."""

    name: str
    profile: str
    device: torch.device
    progress: bool
    store: ResultStore
    key: str
    use_cache: bool = True
    smoke: bool = False  # a smoke run: every nested run is one too
    child_peaks: list = field(default_factory=list)  # peak memory (bytes) of the nested runs computed
    workers: Workers | None = None  # where run_many computes the sub-runs that are not cached

    @property
    def checkpoint(self) -> Path:
        """A file where this run's fit may keep resumable state (see :func:`dipnb.fit.fit`)."""
        return self.store.checkpoint_path(self.name, self.key)

    def fit_kwargs(self, description: str | None = None) -> dict:
        """Keyword arguments for :func:`dipnb.fit.fit`: device, progress, checkpoint, label."""
        return {
            "device": self.device,
            "progress": self.progress,
            "checkpoint": self.checkpoint,
            "description": description or self.name,
        }

    def run(self, name: str, **overrides) -> Result:
        """Run (or load) another experiment with this context's profile, device and cache."""
        res = run(
            name, profile=self.profile, device=self.device, progress=self.progress, store=self.store,
            cache=self.use_cache, verbose=False, smoke=self.smoke, workers=self.workers, **overrides,
        )
        self._note_peak(res)
        return res

    def run_many(self, runs: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Result]:
        """Run (or load) the independent sub-runs ``[(experiment, overrides), ...]`` of a composite.

        Where this run has workers (:func:`run`'s ``workers``, ``DIPNB_WORKERS``, or an executor
        such as a Dask cluster's), the sub-runs not in the cache are computed there first,
        through :func:`sweep`, each stored in the cache as it arrives; otherwise they run here,
        one after another, as :meth:`run` runs them. A single missing sub-run also runs here,
        with all of this process's threads, rather than in one new local worker with one.

        Returns:
            One :class:`Result` per sub-run, in the order given.
        """
        runs = [(n, dict(ov)) for n, ov in runs]
        if self.workers is not None and self.use_cache:
            # Only the sub-runs with no stored file go to the workers (each once, however often it
            # is asked for): the stored ones are loaded once, below, not once here and once there.
            by_name: dict[str, dict[str, dict]] = {}
            for n, ov in runs:
                cfg = make_config(n, self.profile, smoke=self.smoke, **ov)[0]
                if not self.store.path(n, _stored_key(n, cfg, self.smoke)).exists():
                    by_name.setdefault(n, {})[repr(sorted(ov.items()))] = ov
            for n, unique in by_name.items():
                done = _sweep_combos(
                    n, list(unique.values()), profile=self.profile, workers=self.workers,
                    store=self.store, progress=self.progress, errors="raise", verbose=False,
                    smoke=self.smoke,
                )
                for res in done:
                    self._note_peak(res)
        return [self.run(n, **ov) for n, ov in runs]

    def _note_peak(self, res: Result) -> None:
        if not res.cached and res.meta.get("peak_memory_bytes") is not None:
            self.child_peaks.append(res.meta["peak_memory_bytes"])


@dataclass
class Result:
    """A computed or loaded result: its config, its data, and how it was made."""

    name: str
    config: Any
    data: dict
    meta: dict = field(default_factory=dict)
    cached: bool = False

    @property
    def profile(self) -> str:
        return self.meta.get("profile", "?")

    @property
    def smoke(self) -> bool:
        """True for a smoke run (a handful of steps to exercise the code): never a result to show."""
        return bool(self.meta.get("smoke", False))

    def summary(self) -> dict:
        """The JSON-ready summary the command line writes (experiment-specific).

        A smoke run's summary starts with ``"SMOKE"``: its numbers come from a handful of steps.
        """
        exp = get(self.name)
        if exp.summary is not None:
            out = exp.summary(self.data, self.config)
        else:
            out = {k: v for k, v in self.data.items() if isinstance(v, (int, float, str, bool, type(None)))}
        if self.smoke:
            out = {"SMOKE": f"smoke run ({SMOKE_STEPS} steps): exercises the code, not a result", **out}
        return out

    def __getitem__(self, key: str):
        return self.data[key]


_REGISTRY: dict[str, Experiment] = {}

# Called in the computing process with (experiment name, key) right after a result is stored.
_STORED_HOOKS: list[Callable[[str, str], None]] = []


def on_result_stored(callback: Callable[[str, str], None]) -> Callable[[], None]:
    """Call ``callback(name, key)`` in this process each time a computed result has been stored.

    The result is on disk when the callback runs, before it is returned to the caller, so a
    callback sees exactly the moment at which a run is finished and safe. Used for audits, and by
    the tests to stop a worker at the worst moment (stored, not yet collected).

    Returns:
        A function that removes the callback again.
    """
    _STORED_HOOKS.append(callback)

    def remove() -> None:
        if callback in _STORED_HOOKS:
            _STORED_HOOKS.remove(callback)

    return remove


def experiment(
    name: str,
    *,
    config: type,
    profiles: Mapping[str, Mapping[str, Any] | str] | None = None,
    summary: Callable[[dict, Any], dict] | None = None,
    after: Callable[[Result], None] | None = None,
    version: int = 1,
    smoke: Mapping[str, Any] | str | None = None,
):
    """Register ``func(cfg, ctx) -> dict`` as the experiment ``name``.

    Args:
        config: a frozen dataclass whose every field has a default.
        profiles: ``{"quick": {...}, "paper": {...}}`` field values per profile; a field a
            profile does not name keeps its default. A profile given as another's name
            (``"colab": "paper"``) is that profile.
        summary: ``(data, cfg) -> dict`` of JSON-ready values for the command line.
        after: called with every :class:`Result` of this experiment, computed or loaded, for side
            effects that depend on config fields left out of the cache key (``metadata={"cache": False}``).
        version: part of the cache key: bump it when a change of ``func`` changes its results.
        smoke: how smoke mode shortens the experiment (see :func:`smoke_overrides`): ``None``
            shortens the iteration-like fields found by name; a mapping ``{field: value or
            function of the value}`` names them itself (``{}``: nothing to shorten, it runs whole);
            a string says why it cannot be shortened (smoke mode then raises :class:`ConfigError`).
    """
    profiles = dict(profiles or {})
    for p, vals in profiles.items():
        if isinstance(vals, str):
            if not isinstance(profiles.get(vals), Mapping):
                raise ValueError(f"{name}: profile {p!r} names {vals!r}, which is not a profile given by its values")
            profiles[p] = vals = profiles[vals]
        if p not in PROFILES:
            raise ValueError(f"{name}: unknown profile {p!r}")
        names_ = {f.name for f in fields(config)}
        bad = set(vals) - names_
        if bad:
            raise ValueError(f"{name}: profile {p!r} sets unknown fields {sorted(bad)}")

    def wrap(func):
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Experiment(
            name, config, func, profiles, summary, doc[0] if doc else "", after, version, smoke
        )
        return func

    return wrap


def _version(name: str) -> str:
    """The version string in ``name``'s cache keys: the engine's, and the experiment's own after its first."""
    v = get(name).version
    return ENGINE_VERSION if v == 1 else f"{ENGINE_VERSION}/v{v}"


def result_key(name: str, cfg, *, smoke: bool = False) -> str:
    """The cache key of experiment ``name`` for ``cfg``: a hash of its fields, the files they name,
    the engine's version and the experiment's own (20 hex digits). A smoke run has a key of its own."""
    return config_key(name, cfg, _version(name) + ("+smoke" if smoke else ""))


def get(name: str) -> Experiment:
    """The registered experiment ``name``; :class:`ConfigError` listing the known ones if unknown."""
    _discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}: known are {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Names of all registered experiments."""
    _discover()
    return sorted(_REGISTRY)


def _discover() -> None:
    from . import _load_all

    _load_all()


def in_colab() -> bool:
    """Whether this process runs in a Google Colab runtime.

    A Colab kernel has imported ``google.colab``. A process it starts (``!python -m dipnb ...``)
    has not, but inherits Colab's environment: ``COLAB_RELEASE_TAG`` in current runtimes (set by
    Kaggle's notebooks too, whose images are built on Colab's: Kaggle/kagglehub pull request 230;
    their T4 and P100 GPUs suit the colab profile as well) and ``COLAB_GPU`` in older ones (present
    even without a GPU, as "0": clearml/clearml pull request 515).
    """
    if "google.colab" in sys.modules:
        return True
    return any(os.environ.get(v) is not None for v in ("COLAB_RELEASE_TAG", "COLAB_GPU"))


def resolve_profile(profile: str | None = None) -> tuple[str, str]:
    """Resolve ``quick`` / ``paper`` / ``colab`` / ``auto`` (default: ``DIPNB_PROFILE``, else ``auto``).

    ``auto`` is ``colab`` on a CUDA GPU inside Colab (:func:`in_colab`), ``paper`` on any other
    CUDA GPU, ``quick`` without one.

    Returns:
        ``(profile, reason)``: the profile used and why, e.g. ``("quick", "auto: no CUDA GPU")``.
    """
    asked = profile or os.environ.get("DIPNB_PROFILE") or "auto"
    if asked == "auto":
        if torch.cuda.is_available():
            if in_colab():
                return "colab", "auto: CUDA GPU in Colab"
            return "paper", "auto: CUDA GPU found"
        return "quick", "auto: no CUDA GPU"
    if asked not in PROFILES:
        raise ConfigError(f"unknown profile {asked!r}: allowed are quick, paper, auto, colab")
    return asked, "chosen" if profile else "from DIPNB_PROFILE"


def _field_comments(cls) -> dict[str, str]:
    """The ``# comment`` after each field in the dataclass's source (and its bases'), for
    ``dipnb list``."""
    import inspect

    out: dict[str, str] = {}
    for c in reversed(cls.__mro__[:-1]):  # bases first, so a subclass's comment wins
        try:
            src = inspect.getsource(c)
        except (OSError, TypeError):
            continue
        for line in src.splitlines():
            s = line.strip()
            if ":" in s and "#" in s and not s.startswith(("#", "def ", "class ")):
                out[s.split(":", 1)[0].strip()] = s.split("#", 1)[1].strip()
    return out


def make_config(name: str, profile: str | None = None, *, smoke: bool = False, **overrides):
    """Build and validate the config of experiment ``name`` for a profile, with overrides.

    Lists and tuples given for tuple fields are accepted. Unknown parameters, values of the
    wrong type and out-of-range values raise :class:`ConfigError` naming what is allowed.
    With ``smoke=True`` the fields of :func:`smoke_overrides` are shortened before the config
    is built (so a caller's shortened ``iterations`` never meets a longer default elsewhere).

    Returns:
        ``(cfg, profile, reason)``.
    """
    exp = get(name)
    prof, reason = resolve_profile(profile)
    allowed = [f.name for f in fields(exp.config)]
    unknown = [k for k in overrides if k not in allowed]
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for experiment {name!r}: allowed are {', '.join(allowed)}"
        )
    values = dict(exp.profiles.get(prof, {}))
    values.update(overrides)
    for f in fields(exp.config):  # defaults too: every value is converted below, once
        if f.init and f.name not in values:
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
    # The cache key hashes these values: 25 and 25.0 for a float field must be one key. Types and
    # constraints are checked when the config is built (dipnb.params.validate).
    values = convert_all(exp.config, values.items())
    if smoke:
        full = {f.name: f.default for f in fields(exp.config) if f.default is not dataclasses.MISSING}
        full.update(values)
        values.update(smoke_overrides(name, full))
    try:
        cfg = exp.config(**values)
    except ConfigError as e:
        if not smoke:
            raise
        raise ConfigError(f"experiment {name!r}: the smoke-mode config is invalid: {e}") from e
    return cfg, prof, reason


# Smoke mode: the paper's sizes, a handful of steps. A smoke run exercises every code path
# (building, fitting, recording, summaries) and measures peak memory; it is never a result.
SMOKE_STEPS = 4  # optimisation steps of every fit in smoke mode
SMOKE_SAMPLES = 4  # networks drawn, where an experiment draws many (covariance estimates)
_SMOKE_BY_NAME: dict[str, Callable[[int], int]] = {
    "iterations": lambda v: min(v, SMOKE_STEPS),
    "record_every": lambda v: min(v, 1),  # 0 (never) stays 0
    "snapshot_every": lambda v: min(v, 1),
    "samples": lambda v: min(v, SMOKE_SAMPLES),
    "kernel_samples": lambda v: min(v, SMOKE_SAMPLES),
    "seeds": lambda v: min(v, 1),
    "runs": lambda v: min(v, 1),
}


def smoke_overrides(name: str, cfg) -> dict:
    """The config fields that smoke mode shortens for experiment ``name``, and their new values.

    ``cfg`` is a config of the experiment, or a dict of its field values.

    An experiment declares them with ``@experiment(..., smoke=...)``. Without a declaration,
    the fields are found by name: ``iterations`` and ``*_iterations`` are cut to
    ``SMOKE_STEPS``, ``record_every`` and ``snapshot_every`` to 1, ``samples`` and
    ``kernel_samples`` to ``SMOKE_SAMPLES``, ``seeds`` and ``runs`` to 1. Sizes (image side,
    channels, depth) are never touched: a smoke run builds every model at the profile's size.

    Raises:
        ConfigError: the experiment cannot be shortened (its declaration says why, or it has
            no iteration-like field and declares nothing).
    """
    exp = get(name)
    if isinstance(exp.smoke, str):
        raise ConfigError(f"experiment {name!r} cannot run in smoke mode: {exp.smoke}")
    values = cfg if isinstance(cfg, Mapping) else {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    out = {}
    if exp.smoke is not None:
        for k, rule in exp.smoke.items():
            out[k] = rule(values[k]) if callable(rule) else rule
        return out
    for f in fields(exp.config):
        v = values[f.name]
        if not isinstance(v, int) or isinstance(v, bool):
            continue
        rule = _SMOKE_BY_NAME.get(f.name)
        if rule is None and f.name.endswith("_iterations"):
            rule = _SMOKE_BY_NAME["iterations"]
        if rule is not None:
            out[f.name] = rule(v)
    if not any(k == "iterations" or k.endswith("_iterations") or k in ("samples", "kernel_samples") for k in out):
        raise ConfigError(
            f"experiment {name!r} cannot run in smoke mode: it has no iteration-like field to shorten "
            "and declares none (@experiment(smoke=...))"
        )
    return out


def _smoke_config(name: str, cfg):
    """``cfg`` with the fields of :func:`smoke_overrides` shortened (validated again)."""
    try:
        return dataclasses.replace(cfg, **smoke_overrides(name, cfg))
    except ConfigError as e:
        if "smoke mode" in str(e):
            raise
        raise ConfigError(f"experiment {name!r}: the smoke-mode config is invalid: {e}") from e


def _smoke_env() -> bool:
    """``DIPNB_SMOKE`` (``1``: every run is a smoke run, e.g. to execute the chapters quickly)."""
    v = os.environ.get("DIPNB_SMOKE", "0").strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"DIPNB_SMOKE={v!r} is not allowed: use 0 or 1")


def _reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_memory(dev: torch.device) -> tuple[int, str]:
    """Peak memory since :func:`_reset_peak`, in bytes, and what was measured."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev)), "cuda max_memory_allocated"
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(rss if sys.platform == "darwin" else rss * 1024), "process peak RSS (ru_maxrss)"


def _log(msg: str) -> None:
    print(f"dipnb: {msg}", file=sys.stdout, flush=True)


def _record_use(name: str, key: str) -> None:
    """With ``DIPNB_USED`` set to a file, append ``<experiment> <key>`` for every cached result
    that a run returns, loaded or computed: the list ``cache export --used`` exports (so an
    archive holds exactly what some chapters used, e.g. ``make demo-cache``)."""
    used = os.environ.get("DIPNB_USED")
    if used:
        with open(used, "a") as f:
            f.write(f"{name} {key}\n")


def run_config(
    name: str,
    cfg,
    *,
    profile: str = "quick",
    device: str | torch.device | None = None,
    progress: bool | None = None,
    store: ResultStore | None = None,
    cache: bool = True,
    verbose: bool = True,
    reason: str = "",
    smoke: bool = False,
    workers: Workers | None = None,
) -> Result:
    """Load or compute experiment ``name`` for an already built config (see :func:`run`).

    With ``smoke=True`` the config is first shortened (:func:`smoke_overrides`) and the result is
    cached under a key of its own, marked ``meta["smoke"] = True``.
    """
    exp = get(name)
    store = store or ResultStore()
    if smoke:
        cfg = _smoke_config(name, cfg)
    key = result_key(name, cfg, smoke=smoke)
    where = f"{name} [profile {profile}{f' ({reason})' if reason else ''}{', SMOKE' if smoke else ''}]"
    if cache:
        entry = store.load(name, key)
        if entry is not None:
            if verbose:
                _log(f"{where}: loaded from cache")
            _record_use(name, key)
            res = Result(name, cfg, entry["data"], entry.get("meta", {}), cached=True)
            if exp.after is not None:
                exp.after(res)
            return res
    # pick_device validates names (ConfigError) and resolves 'auto'; torch.device does neither
    dev = device if isinstance(device, torch.device) else pick_device(device)
    show = progress if progress is not None else os.environ.get("DIPNB_PROGRESS", "1") != "0"
    if verbose:
        _log(f"{where}: computing on {describe_device(dev)}")
    ctx = Context(name, profile, dev, show, store, key, cache, smoke, workers=workers)
    _reset_peak(dev)
    t0 = time.perf_counter()
    data = exp.func(cfg, ctx)
    seconds = time.perf_counter() - t0
    peak, peak_kind = _peak_memory(dev)
    meta = {
        "smoke": smoke,
        "peak_memory_bytes": max([peak, *ctx.child_peaks]),  # nested runs reset the CUDA counter
        "peak_memory_kind": peak_kind,
        "profile": profile,
        "device": str(dev),
        "seconds": seconds,
        "engine": ENGINE_VERSION,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if cache:
        store.save(name, key, {"config": asdict(cfg), "data": data, "meta": meta})
    trace = os.environ.get("DIPNB_TRACE")
    if trace:  # one line per finished computation (never per cache load), for audits and tests
        with open(trace, "a") as f:
            f.write(f"{name} {key} {os.getpid()} {meta['seconds']:.3f}\n")
    if cache:
        _record_use(name, key)
        for hook in list(_STORED_HOOKS):
            hook(name, key)
    if verbose:
        _log(f"{where}: done in {meta['seconds']:.1f} s, peak memory {meta['peak_memory_bytes'] / 2**20:.0f} MiB "
             f"({peak_kind})")
    res = Result(name, cfg, data, meta, cached=False)
    if exp.after is not None:
        exp.after(res)
    return res


def run(
    name: str,
    *,
    profile: str | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    store: ResultStore | None = None,
    cache: bool = True,
    verbose: bool = True,
    smoke: bool | None = None,
    workers: int | Executor | Workers | None = None,
    **overrides,
) -> Result:
    """Run experiment ``name``, or load it from the cache if this exact config was run before.

    Args:
        profile: ``"quick"``, ``"paper"``, ``"colab"`` or ``"auto"`` (default ``DIPNB_PROFILE``,
            else auto: colab on a CUDA GPU in Colab, paper on another CUDA GPU, quick elsewhere).
        device: where to compute (default: CUDA, then MPS, then CPU).
        cache: read and write the result cache (``DIPNB_CACHE``).
        smoke: a smoke run (default ``DIPNB_SMOKE``, else False): the profile's sizes, a handful
            of steps (:func:`smoke_overrides`), peak memory in ``meta``, cached apart, never a result.
        workers: where a composite experiment (one made of cached sub-runs, such as ``capacity``
            or ``denoising-table``) computes the sub-runs not yet cached: an integer N >= 2
            starts N local worker processes with one torch thread each, on a CPU only; 1 runs
            them here, one after another; an executor (a Dask cluster's, see
            :mod:`dipnb.distributed`) sends them there. Default ``DIPNB_WORKERS``, else ``auto``:
            one worker process per usable core, on a CPU with two or more (the README measures
            what they gain).
        **overrides: config fields to set, e.g. ``seed=3``.

    Returns:
        A :class:`Result`; ``result.data`` holds the arrays, ``result.summary()`` the headline numbers.
    """
    smoke = _smoke_env() if smoke is None else bool(smoke)
    cfg, prof, reason = make_config(name, profile, smoke=smoke, **overrides)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    with use_workers(workers, dev, smoke=smoke) as pool:
        return run_config(
            name, cfg, profile=prof, device=dev, progress=progress, store=store,
            cache=cache, verbose=verbose, reason=reason, smoke=smoke, workers=pool,
        )


GridKey = str | tuple[str, ...]


@dataclass
class SweepFailure:
    """A config of a sweep that could not be run: its parameters and the reason, in words."""

    params: dict
    error: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{_format_params(self.params)}: {self.error}"


def _format_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"


def grid_combinations(grid: Mapping[GridKey, Iterable]) -> list[dict]:
    """Every combination of a grid, first key slowest.

    A key may be a tuple of names whose values are tuples, to vary several parameters together
    (``{("model", "width"): [("linear", 128), ("linear", 2048)]}``).
    """
    axes = []
    for key, values in grid.items():
        values = list(values)
        if not values:
            raise ConfigError(f"grid parameter {key!r} has no values")
        names_ = key if isinstance(key, tuple) else (key,)
        axis = []
        for v in values:
            vals = tuple(v) if isinstance(key, tuple) else (v,)
            if len(vals) != len(names_):
                raise ConfigError(f"grid entry {v!r} does not give one value for each of {', '.join(names_)}")
            axis.append(dict(zip(names_, vals, strict=True)))
        axes.append(axis)
    out = []
    for combo in itertools.product(*axes):
        d: dict = {}
        for part in combo:
            d.update(part)
        out.append(d)
    return out


def _stored_key(name: str, cfg, smoke: bool) -> str:
    """The key :func:`run_config` stores ``cfg``'s result under (a smoke run: its shortened config)."""
    return result_key(name, _smoke_config(name, cfg) if smoke else cfg, smoke=smoke)


def _in_dask_worker_threads() -> int | None:
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except Exception:  # not in a dask worker, or dask not installed
        return None


def _writable(root: Path) -> bool:
    """Whether this process can create files under ``root`` (the caller's results cache)."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def compute_task(
    name: str, cfg, profile: str, threads: int | None = None, store_root: str | None = None,
    smoke: bool = False,
) -> Result:
    """Compute one config in a worker process and return its result.

    Pins the worker's resources first: torch uses ``threads`` threads (default: the dask
    worker's thread count, if this runs in one), and the device is the worker's own GPU when it
    has one (give each worker one GPU with ``CUDA_VISIBLE_DEVICES``), else the CPU.

    ``store_root`` is the caller's results cache. Where this worker can write to it (a
    ``LocalCluster``, or a filesystem shared by the cluster), the task first looks there and
    loads a stored result instead of computing it, and otherwise stores its result there,
    atomically, before returning it. A run that finished is then safe even if this worker dies
    before the caller collects it: the scheduler reruns the task elsewhere, and that task loads
    the stored result. A retried run also resumes from its checkpoint there. Where the folder
    cannot be written, the result reaches the cache only once the caller has collected it.

    Returns:
        The :class:`Result` (``cached`` is True when it was loaded instead of computed).
    """
    threads = threads or _in_dask_worker_threads()
    if threads:
        torch.set_num_threads(int(threads))
    kw = {"profile": profile, "progress": False, "verbose": False, "smoke": smoke}
    if store_root is not None and _writable(Path(store_root)):
        return run_config(name, cfg, store=ResultStore(store_root), cache=True, **kw)
    return run_config(name, cfg, cache=False, **kw)


def sweep(
    name: str,
    grid: Mapping[GridKey, Iterable],
    *,
    profile: str | None = None,
    executor: Executor | None = None,
    store: ResultStore | None = None,
    progress: bool | None = None,
    errors: str = "raise",
    verbose: bool = True,
    workers: int | Executor | Workers | None = None,
    **fixed,
) -> list[Result | SweepFailure]:
    """Run ``name`` for every combination of ``grid`` (a dict of lists), with ``fixed`` values.

    Every config is built and validated first, so a bad value is reported before anything
    runs. Configs already in the cache are loaded; the others run on ``executor`` (any
    :class:`concurrent.futures.Executor`, e.g. a Dask cluster's: see :mod:`dipnb.distributed`),
    or else where ``workers`` says, as for :func:`run`: by default (``DIPNB_WORKERS``, else
    ``auto``) in one local worker process per core with one torch thread each, on a CPU with two
    or more cores and when two or more configs are left to compute; otherwise one after another
    in this process. Each result is stored in this process's cache as soon as it
    arrives, so an interrupted sweep resumes where it stopped and nothing finished is lost.
    Workers that can write to this cache store each result themselves before returning it (see
    :func:`compute_task`), so a run finished on a worker that then dies is not computed again.

    Args:
        errors: ``"raise"`` (a bad config raises :class:`ConfigError` before anything runs; a
            failing run raises after the others finished) or ``"collect"`` (each failure becomes a
            :class:`SweepFailure` in its place, and the others are returned).

    Returns:
        One :class:`Result` (or :class:`SweepFailure`) per combination, in grid order.
    """
    if errors not in ("raise", "collect"):
        raise ConfigError(f"errors must be 'raise' or 'collect', got {errors!r}")
    if executor is not None and workers is not None:
        raise ConfigError("give executor= or workers=, not both (workers= also takes an executor)")
    combos = [dict(fixed, **c) for c in grid_combinations(grid)]
    smoke = _smoke_env()
    with use_workers(executor if executor is not None else workers, pick_device(None), smoke=smoke) as pool:
        return _sweep_combos(name, combos, profile=profile, workers=pool, store=store, progress=progress,
                             errors=errors, verbose=verbose, smoke=smoke)


def _sweep_combos(
    name: str,
    combos: list[dict],
    *,
    profile: str | None,
    workers: Workers | None,
    store: ResultStore | None,
    progress: bool | None,
    errors: str,
    verbose: bool,
    smoke: bool = False,
) -> list[Result | SweepFailure]:
    """:func:`sweep` over a list of parameter dicts (``workers``: where the configs not cached
    run, None for here; ``smoke``: smoke runs, cached apart, as :func:`run` makes them)."""
    store = store or ResultStore()
    prof, reason = resolve_profile(profile)
    results: list[Result | SweepFailure | None] = [None] * len(combos)
    cfgs: list[Any] = [None] * len(combos)
    for i, params in enumerate(combos):
        try:
            cfgs[i] = make_config(name, prof, smoke=smoke, **params)[0]
        except ConfigError as e:
            if errors == "raise":
                raise ConfigError(f"sweep {name!r}, config {_format_params(params)}: {e}") from e
            results[i] = SweepFailure(params, str(e))
    todo = []
    for i, cfg in enumerate(cfgs):
        if cfg is None:
            continue
        entry = store.load(name, _stored_key(name, cfg, smoke))
        if entry is not None:
            results[i] = Result(name, cfg, entry["data"], entry.get("meta", {}), cached=True)
        else:
            todo.append(i)
    n_bad = sum(isinstance(r, SweepFailure) for r in results)
    # Local worker processes pay a start-up (a new interpreter importing torch) and give each run
    # one thread: for a single run, this process with all its threads is faster. An executor the
    # caller gave (a Dask cluster's) is always used.
    executor = None
    if workers is not None and (len(todo) >= 2 or not workers.local):
        executor = workers.executor()
    threads = workers.threads if workers is not None else None
    if verbose:
        _log(
            f"{name} [profile {prof} ({reason})]: sweep of {len(combos)} configs: "
            f"{len(combos) - len(todo) - n_bad} cached, {len(todo)} to compute"
            + (f", {n_bad} invalid" if n_bad else "")
            + (f" on {type(executor).__name__}" if executor is not None and todo else "")
        )
    show = progress if progress is not None else os.environ.get("DIPNB_PROGRESS", "1") != "0"
    from tqdm.auto import tqdm

    failed: list[int] = []

    def fail(i: int, e: BaseException) -> None:
        failed.append(i)
        results[i] = SweepFailure(combos[i], f"{type(e).__name__}: {e}")

    with tqdm(total=len(todo), desc=f"sweep {name}", disable=not show or not todo, leave=False) as bar:
        if executor is None:
            for i in todo:
                try:
                    results[i] = run_config(name, cfgs[i], profile=prof, store=store, progress=False, verbose=False,
                                            smoke=smoke)
                except Exception as e:  # one failing run must not lose the others
                    fail(i, e)
                bar.update(1)
        else:
            from concurrent.futures import as_completed

            root = str(store.root.resolve())
            futures = {executor.submit(compute_task, name, cfgs[i], prof, threads, root, smoke): i for i in todo}
            for fut in as_completed(futures):
                i = futures.pop(fut)
                try:
                    res = fut.result()
                except Exception as e:
                    fail(i, e)
                else:
                    key = _stored_key(name, cfgs[i], smoke)
                    # A worker that reaches this cache stored the result already; one that does
                    # not (another machine, no shared filesystem) leaves it to the caller.
                    if store.load(name, key) is None:
                        store.save(name, key, {"config": asdict(res.config), "data": res.data, "meta": res.meta})
                    results[i] = res
                bar.update(1)
    if failed and errors == "raise":
        first = results[failed[0]]
        raise RuntimeError(f"{len(failed)} of {len(todo)} runs of sweep {name!r} failed; first: {first}")
    return typing.cast(list, results)
