"""Sweeps on a real Dask LocalCluster (two worker processes), not a mock."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest
import torch

import dipnb
from dipnb.errors import ConfigError
from dipnb.experiments import SweepFailure
from dipnb.experiments.cache import ResultStore

distributed = pytest.importorskip("distributed")

# A tiny DIP denoising run: ~1 s each on one thread.
TINY = dict(image="house", model="dip", width=8, depth=3, iterations=25, record_every=5, downsample=8)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Two single-threaded worker processes; they inherit DIPNB_TRACE and DIPNB_IMAGES."""
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("DIPNB_TRACE", str(trace))
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIPNB_PROGRESS", "0")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc, distributed.Client(lc) as client:
        yield client, trace


def _trace_keys(path) -> Counter:
    if not path.exists():
        return Counter()
    return Counter(line.split()[1] for line in path.read_text().splitlines() if line.strip())


@pytest.mark.slow
def test_cluster_results_equal_in_process_results(cluster, tmp_path):
    client, trace = cluster
    grid = {"seed": [0, 1, 2], "width": [8, 12]}
    remote = dipnb.sweep("denoising", grid, executor=client.get_executor(), profile="quick",
                         store=ResultStore(tmp_path / "remote"), **TINY)
    torch.set_num_threads(1)  # the workers use one thread: same float reduction order
    local = dipnb.sweep("denoising", grid, profile="quick", store=ResultStore(tmp_path / "local"),
                        **TINY)
    assert len(remote) == len(local) == 6
    for r, lo in zip(remote, local, strict=True):
        assert r.config == lo.config
        assert r.data["best_psnr"] == pytest.approx(lo.data["best_psnr"], abs=1e-4)
        assert r.data["psnr"] == pytest.approx(lo.data["psnr"], abs=1e-3)
    # The remote results were stored in the caller's cache: a second sweep loads them all.
    again = dipnb.sweep("denoising", grid, profile="quick", store=ResultStore(tmp_path / "remote"),
                        **TINY)
    assert all(r.cached for r in again)


@pytest.mark.slow
def test_sweep_survives_a_killed_worker_without_recomputing_finished_work(cluster, tmp_path):
    client, trace = cluster
    pids = list(client.run(os.getpid).values())
    grid = {"seed": list(range(8))}
    killed = {}

    def killer():
        # Wait for two finished runs, then kill one worker process mid-sweep.
        deadline = time.time() + 120
        while time.time() < deadline and sum(_trace_keys(trace).values()) < 2:
            time.sleep(0.05)
        killed["pid"] = pids[0]
        killed["finished_before"] = set(_trace_keys(trace))
        os.kill(pids[0], signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    results = dipnb.sweep("denoising", grid, executor=client.get_executor(), profile="quick",
                          store=ResultStore(tmp_path / "c"), **TINY | {"iterations": 60})
    t.join()
    assert "pid" in killed, "the worker was never killed"
    assert all(not isinstance(r, SweepFailure) for r in results), results
    assert len(results) == 8
    counts = _trace_keys(trace)
    assert len(counts) == 8
    # Nothing finished before the kill was computed a second time.
    for key in killed["finished_before"]:
        assert counts[key] == 1, f"{key} was computed {counts[key]} times"


def test_bad_config_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path))
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("DIPNB_TRACE", str(trace))
    grid = {"width": [-1, 8], "seed": [0]}
    fixed = {k: v for k, v in TINY.items() if k != "width"}
    with pytest.raises(ConfigError, match="width"):
        dipnb.sweep("denoising", grid, profile="quick", progress=False, **fixed)
    assert not trace.exists(), "a bad config must fail before anything runs"
    res = dipnb.sweep("denoising", grid, profile="quick", errors="collect", progress=False, **fixed)
    assert isinstance(res[0], SweepFailure)
    assert "width" in res[0].error and "-1" in res[0].error
    assert res[0].params["width"] == -1
    assert not isinstance(res[1], SweepFailure) and res[1].data["best_psnr"] > 0


def test_cli_sweep_local_cluster_and_failure_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path))
    from dipnb.cli import main

    args = ["sweep", "denoising", "--grid", "width=-1,8", "--quiet", "--json", str(tmp_path / "s.json")]
    for k, v in TINY.items():
        if k != "width":
            args += ["--set", f"{k}={v}"]
    assert main(args) == 1  # one config failed
    out = capsys.readouterr()
    assert "FAILED" in out.out and "computed" in out.out
    assert "width" in out.err
    import json

    data = json.loads((tmp_path / "s.json").read_text())
    assert len(data["results"]) == 2 and "error" in data["results"][0]
    assert main(["sweep", "denoising", "--grid", "seed=a..b"]) == 2
    assert main(["sweep", "denoising", "--grid", "nope=1"]) == 2
    assert main(["sweep", "denoising", "--local-cluster", "0", "--grid", "seed=0"]) == 2
