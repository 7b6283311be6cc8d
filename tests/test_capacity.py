"""Tests of the ``capacity`` experiment (depth and width sweeps of the two-sines experiment)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dipnb  # noqa: E402
from dipnb import cli  # noqa: E402
from dipnb.errors import ConfigError  # noqa: E402
from dipnb.experiments.capacity import GRIDS, _stats, rank_trend, run_data  # noqa: E402
from dipnb.plots import decoupling as P  # noqa: E402

# Tiny sub-runs: 64 samples, 2 and 10 cycles, 20 steps.
TINY = dict(length=64, k1=2, k2=10, iterations=20, runs=2)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path))
    monkeypatch.setenv("DIPNB_PROGRESS", "0")


@pytest.mark.parametrize(
    "bad, words",
    [
        (dict(model="mlp"), "model"),
        (dict(vary="kernel"), "vary"),
        (dict(grid="huge"), "grid"),
        (dict(runs=0), "runs"),
        (dict(values=(4, 4)), "repeat"),
        (dict(values=(1, 4)), "depth"),
        (dict(vary="width", values=(0, 8)), "each of values must be an integer >= 1, got 0"),
        (dict(width=-1), "width"),
        (dict(depth=-2), "depth"),
        (dict(k2=200), "k2"),
        (dict(iterations=0), "iterations"),
        (dict(delta=-1.0), "delta"),
    ],
)
def test_bad_values_raise_config_error(bad, words):
    with pytest.raises(ConfigError, match=words):
        dipnb.experiments.make_config("capacity", "quick", **bad)


def test_defaults_are_filled_from_the_grid():
    cfg, _, _ = dipnb.experiments.make_config("capacity", "quick", model="conv", vary="width")
    assert cfg.values == GRIDS["quick"][("conv", "width")]
    assert cfg.depth == 10 and cfg.width == 64
    cfg, _, _ = dipnb.experiments.make_config("capacity", "paper", model="linear", vary="width")
    assert cfg.values == GRIDS["paper"][("linear", "width")] and cfg.runs == 10
    # Explicit values, listed or not, give the same config (and cache key) as the filled-in ones.
    a, _, _ = dipnb.experiments.make_config("capacity", "quick", values=list(GRIDS["quick"][("conv", "depth")]))
    b, _, _ = dipnb.experiments.make_config("capacity", "quick")
    assert a == b


def test_stats_ignore_runs_that_never_converged():
    t = np.array([[[1, 10], [3, np.nan]], [[np.nan, np.nan], [np.nan, 5]]], float)  # (V=2, R=2, F=2)
    mean, std, n = _stats(t)
    assert mean[0].tolist() == [2.0, 10.0]
    assert std[0, 0] == pytest.approx(np.sqrt(2.0)) and std[0, 1] == 0.0
    assert np.isnan(mean[1, 0]) and mean[1, 1] == 5.0
    assert n.tolist() == [[2, 1], [0, 1]]


def _pkl_count(root, name):
    d = root / name
    return len(list(d.glob("*.npz"))) if d.exists() else 0


def test_tiny_sweep_shapes_summary_and_resume(tmp_path):
    kw = dict(model="conv", vary="width", values=(4, 8), depth=4, **TINY)
    res = dipnb.run("capacity", profile="quick", verbose=False, **kw)
    d = res.data
    assert d["convergence"].shape == (2, 2, 2)
    assert d["mean"].shape == d["std"].shape == d["converged"].shape == (2, 2)
    assert d["se"].shape == (2, 2, 2, 20)
    assert _pkl_count(tmp_path, "decoupling-1d") == 4  # one cached sub-run per (value, seed)
    s = res.summary()
    assert set(s["per_value"]) == {"4", "8"}
    assert set(s["per_value"]["4"]) == {"2", "10"}
    assert set(s["per_value"]["4"]["2"]) == {"mean", "std", "converged"}
    json.dumps(cli._jsonable(s))
    # A larger sweep reuses the sub-runs already computed: only the new value's two runs are added.
    dipnb.run("capacity", profile="quick", verbose=False, **dict(kw, values=(4, 8, 16)))
    assert _pkl_count(tmp_path, "decoupling-1d") == 6
    one = run_data(d, 8, seed=1)
    assert one["se"].shape == (2, 20) and set(one["convergence_iteration"]) == {"2", "10"}


def test_depth_sweep_for_linear():
    res = dipnb.run("capacity", profile="quick", model="linear", vary="depth", values=(2, 3), width=16,
                    verbose=False, **TINY)
    assert res.data["values"].tolist() == [2, 3]
    assert res.summary()["fixed"] == {"width": 16}


def test_cli_runs_and_rejects(tmp_path):
    out = tmp_path / "c.json"
    args = ["run", "capacity", "--profile", "quick", "--quiet", "--json", str(out), "--set", "values=4,8",
            "--set", "vary=width", "--set", "depth=4"]
    args += [f"--set={k}={v}" for k, v in TINY.items()]
    assert cli.main(args) == 0
    assert set(json.loads(out.read_text())["summary"]["per_value"]) == {"4", "8"}
    assert cli.main(["run", "capacity", "--set", "vary=kernel"]) == 2
    assert cli.main(["run", "capacity", "--set", "values=4,x"]) == 2


def test_capacity_figure_under_agg():
    res = dipnb.run("capacity", profile="quick", model="conv", vary="depth", values=(4, 6), width=4,
                    verbose=False, **TINY)
    fig = P.capacity_figure([res.data, res.data, res.data], ["a", "b", "c"])
    assert len(fig.axes) == 4
    plt.close(fig)


def _fake(model, vary, values, t):
    """Capacity-like data with given convergence times ``t`` (V, R, 2)."""
    t = np.asarray(t, float)
    mean, std, n = _stats(t)
    return {"model": model, "vary": vary, "values": np.asarray(values), "frequencies": (5, 50),
            "convergence": t, "mean": mean, "std": std, "converged": n}


def test_rank_trend_over_the_whole_grid():
    values = np.array([16, 32, 64, 128, 256])
    t = np.zeros((5, 2, 2))
    t[:, :, 0] = np.array([50, 40, 30, 20, 10])[:, None]  # k1: falls at every step, both seeds
    t[:, 0, 1] = [50, 40, 30, 20, 25]  # k2, seed 0: falls, then rises at the last step
    t[:, 1, 1] = [10, 20, 30, 40, 50]  # k2, seed 1: rises
    data = {"values": values, "convergence": t}
    np.testing.assert_allclose(rank_trend(data, seed=0), [-1.0, -0.9])
    np.testing.assert_allclose(rank_trend(data, seed=1), [-1.0, 1.0])
    pooled = rank_trend(data)
    assert pooled[0] == pytest.approx(-1.0) and -0.5 < pooled[1] < 0.5
    t[:3, :, 0] = np.nan  # only two sizes left for k1: no trend to speak of
    assert np.isnan(rank_trend(data)[0])


def test_findings_on_constructed_sweeps():
    from dipnb.experiments.capacity import findings

    sweeps = {
        ("conv", "depth"): _fake("conv", "depth", [4, 8, 16], [[[2, 10]] * 2, [[2, 20]] * 2, [[3, 40]] * 2]),
        ("conv", "width"): _fake("conv", "width", [16, 64, 1280], [[[10, 80]] * 2, [[4, 20]] * 2, [[6, 3]] * 2]),
        ("linear", "depth"): _fake("linear", "depth", [4, 8], [[[5, 5]] * 2, [[9, 10]] * 2]),
        ("linear", "width"): _fake("linear", "width", [16, 256], [[[30, 30]] * 2, [[8, 8]] * 2]),
    }
    got = {f["claim"]: f["holds"] for f in findings(sweeps)}
    assert got["conv: deeper nets separate the frequencies more"] is True
    assert got["conv: wider nets converge faster"] is True
    assert got["conv: very wide nets (1280 channels) fit k2 first"] is True
    assert got["linear: the two frequencies converge together at every depth and width"] is True
    assert got["linear: wider nets converge faster"] is True
    # A linear sweep that separates, and a conv width grid without very wide nets.
    sweeps[("linear", "width")] = _fake("linear", "width", [16, 256], [[[5, 30]] * 2, [[8, 8]] * 2])
    sweeps[("conv", "width")] = _fake("conv", "width", [16, 64], [[[10, 80]] * 2, [[4, 20]] * 2])
    got = {f["claim"]: f["holds"] for f in findings(sweeps)}
    assert got["linear: the two frequencies converge together at every depth and width"] is False
    assert got["conv: very wide nets (1280 channels) fit k2 first"] is None
    table = P.findings_markdown(findings(sweeps))
    assert table.count("\n") == len(findings(sweeps)) + 1 and "not tested" in table


def test_live_explorer():
    calls = []

    def compute(model, depth, width):
        calls.append((model, depth, width))
        fig, ax = plt.subplots()
        return fig

    live = P.live_explorer(compute, depths=[4, 10], widths=[16, 64], depth=10, width=64)
    assert calls == [] and list(live.controls) == ["model", "depth", "width"]
    live.button.click()
    assert calls == [("conv", 10, 64)]
    live.show("linear", 4, 16)
    assert calls[-1] == ("linear", 4, 16)

    def broken(model, depth, width):
        raise ConfigError("bad depth")

    P.live_explorer(broken, depths=[4], widths=[16], depth=4, width=16).show("conv", 4, 16)  # shown, not raised
