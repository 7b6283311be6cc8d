"""Tests of the upsampling chapter: the operator, its responses, the experiment, its figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dipnb
from dipnb import spectral as S
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import upsampling as U

MODES = ("nearest", "bilinear")
STRIDES = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32)

# A run small enough for a unit test: 32x32 grayscale Barbara, a 4-channel decoder.
TINY = dict(image="barbara", downsample=16, width=4, iterations=12, record_every=3, snapshot_every=6, n_bands=8)


# --------------------------------------------------------------------------------------------
# The operator and its responses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("mode", MODES)
def test_closed_form_matches_torch(mode, stride):
    k, measured = S.measured_response(mode, stride)
    err = np.abs(U.analytic_response(mode, stride, k) - measured).max()
    assert err < U.RESPONSE_TOLERANCE


@pytest.mark.parametrize("stride", (2, 4, 8, 16))
def test_even_bilinear_needs_the_cosine(stride):
    """Without |cos(pi k)| the squared Dirichlet kernel misses torch's even-stride bilinear."""
    k, measured = S.measured_response("bilinear", stride)
    d = U.analytic_response("nearest", stride, k) ** 2
    assert np.abs(d - measured).max() > 1e-3
    np.testing.assert_allclose(d * np.abs(np.cos(np.pi * k)), measured, atol=1e-12)


def test_closed_form_is_one_periodic_and_one_at_dc():
    k = np.array([0.0, 1.0, 0.1, 1.1])
    for mode in MODES:
        r = U.analytic_response(mode, 4, k)
        assert r[0] == r[1] == 1.0
        assert r[2] == pytest.approx(r[3])


@pytest.mark.parametrize("stride", (1, 2, 3, 4, 7))
@pytest.mark.parametrize("mode", MODES)
def test_zero_insertion_equals_torch_ends_included(mode, stride, np_rng):
    x = np_rng.standard_normal(37)  # odd length
    y, u, h = U.upsample_by_zero_insertion(x, mode, stride)
    assert y.shape == u.shape == (37 * stride,)
    assert np.count_nonzero(u) == np.count_nonzero(x)
    assert h.sum() == pytest.approx(stride)
    np.testing.assert_allclose(y, U.torch_upsample_1d(x, mode, stride), atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_response_data(mode):
    r = U.response_data(mode, 8)
    assert r["k"].shape == r["measured"].shape == r["analytic"].shape == r["continuous"].shape
    assert r["max_abs_error"] < 1e-12 and r["discrete_error"] < 1e-12
    assert r["decomposition_error"] < 1e-12 and r["separable_error"] < 1e-12
    assert r["continuous_error_low"] < r["continuous_error"]
    assert r["paper"][0] == (8 if mode == "bilinear" else 1), "the printed formulas' DC gains"


def test_high_frequency_energy_of_a_cosine():
    n = 64
    yy, xx = np.mgrid[:n, :n]
    img = 0.5 + 0.2 * np.cos(2 * np.pi * 0.375 * xx)  # 0.375 cycles/pixel
    assert U.high_frequency_energy(img[None], 0.25) == pytest.approx(0.2**2 / 2)
    assert U.high_frequency_energy(img[None], 0.4) == pytest.approx(0.0, abs=1e-20)
    assert U.high_frequency_energy(np.full((1, n, n), 0.7), 0.1) == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_bad_stride_in_functions(bad):
    with pytest.raises(ConfigError, match="positive integer"):
        U.analytic_response("nearest", bad, 0.1)


def test_bad_mode_in_functions():
    with pytest.raises(ConfigError, match="nearest or bilinear"):
        U.upsample_by_zero_insertion(np.ones(4), "bicubic", 2)


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ({"stride": 0}, "stride must be a positive integer"),
        ({"stride": -4}, "stride must be a positive integer"),
        ({"base_stride": 0}, "base_stride must be a positive integer"),
        ({"mode": "bicubic"}, "nearest or bilinear"),
        ({"stride": 3}, "does not divide the image size"),
        ({"base_stride": 48, "downsample": 4}, "128x128"),
        ({"image": "lena"}, "unknown image"),
        ({"downsample": 0}, "downsample"),
        ({"width": 0}, "width"),
        ({"iterations": 0}, "iterations"),
        ({"lr": -1.0}, "lr"),
        ({"n_bands": 1}, "n_bands"),
        ({"n_bands": 17}, "n_bands"),
        ({"hf_cutoff": 0.6}, "hf_cutoff"),
        ({"record_every": 0}, "record_every"),
    ],
)
def test_bad_config(images, override, message):
    with pytest.raises(ConfigError, match=message):
        dipnb.experiments.make_config("upsampling", "quick", **{**TINY, "stride": 4, **override})


