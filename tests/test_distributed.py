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


def _hold_after_first_store(held: str) -> None:
    """Installed in each worker: the first worker to store a result writes ``pid key`` to
    ``held`` and then never returns that result, so the test can kill it at the worst moment:
    the run is finished and stored, and the caller has not collected it."""
    import os
    import threading

    from dipnb.experiments import engine

    def hold(name: str, key: str) -> None:
        tmp = f"{held}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()} {key}\n")
        try:
            os.link(tmp, held)  # atomic, and fails where another worker got there first
        except FileExistsError:
            return
        finally:
            os.unlink(tmp)
        threading.Event().wait()  # never returns; SIGKILL ends it

    engine.on_result_stored(hold)


@pytest.mark.slow
def test_sweep_survives_a_killed_worker_without_recomputing_finished_work(cluster, tmp_path):
    """A worker is killed right after a run finished on it and before the caller collected it
    (it waits in a hook that runs once the result is stored): every config is still returned,
    and no config is computed twice, that one included."""
    client, trace = cluster
    held = tmp_path / "held.txt"
    client.run(_hold_after_first_store, str(held))
    grid = {"seed": list(range(8))}
    killed = {}

    def killer():
        deadline = time.monotonic() + 600  # a guard against a hang, not a timing assumption
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid, key = held.read_text().split()
        killed["key"] = key
        killed["computed_before"] = _trace_keys(trace)
        os.kill(int(pid), signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    results = dipnb.sweep("denoising", grid, executor=client.get_executor(), profile="quick",
                          store=ResultStore(tmp_path / "c"), **TINY)
    t.join()
    assert "key" in killed, "no worker was held and killed"
    assert killed["computed_before"][killed["key"]] == 1  # it had finished before the kill
    assert all(not isinstance(r, SweepFailure) for r in results), results
    assert len(results) == 8
    counts = _trace_keys(trace)
    assert len(counts) == 8
    assert all(n == 1 for n in counts.values()), f"computed more than once: {counts}"
    # The held run reached the caller as the stored result, loaded by the rescheduled task;
    # every other run was computed once and returned by the worker that computed it.
    assert sum(r.cached for r in results) == 1


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
