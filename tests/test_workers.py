"""A composite experiment's sub-runs, computed on workers through the sweep machinery."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import dipnb
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import Workers
from dipnb.experiments.cache import ResultStore

# capacity over two depths and two seeds: four decoupling-1d fits of 30 steps (a second or two).
TINY_CAPACITY = dict(model="conv", vary="depth", values=(4, 6), runs=2, iterations=30, width=16)


def _trace(path) -> list[tuple[str, str, int]]:
    """``(experiment, key, pid)`` of every computation DIPNB_TRACE logged."""
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(r[0], r[1], int(r[2])) for r in rows]


@pytest.fixture
def traced(tmp_path, monkeypatch):
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("DIPNB_TRACE", str(trace))
    return trace


@pytest.mark.slow
def test_subruns_in_worker_processes_equal_those_computed_here(traced, tmp_path, one_thread):
    here = dipnb.run("capacity", profile="quick", store=ResultStore(tmp_path / "here"), workers=1,
                     **TINY_CAPACITY)
    in_process = {(n, k) for n, k, pid in _trace(traced) if pid == os.getpid()}
    assert len(in_process) == 5, "workers=1: the four sub-runs and the composite, all in this process"
    traced.unlink()

    pooled = dipnb.run("capacity", profile="quick", store=ResultStore(tmp_path / "pooled"), workers=2,
                       **TINY_CAPACITY)
    rows = _trace(traced)
    subs = [(n, pid) for n, _, pid in rows if n == "decoupling-1d"]
    assert len(subs) == 4, "each sub-run is computed once"
    assert all(pid != os.getpid() for _, pid in subs), "workers=2: the sub-runs run in worker processes"
    assert len({pid for _, pid in subs}) == 2, "both workers took sub-runs"
    assert [n for n, _, pid in rows if pid == os.getpid()] == ["capacity"]
    # One torch thread here and in each worker: the same float reductions, the same numbers.
    np.testing.assert_array_equal(pooled.data["se"], here.data["se"])
    np.testing.assert_array_equal(pooled.data["mean"], here.data["mean"])

    traced.unlink()
    again = dipnb.run("capacity", profile="quick", store=ResultStore(tmp_path / "pooled"), workers=2,
                      **TINY_CAPACITY)
    assert again.cached and _trace(traced) == []


def test_an_executor_computes_each_asked_subrun_once_and_smoke_stays_smoke(traced, tmp_path, one_thread):
    store = ResultStore(tmp_path / "c")
    with ThreadPoolExecutor(2) as ex:
        res = dipnb.run("gp-prior", profile="quick", store=store, smoke=True, workers=ex, size=64, width=8,
                        samples=4, depths=(1, 2), depth=2, kernel_samples=8, kernel_width=8)
    assert res.smoke
    counts = Counter((n, k) for n, k, _ in _trace(traced))
    assert max(counts.values()) == 1, f"a sub-run was computed twice: {counts}"
    # 2 modes x 2 depths of samples; the samples gp-prior shows (bilinear, depth 2) are one of
    # them and are not computed again; one kernel run; the composite itself.
    names = Counter(n for n, _ in counts)
    assert names == {"gp-prior-samples": 4, "gp-prior-kernel": 1, "gp-prior": 1}
    metas = [store.load(n, k)["meta"] for n, k, _ in store.entries()]
    assert len(metas) == 6 and all(m["smoke"] for m in metas), "a smoke run's sub-runs are smoke runs"


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_bad_dipnb_workers_is_one_line_before_anything_runs(value, monkeypatch, traced):
    monkeypatch.setenv("DIPNB_WORKERS", value)
    with pytest.raises(ConfigError, match=r"DIPNB_WORKERS=.*use auto or an integer >= 1") as e:
        dipnb.run("capacity", profile="quick", **TINY_CAPACITY)
    assert "\n" not in str(e.value)
    assert _trace(traced) == []


@pytest.mark.parametrize("value", [0, -2, True, "2"])
def test_bad_workers_argument(value, traced):
    with pytest.raises(ConfigError, match="workers=.*integer >= 1 or a concurrent.futures.Executor"):
        dipnb.run("capacity", profile="quick", workers=value, **TINY_CAPACITY)
    assert _trace(traced) == []


def test_by_default_a_cpu_with_two_or_more_cores_gets_one_worker_per_core(monkeypatch):
    import torch

    from dipnb.experiments import engine

    monkeypatch.delenv("DIPNB_WORKERS")
    for cores, expect in ((1, None), (2, 2), (6, 6)):
        monkeypatch.setattr(engine, "usable_cores", lambda c=cores: c)
        with engine.use_workers(None, torch.device("cpu")) as pool:
            assert (pool.n if pool else None) == expect
    with engine.use_workers(None, torch.device("meta")) as pool:
        assert pool is None, "workers are local processes on a CPU only"
    monkeypatch.setenv("DIPNB_WORKERS", "AUTO")
    assert engine.workers_from_env() == 6


def test_smoke_mode_starts_no_worker_by_default_but_obeys_a_number(monkeypatch):
    import torch

    from dipnb.experiments import engine

    monkeypatch.setenv("DIPNB_WORKERS", "auto")
    monkeypatch.setattr(engine, "usable_cores", lambda: 4)
    with engine.use_workers(None, torch.device("cpu"), smoke=True) as pool:
        assert pool is None, "a smoke sub-run is shorter than a worker's start-up"
    with engine.use_workers(2, torch.device("cpu"), smoke=True) as pool:
        assert pool is not None and pool.n == 2


def test_workers_object_needs_two_processes_or_an_executor():
    with pytest.raises(ConfigError, match="integer >= 2"):
        Workers(1)


def test_cli_run_refuses_zero_workers(capsys, traced):
    assert main(["run", "capacity", "--workers", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "workers=0" in err[0]
    assert _trace(traced) == []


class _Asked(Exception):
    pass


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("capacity", {"first_seed": 4}),
        ("denoising-table", {}),
        ("stopping-benchmark", {"first_seed": 6, "noise_seed": 2}),
        ("trajectories-area", {}),
        ("upsampling", {}),
        ("upsampling-control", {}),
        ("gp-prior", {}),
        ("kernel-view", {}),
    ],
)
def test_a_composite_asks_the_engine_for_the_subruns_its_config_declares(name, overrides, monkeypatch, images):
    """The sub-runs a composite computes are the ones its config lists (``subruns()``), which the
    time plan counts too: one list, not two kept in step."""
    import dipnb.experiments as E
    from dipnb import plan
    from dipnb.experiments.engine import Context

    asked = []

    def spy(self, runs):
        asked.extend((n, dict(o)) for n, o in runs)
        raise _Asked

    monkeypatch.setattr(Context, "run_many", spy)
    cfg = E.make_config(name, "quick", **overrides)[0]
    with pytest.raises(_Asked):
        E.run_config(name, cfg, cache=False, verbose=False, progress=False, workers=None)
    assert asked == [(n, dict(o)) for n, o in cfg.subruns()]
    assert plan._subruns(name, cfg)[0] == asked
    if "first_seed" in overrides:
        seeds = sorted({o["seed"] for _, o in asked})
        assert seeds[0] == overrides["first_seed"], "the runs start at first_seed"
    if "noise_seed" in overrides:
        assert {o["noise_seed"] for _, o in asked} == {overrides["noise_seed"]}


@pytest.mark.slow
def test_a_single_missing_subrun_is_computed_here_not_in_a_new_worker(traced, tmp_path, one_thread):
    store = ResultStore(tmp_path / "r")
    first = dict(TINY_CAPACITY, values=(4,))
    dipnb.run("capacity", profile="quick", store=store, workers=1, **first)  # depth 4, both seeds
    traced.unlink()
    dipnb.run("capacity", profile="quick", store=store, workers=2, **dict(first, runs=3))  # adds seed 2
    rows = _trace(traced)
    assert [n for n, _, _ in rows] == ["decoupling-1d", "capacity"]
    assert all(pid == os.getpid() for _, _, pid in rows), "one missing sub-run: no worker process"


@pytest.mark.slow
def test_sweep_computes_in_local_workers_and_gives_the_numbers_computed_here(traced, tmp_path, one_thread):
    grid = {"depth": [4, 6], "seed": [0, 1]}
    fixed = dict(model="conv", iterations=30, width=16, profile="quick", progress=False)
    here = dipnb.sweep("decoupling-1d", grid, store=ResultStore(tmp_path / "here"), workers=1, **fixed)
    assert {pid for _, _, pid in _trace(traced)} == {os.getpid()}
    traced.unlink()
    pooled = dipnb.sweep("decoupling-1d", grid, store=ResultStore(tmp_path / "pooled"), workers=2, **fixed)
    pids = [pid for _, _, pid in _trace(traced)]
    assert len(pids) == 4 and os.getpid() not in pids, "workers=2: each config once, in worker processes"
    for a, b in zip(here, pooled, strict=True):
        assert a.config == b.config
        np.testing.assert_array_equal(a.data["se"], b.data["se"])


def test_sweep_refuses_an_executor_and_workers_together(traced):
    with ThreadPoolExecutor(1) as ex, pytest.raises(ConfigError, match="not both"):
        dipnb.sweep("decoupling-1d", {"seed": [0, 1]}, executor=ex, workers=2, iterations=5)
    assert _trace(traced) == []