def test_size_error_suggests_strides(images):
    with pytest.raises(ConfigError) as e:
        dipnb.experiments.make_config("upsampling", "quick", image="barbara", downsample=4, stride=48)
    assert "1, 2, 4, 8, 16, 32, 64" in str(e.value)


def test_tiny_run(images, one_thread):
    res = dipnb.run("upsampling", stride=8, base_stride=2, verbose=False, **TINY)
    runs = res["runs"]
    assert sorted(runs) == [2, 8]
    for s, r in runs.items():
        T = r["iterations"].size
        assert r["iterations"][-1] == 11 and T == 5
        assert r["band_errors"].shape == (T, 8) and np.all(r["band_errors"] >= 0)
        assert r["hf_energy"].shape == (T,)
        assert r["final"].shape == (1, 32, 32)
        assert r["snapshots"].shape[1:] == (1, 32, 32)
        assert r["response"]["stride"] == s
    assert res["target"].shape == (1, 32, 32)
    summary = res.summary()
    assert set(summary) >= {"max_abs_error", "high_frequency_energy", "strides", "iteration"}
    assert set(summary["high_frequency_energy"]) == {"2", "8"}
    assert summary["max_abs_error"] < U.RESPONSE_TOLERANCE
    json.dumps(summary)
    # each stride was cached as a sub-run of its own
    again = dipnb.run("upsampling", stride=8, base_stride=8, verbose=False, **TINY)
    assert again.cached
    np.testing.assert_array_equal(again["runs"][8]["final"], runs[8]["final"])


def test_tiny_run_loss_drops(images, one_thread):
    res = dipnb.run("upsampling", stride=4, base_stride=4, verbose=False, **{**TINY, "iterations": 40})
    loss = res["runs"][4]["loss"]
    assert loss[-1] < 0.5 * loss[0]


def test_cli(images, tmp_path, capsys):
    out = tmp_path / "up.json"
    sets = [f"--set={k}={v}" for k, v in {**TINY, "stride": 4, "base_stride": 2}.items()]
    assert main(["run", "upsampling", *sets, "--quiet", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert set(summary["high_frequency_energy"]) == {"2", "4"}
    assert summary["max_abs_error"] < 1e-9
    assert main(["run", "upsampling", "--set", "stride=0"]) == 2
    assert main(["run", "upsampling", "--set", "mode=cubic"]) == 2
    assert main(["run", "upsampling", "--set", "downsample=4", "--set", "stride=5"]) == 2
    err = capsys.readouterr().err
    assert "positive integer" in err and "nearest or bilinear" in err and "does not divide" in err


# --------------------------------------------------------------------------------------------
# Figures and controls
# --------------------------------------------------------------------------------------------


def test_plots(images, one_thread):
    import matplotlib.pyplot as plt

    from dipnb.plots import upsampling as P

    res = dipnb.run("upsampling", stride=8, base_stride=2, verbose=False, **TINY)
    for fig in (P.fig4(res), P.stride_panel(res["runs"][8]), P.plot_decomposition(np.arange(5.0), "nearest", 3)):
        assert fig.axes
        plt.close(fig)
    resps = [U.response_data("bilinear", s) for s in (2, 4)]
    for fn in (P.plot_responses, P.plot_formula_errors):
        ax = fn(resps)
        assert ax.get_xlabel().startswith("frequency")


def test_stride_mode_slider():
    from dipnb.plots import upsampling as P

    png = b"\x89PNG fake"
    box = P.stride_mode_slider({"bilinear": [png, png, png], "nearest": [png, png, png]}, [2, 4, 8], value=4)
    assert box.slider.index == 1 and box.toggle.index == 0
    assert len(box.stack.children) == 2 and all(len(s.children) == 3 for s in box.stack.children)
    assert all(s.selected_index == 1 for s in box.stack.children)
    with pytest.raises(ValueError, match="pictures"):
        P.stride_mode_slider({"bilinear": [png]}, [2, 4])


def test_live_explorer_computes_only_when_asked():
    import matplotlib.pyplot as plt

    from dipnb.plots import upsampling as P

    calls = []

    def compute(mode, stride):
        calls.append((mode, stride))
        if stride == 3:
            raise ConfigError("stride=3 does not divide the image size")
        return plt.figure()

    box = P.live_explorer(compute, [2, 3, 4], value=4)
    assert calls == []  # building the controls computes nothing
    box.button.click()
    assert calls == [("bilinear", 4)]
    calls.clear()
    box.show("nearest", 2)
    box.show("bilinear", 3)  # an error is shown, not raised
    assert calls == [("nearest", 2), ("bilinear", 3)]


@pytest.mark.slow
def test_quick_profile_large_stride_is_smoother(images):
    res = dipnb.run("upsampling", profile="quick", verbose=False)
    hfe = res.summary()["high_frequency_energy"]
    assert hfe["32"] < 0.5 * hfe["4"]
