"""The kernel-spectrum and kernel-view experiments on tiny nets: data shapes, summary keys, every
parameter's validation, the command line, and the chapter's plots under Agg."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

import dipnb
from dipnb import cli
from dipnb.errors import ConfigError
from dipnb.experiments import make_config
from dipnb.experiments.kernel_view import loglog_slope, predict, spread, sum_of_sines
from dipnb.models import resolve_scales
from dipnb.plots import kernel_view as kv

TINY_KERNEL = dict(length=32, width=4, depth=4)
TINY = dict(TINY_KERNEL, frequencies=(2, 5, 9), gd_iterations=40, adam_iterations=20)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny conv run and one fully connected run, shared by the tests of this module."""
    import os

    old = os.environ.get("DIPNB_CACHE")
    os.environ["DIPNB_CACHE"] = str(tmp_path_factory.mktemp("kv-cache"))
    try:
        conv = dipnb.run("kernel-view", profile="quick", progress=False, verbose=False, **TINY)
        fc = dipnb.run("kernel-view", profile="quick", progress=False, verbose=False, model="linear", **TINY)
    finally:
        if old is None:
            os.environ.pop("DIPNB_CACHE", None)
        else:
            os.environ["DIPNB_CACHE"] = old
    return conv, fc


def test_kernel_spectrum_data():
    res = dipnb.run("kernel-spectrum", profile="quick", progress=False, verbose=False, **TINY_KERNEL)
    d = res.data
    n = 32
    assert d["K"].shape == (n, n) and d["eigenvectors"].shape == (n, n)
    assert np.all(np.diff(d["eigenvalues"]) <= 0), "eigenvalues largest first"
    assert d["rho"].shape == (n // 2 + 1,) and d["f0"].shape == (n,) and d["z"].shape == (n,)
    assert 0 <= d["diagonal_fraction"] <= 1 and 0 <= d["diagonal_fraction_centered"] <= 1
    assert d["offset_profile"][-1] == pytest.approx(1.0)
    assert d["scales"] == resolve_scales(4, 32) == 2
    s = res.summary()
    for key in ("parameters", "fourier_diagonal_fraction", "eigen_order_spearman", "top_eigenvalues", "rho_at"):
        assert key in s
    json.dumps(s)


def test_kernel_view_data_and_summary(tiny):
    conv, _ = tiny
    d, ks = conv.data, np.array(TINY["frequencies"])
    T = TINY["gd_iterations"]
    assert d["gd"]["amplitudes"].shape == (T, 3) and d["adam"]["amplitudes"].shape == (TINY["adam_iterations"], 3)
    assert d["linearised_amplitudes"].shape == (T, 3)
    assert d["predicted_iterations"].shape == (3,) and d["measured_iterations"].shape == (3,)
    np.testing.assert_array_equal(d["measured_iterations"], d["gd"]["converged"])
    np.testing.assert_allclose(d["target"], sum_of_sines(32, ks, 1.0))
    # the automatic step is a stable one: below the largest stable step 2 / lambda_max
    assert 0 < d["gd_lr"] < d["stable_lr"] and d["gd_lr"] == pytest.approx(d["gd_step_fraction"] * d["stable_lr"])
    assert list(d["gd"]["checkpoints"]) == [1, 4, 40]
    assert d["gd"]["rho_checkpoints"].shape == (3, 17)
    assert d["gd"]["loss"][-1] < d["gd"]["loss"][0], "gradient descent must lower the loss"
    s = conv.summary()
    for key in ("spearman_predicted_vs_measured", "predicted_iterations", "measured_iterations",
                "fourier_diagonal_fraction", "adam", "linearised_iterations", "spread_predicted", "gd"):
        assert key in s, key
    assert set(s["predicted_iterations"]) == {"2", "5", "9"}
    for key in ("measured_iterations", "spearman_predicted_vs_measured", "loglog_slope_vs_predicted"):
        assert key in s["adam"]
    json.dumps(s)  # JSON-ready: no numpy scalars, no infinities


def test_kernel_view_shares_the_kernel_run(tiny):
    conv, fc = tiny
    again = dipnb.run("kernel-spectrum", profile="quick", progress=False, verbose=False, **TINY_KERNEL)
    np.testing.assert_allclose(conv["kernel"]["K"], again["K"], rtol=1e-6)
    # the fully connected net gets a stable automatic step of its own, and descends with it
    assert fc.config.model == "linear" and 0 < fc["gd_lr"] < fc["stable_lr"]
    assert fc["gd"]["loss"][-1] < fc["gd"]["loss"][0]
    # the predict helper reproduces what the experiment stored
    p = predict(conv["kernel"], TINY["frequencies"], step_fraction=conv["gd_step_fraction"])
    np.testing.assert_array_equal(p["predicted"], conv["predicted_iterations"])


def test_adam_as_headline():
    res = dipnb.run("kernel-view", profile="quick", progress=False, verbose=False, optimizer="adam",
                    **{**TINY, "adam_iterations": 10})
    assert res["gd"] is None
    np.testing.assert_array_equal(res["measured_iterations"], res["adam"]["converged"])
    assert "gd" not in res.summary()


@pytest.mark.parametrize(
    "override, match",
    [
        ({"model": "mlp"}, "model"),
        ({"length": 4}, "length"),
        ({"length": 10_000}, "length"),
        ({"width": 0}, "width"),
        ({"depth": 1}, "depth"),
        ({"scales": 3}, "scales"),
        ({"scales": -2}, "scales"),
        ({"length": 34, "scales": 2}, "halved"),
        ({"upsample_mode": "linear"}, "called bilinear"),
        ({"seed": -1}, "seed"),
        ({"frequencies": (3,)}, "at least 2"),
        ({"frequencies": (2, 16)}, "frequency 16"),
        ({"frequencies": (0, 3)}, "each of frequencies must be an integer > 0, got 0"),
        ({"frequencies": (3, 3)}, "must not repeat"),
        ({"amplitude": 0.0}, "amplitude"),
        ({"delta": -0.1}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"gd_step": 1.0}, "gd_step"),
        ({"gd_step": -0.1}, "gd_step"),
        ({"gd_iterations": 0}, "gd_iterations"),
        ({"adam_lr": 0.0}, "adam_lr"),
        ({"adam_iterations": 0}, "adam_iterations"),
        ({"nonsense": 1}, "unknown parameter"),
        ({"width": 2.5}, "wrong type"),
    ],
)
def test_bad_values_raise(override, match):
    with pytest.raises(ConfigError, match=match):
        make_config("kernel-view", "quick", **{**TINY, **override})


