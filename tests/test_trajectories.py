"""Tests of the trajectories experiments (two runs on a clean image, and the area sweep)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dipnb
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import make_config
from dipnb.experiments.trajectories import (
    find_convergences,
    load_target,
    max_rebound,
    smooth_eps,
    spearman,
)

# A two-run fit small enough for a unit test: our synthetic triangle at 32x32, a 2-scale net.
TINY = dict(image="synthetic-0.6", downsample=8, width=4, depth=2, iterations=12,
            record_every=2, snapshot_every=4, n_bands=4, smooth=4)
TINY_AREA = dict(source="synthetic", areas=(0.2, 0.6, 1.0), downsample=8, width=4, depth=2,
                 iterations=12, record_every=2, smooth=4)  # sub-runs store no snapshots


def _dip_peak_curve(n: int = 200, seed: int = 0, spikes: bool = True):
    """A synthetic eps curve: falls, dips near 60, peaks at 120, falls again; Adam-like spikes."""
    it = np.arange(n) * 5
    x = np.arange(n, dtype=float)  # record index
    base = 100 * np.exp(-x / 6) + 5 + 40 * np.exp(-((x - 24) ** 2) / (2 * 5.0**2))
    rng = np.random.default_rng(seed)
    eps = base * (1 + 0.03 * rng.standard_normal(n))
    if spikes:  # single-record spikes (a spike in either run is a spike in eps), one before the dip
        for k in (8, 13, 40, 70, 150):
            eps[k] *= 3.0
    return it, eps


# --------------------------------------------------------------------------------------------
# Reading the eps curve
# --------------------------------------------------------------------------------------------


def test_smooth_eps_removes_single_spikes():
    e = np.ones(21)
    e[10] = 50.0
    s = smooth_eps(e, 5)
    assert s.shape == e.shape and np.allclose(s, 1.0)
    assert np.array_equal(smooth_eps(e, 1), e)
    with pytest.raises(ConfigError, match="window"):
        smooth_eps(e, 0)


def test_max_rebound_on_known_curves():
    rise, i, j = max_rebound([5, 4, 3, 2, 1])  # a curve that only falls
    assert rise == 0.0 and i == j
    rise, i, j = max_rebound([5, 2, 3, 1, 4, 6, 2])
    assert (rise, i, j) == (5.0, 3, 5)  # from the lowest point before the peak, not the first dip
    with pytest.raises(ConfigError):
        max_rebound([])


def test_find_convergences_on_a_synthetic_curve():
    it, eps = _dip_peak_curve()
    raw = find_convergences(it, eps, window=1)
    conv = find_convergences(it, eps, window=5)
    # The true dip is at record ~12 (iteration ~60), the peak at record 24 (iteration 120), and
    # the curve is half-way back down at record ~28 (iteration ~140).
    assert 50 <= conv["first"] <= 75, conv["first"]
    assert 110 <= conv["peak"] <= 130, conv["peak"]
    assert 130 <= conv["second"] <= 160, conv["second"]
    assert conv["rebound"] > 20
    assert conv["smoothed"].shape == eps.shape
    # Without smoothing, a spike is taken for the peak: the reason for the running median.
    assert raw["peak"] != conv["peak"]


def test_find_convergences_ignores_the_first_half_window():
    # The shape of a real quick-profile curve (triangle-0.9, seed 8): eps drops for two records
    # while both outputs shrink toward the same flat image, climbs, settles at the real dip
    # (iteration ~60), rebounds to a peak (~145) and falls again.
    it, eps = _dip_peak_curve(spikes=False)
    early = eps.copy()
    early[1:3] = 0.5 * eps[12]  # below the real dip: the unsmoothed edge would take it for the minimum
    conv = find_convergences(it, early, window=7)  # half-window: 3 records
    assert conv["first"] == find_convergences(it, eps, window=7)["first"]
    assert 50 <= conv["first"] <= 75, conv["first"]
    # the rebound is measured from the real dip, not from the early one
    assert conv["rebound"] == pytest.approx(find_convergences(it, eps, window=7)["rebound"])
    assert find_convergences(it[:3], early[:3], window=7)["first"] is None  # too short to read


def test_find_convergences_without_a_rebound():
    it = np.arange(50) * 10
    eps = 100 * np.exp(-it / 100.0) + 1.0
    conv = find_convergences(it, eps, window=3)
    assert conv["first"] is conv["peak"] is conv["second"] is None
    assert conv["rebound"] == 0.0
    # A wiggle smaller than min_rise of the minimum is reported but does not count.
    eps2 = eps.copy()
    eps2[30:32] += 1.0
    conv2 = find_convergences(it, eps2, window=1, min_rise=0.5)
    assert conv2["first"] is None and 0 < conv2["rebound"] < 0.5 * eps2[29]
    with pytest.raises(ConfigError):
        find_convergences(it, eps[:-1])
    with pytest.raises(ConfigError, match="back"):
        find_convergences(it, eps, back=0.0)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, match",
    [
        ({"image": "nope"}, "unknown image"),
        ({"image": "synthetic-x"}, "synthetic-"),
        ({"image": "synthetic-1.5"}, r"\[0, 1\]"),
        ({"image": "/no/such/file.png"}, "does not exist"),
        ({"image": "triangle-0.5", "downsample": 2}, "Nyquist"),
        ({"downsample": 0}, "downsample"),
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"upsample": "bicubic"}, "upsample"),
        ({"seed": -1}, "seed"),
        ({"iterations": 0}, "iterations"),
        ({"lr": -1.0}, "lr"),
        ({"record_every": 0}, "record_every"),
        ({"snapshot_every": -1}, "snapshot_every"),
        ({"n_bands": 0}, "n_bands"),
        ({"band_delta": 1.5}, "band_delta"),
        ({"smooth": 0}, "smooth"),
        ({"min_rise": -1.0}, "min_rise"),
        ({"back": 0.0}, "back"),
        ({"crop": (0, 0)}, "crop"),
        ({"image": "barbara", "crop": (400, 0, 256)}, "does not fit"),
        ({"image": "synthetic-0.5", "downsample": 16}, "2\\*\\*depth"),
        ({"width": 1.5}, "wrong type"),
    ],
)
def test_bad_values_raise_config_error(override, match):
    with pytest.raises(ConfigError, match=match):
        make_config("trajectories", "quick", **override)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"source": "web"}, "source"),
        ({"areas": (0.2, 0.4)}, "at least 3"),
        ({"areas": (0.2, 0.2, 0.4)}, "must not repeat"),
        ({"source": "files", "areas": (0.2, 0.25, 0.4)}, "no triangle file"),
        ({"source": "synthetic", "areas": (0.2, 0.5, 1.2)}, r"\[0, 1\]"),
        ({"source": "files", "downsample": 2}, "full size"),
        ({"width": 0}, "width"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_area_bad_values_raise_config_error(override, match):
    with pytest.raises(ConfigError, match=match):
        make_config("trajectories-area", "quick", **override)


def test_profiles_validate():
    for prof in ("quick", "paper"):
        for name in ("trajectories", "trajectories-area"):
            make_config(name, prof)
    cfg, _, _ = make_config("trajectories-area", "paper")
    assert cfg.source == "files" and len(cfg.areas) == 9


def test_load_target_sizes(images):
    cfg, _, _ = make_config("trajectories", "quick", image="synthetic-0.5", downsample=4)
    assert load_target(cfg).shape == (1, 64, 64)
    cfg, _, _ = make_config("trajectories", "quick", image="barbara", crop=(128, 320, 96), depth=5)
    t = load_target(cfg)
    assert t.shape == (1, 96, 96) and t.dtype == np.float32  # 96 is a multiple of 2**5
    cfg, _, _ = make_config("trajectories", "quick", image="triangle-0.2")
    assert load_target(cfg).shape == (1, 256, 256)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def test_tiny_run_shapes_and_summary():
    res = dipnb.run("trajectories", progress=False, **TINY)
    d = res.data
    T = len(d["iterations"])
    assert d["target"].shape == (1, 32, 32)
    assert d["eps"].shape == (T,) and d["eps_smooth"].shape == (T,)
    assert d["band_errors"].shape == (2, T, 4)
    assert d["snapshots"].shape[1:] == (1, 32, 32) and d["snapshots"].dtype == np.float16
    assert list(d["snapshot_iterations"]) == [0, 4, 8, 11]
    assert d["key_outputs"]["initial"].shape == (2, 1, 32, 32)
    assert np.all(d["eps"] > 0)  # two seeds: the runs differ
    s = res.summary()
    for key in ("eps", "eps_iterations", "band_convergence_iterations", "first_convergence",
                "divergence_peak", "second_convergence", "divergence"):
        assert key in s
    assert len(s["eps"]) == len(s["eps_iterations"]) == T
    assert len(s["band_convergence_iterations"]) == 4
    json.dumps(s)  # JSON-ready


def test_runs_are_reproducible(one_thread):
    # The same config, computed twice without the cache, gives the same eps curve bit for bit.
    a = dipnb.run("trajectories", progress=False, cache=False, **TINY).data["eps"]
    b = dipnb.run("trajectories", progress=False, cache=False, **TINY).data["eps"]
    assert np.array_equal(a, b)


def test_area_sweep_uses_cached_sub_runs():
    res = dipnb.run("trajectories-area", progress=False, **TINY_AREA)
    d = res.data
    assert d["eps"].shape[0] == 3 and d["targets"].shape == (3, 1, 32, 32)
    assert d["source"] == "synthetic" and d["divergence"].shape == (3,)
    s = res.summary()
    assert set(s["divergence_by_area"]) == {"0.2", "0.6", "1"}
    # every area is a cached trajectories result, so a rerun of one area loads it
    sub = dipnb.run("trajectories", progress=False, **res.config.sub_config(0.6))
    assert sub.cached
    assert sub.data["snapshots"] is None and sub.data["key_outputs"]["first"] is None


def test_cli_runs_and_rejects_bad_values(tmp_path, capsys):
    out = tmp_path / "s.json"
    args = ["run", "trajectories", "--quiet", "--json", str(out)]
    sets = [f"{k}={v}" for k, v in TINY.items()]
    argv = args + [x for kv in sets for x in ("--set", kv)]
    assert main(argv) == 0
    summary = json.loads(out.read_text())["summary"]
    assert len(summary["eps"]) == len(summary["eps_iterations"])
    assert main(["run", "trajectories", "--set", "image=nope"]) == 2
    assert main(["run", "trajectories", "--set", "width=-3"]) == 2
    assert main(["run", "trajectories", "--set", "iterations=ten"]) == 2
    assert main(["run", "trajectories-area", "--set", "source=files", "--set", "areas=0.2,0.25,0.3"]) == 2
    err = capsys.readouterr().err
    assert "unknown image" in err and "no triangle file" in err


def test_plots_draw(tmp_path):
    import matplotlib.pyplot as plt

    from dipnb.plots import trajectories as P

    d = dipnb.run("trajectories", progress=False, **TINY).data
    P.plot_eps(d)
    P.fig1_outputs({"tiny": d})
    P.fig5_spectra({"tiny": d}, iterations=(0, 4, 8))
    P.band_figure({"tiny": d}, delta=0.05)
    frames, titles = P.animation_frames(d)
    assert len(frames) == len(titles) == 4
    a = dipnb.run("trajectories-area", progress=False, **TINY_AREA).data
    fig = P.area_figure(a)
    fig.savefig(tmp_path / "area.png")
    plt.close("all")


def test_high_band_ratio_measures_the_output_itself():
    from dipnb.experiments.trajectories import high_band_ratio

    n = 32
    xx = np.arange(n)[None, None, :] * np.ones((1, n, 1))
    target = 0.5 + 0.2 * np.cos(2 * np.pi * 0.375 * xx)  # (1, n, n): all its variation above 0.25
    smooth = np.full_like(target, 0.5)
    half = 0.5 + 0.1 * np.cos(2 * np.pi * 0.375 * xx)
    data = {"target": target, "key_outputs": {"first": np.stack([smooth, half]), "second": None}}
    np.testing.assert_allclose(high_band_ratio(data, "first"), [0.0, 0.25], atol=1e-12)
    assert np.isnan(high_band_ratio(data, "second")).all()
    with pytest.raises(ConfigError, match="cutoff"):
        high_band_ratio(data, "first", cutoff=0.5)
    with pytest.raises(ConfigError, match="key"):
        high_band_ratio(data, "third")