def test_kernel_spectrum_bad_values_raise():
    with pytest.raises(ConfigError, match="model"):
        make_config("kernel-spectrum", "quick", model="relunet")
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_config("kernel-spectrum", "quick", frequencies=(2, 3))


def test_cli(tmp_path, capsys):
    out = tmp_path / "kv.json"
    sets = ["length=32", "width=4", "depth=4", "frequencies=2,5,9", "gd_iterations=30", "adam_iterations=10",
            "model=conv", "optimizer=gd", "seed=1"]
    argv = ["run", "kernel-view", "--profile", "quick", "--quiet", "--json", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert cli.main(argv) == 0
    summary = json.loads(out.read_text())["summary"]
    assert summary["frequencies"] == [2, 5, 9] and "spearman_predicted_vs_measured" in summary
    assert cli.main(["run", "kernel-view", "--set", "model=mlp"]) == 2
    assert cli.main(["run", "kernel-view", "--set", "frequencies=2,200"]) == 2
    assert cli.main(["run", "kernel-view", "--set", "optimizer=momentum"]) == 2
    assert "error" in capsys.readouterr().err


def test_helpers():
    assert spread([10, 20, 40]) == 4.0 and spread([40, 10, 20]) == 4.0
    assert spread([5, np.inf]) == np.inf and np.isnan(spread([np.inf, np.inf]))
    assert loglog_slope([1, 10, 100], [3, 30, 300]) == pytest.approx(1.0)
    assert loglog_slope([1, 10, 100], [5, 5 * 10**0.5, 50]) == pytest.approx(0.5)
    assert np.isnan(loglog_slope([1, np.inf], [2, 3]))


def test_plots_run(tiny):
    conv, fc = tiny
    d, ks = conv.data, TINY["frequencies"]
    kv.kernels_figure({"conv": d["kernel"]["K"], "fc": fc["kernel"]["K"]}, zoom=16)
    kv.eigen_figure({"conv": d["kernel"], "fc": fc["kernel"]})
    fig, axes = plt.subplots(2, 3)
    kv.plot_spectral_density({"conv": d["kernel"]["rho"], "fc": fc["kernel"]["rho"]}, axes[0, 0], mark=ks)
    kv.plot_offset_profile({"conv": d["kernel"]["offset_profile"]}, axes[0, 1], max_offset=8)
    kv.plot_predicted_vs_measured(ks, d["predicted_iterations"],
                                  {"GD": d["gd"]["converged"], "Adam": np.array([1.0, np.inf, 3.0])}, axes[0, 2])
    kv.plot_se_curves(d["gd"]["iterations"], d["gd"]["amplitudes"], ks, amplitude=1.0, delta=0.01, ax=axes[1, 0],
                      linearised=d["linearised_amplitudes"], title="GD")
    kv.plot_kernel_drift(d["gd"]["checkpoints"], d["gd"]["rho_checkpoints"], d["kernel"]["rho"], ks, axes[1, 1])
    kv.plot_width_diagonality([4, 8], {"conv": [0.3, 0.5]}, axes[1, 2])
    kv.se_figure(d)
    kv.spectrum_panel(d["kernel"], "tiny", reference=fc["kernel"]["rho"])
    assert axes[0, 2].get_xscale() == "log"
