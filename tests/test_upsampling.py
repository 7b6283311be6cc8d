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
    err = np.abs(S.analytic_response(mode, stride, k) - measured).max()
    assert err < U.RESPONSE_TOLERANCE


@pytest.mark.parametrize("stride", (2, 4, 8, 16))
def test_even_bilinear_needs_the_cosine(stride):
    """Without |cos(pi k)| the squared Dirichlet kernel misses torch's even-stride bilinear."""
    k, measured = S.measured_response("bilinear", stride)
    d = S.analytic_response("nearest", stride, k) ** 2
    assert np.abs(d - measured).max() > 1e-3
    np.testing.assert_allclose(d * np.abs(np.cos(np.pi * k)), measured, atol=1e-12)


def test_closed_form_is_one_periodic_and_one_at_dc():
    k = np.array([0.0, 1.0, 0.1, 1.1])
    for mode in MODES:
        r = S.analytic_response(mode, 4, k)
        assert r[0] == r[1] == 1.0
        assert r[2] == pytest.approx(r[3])


@pytest.mark.parametrize("stride", (1, 2, 3, 4, 7))
@pytest.mark.parametrize("mode", MODES)
def test_zero_insertion_equals_torch_ends_included(mode, stride, np_rng):
    x = np_rng.standard_normal(37)  # odd length
    y, u, h = S.upsample_by_zero_insertion(x, mode, stride)
    assert y.shape == u.shape == (37 * stride,)
    assert np.count_nonzero(u) == np.count_nonzero(x)
    assert h.sum() == pytest.approx(stride)
    np.testing.assert_allclose(y, S.torch_upsample_1d(x, mode, stride), atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_response_data(mode):
    r = U.response_data(mode, 8)
    assert r["k"].shape == r["measured"].shape == r["analytic"].shape == r["continuous"].shape
    assert r["max_abs_error"] < 1e-12 and r["discrete_error"] < 1e-12
    assert r["decomposition_error"] < 1e-12 and r["separable_error"] < 1e-12
    assert r["continuous_error_low"] < r["continuous_error"]
    # the printed formulas near DC, computed from the formulas (not their value written in at k = 0)
    assert S.paper_response(mode, 8, 1e-6) == pytest.approx(8 if mode == "bilinear" else 1, rel=1e-8)


@pytest.mark.parametrize("stride", (1, 2, 3, 8, 32))
@pytest.mark.parametrize("mode", MODES)
def test_dc_gain_is_measured_from_torch(mode, stride):
    assert S.dc_gain(mode, stride) == pytest.approx(stride, abs=1e-12)
    h, _ = S.upsampling_kernel(mode, stride)
    assert S.dc_gain(mode, stride) == pytest.approx(h.sum(), abs=1e-12)


# --------------------------------------------------------------------------------------------
# The decoder's fixed kernel, and a kernel of another stride
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", (1, 2, 3, 4, 8))
@pytest.mark.parametrize("mode", MODES)
def test_upsampling_matrix_with_own_kernel_is_torch(mode, stride, np_rng):
    import torch
    import torch.nn.functional as F

    from dipnb import models as M

    x = torch.as_tensor(np_rng.standard_normal((2, 3, 5, 7)))  # odd sides, ends included
    kw = {"align_corners": False} if mode == "bilinear" else {}
    ref = F.interpolate(x, scale_factor=stride, mode=mode, **kw)
    out = M.FixedKernelUpsample(mode, stride, stride)(x)
    assert out.shape == ref.shape == (2, 3, 5 * stride, 7 * stride)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_wider_kernel_keeps_dc_and_damps_high_frequencies(mode):
    from dipnb import models as M

    n, L = 64, 4
    own = M.upsampling_matrix(n, mode, L, L).numpy()  # (256, 64)
    wide = M.upsampling_matrix(n, mode, L, 8 * L).numpy()
    np.testing.assert_allclose(wide.sum(axis=1), 1.0, atol=1e-12)  # a constant stays constant
    x = np.cos(np.pi * 0.5 * np.arange(n))  # 0.25 cycles per input sample

    def middle_energy(u):  # away from the ends, where the edge extension acts
        y = u @ x
        return float(np.mean(y[64:-64] ** 2))

    assert middle_energy(wide) < 0.01 * middle_energy(own)


def test_decoder_kernel_stride_changes_only_the_kernel():
    import torch

    from dipnb import models as M

    a = M.build_decoder(seed=3, stride=4, width=8, in_channels=4)
    b = M.build_decoder(seed=3, stride=4, width=8, in_channels=4, kernel_stride=32)
    c = M.build_decoder(seed=3, stride=4, width=8, in_channels=4, kernel_stride=4)
    assert M.count_parameters(a) == M.count_parameters(b)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)  # same learned layers, same initial weights
    z = torch.randn(1, 4, 6, 5)
    assert b(z).shape == a(z).shape == (1, 1, 24, 20)
    assert not torch.allclose(a(z), b(z))
    torch.testing.assert_close(a(z), c(z), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="kernel_stride"):
        M.build_decoder(kernel_stride=-1)


def test_kernel_stride_config(images):
    cfg, _, _ = dipnb.experiments.make_config("upsampling", "quick", **{**TINY, "stride": 4, "base_stride": 4,
                                                                        "kernel_stride": 4})
    assert cfg.kernel_stride == 0  # the stride's own kernel has one name
    with pytest.raises(ConfigError, match="base_stride equal to stride"):
        dipnb.experiments.make_config("upsampling", "quick", **{**TINY, "stride": 4, "base_stride": 2,
                                                                "kernel_stride": 8})
    with pytest.raises(ConfigError, match="kernel_stride must be an integer"):
        dipnb.experiments.make_config("upsampling", "quick", **{**TINY, "stride": 4, "kernel_stride": -1})


CONTROL_TINY = dict(image="barbara", downsample=16, width=4, iterations=12, record_every=3, n_bands=8,
                    stride=2, kernel_stride=8, seeds=2)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"kernel_stride": 2}, "must be larger than stride"),
        ({"seeds": 0}, "seeds must be an integer >= 1"),
        ({"stride": 0}, "stride must be an integer >= 1"),
        ({"kernel_stride": 48}, "does not divide the image size"),
        ({"mode": "area"}, "use one of nearest, bilinear"),
    ],
)
def test_control_bad_config(images, override, message):
    with pytest.raises(ConfigError, match=message):
        dipnb.experiments.make_config("upsampling-control", "quick", **{**CONTROL_TINY, **override})


def test_control_tiny_run(images, one_thread):
    res = dipnb.run("upsampling-control", verbose=False, **CONTROL_TINY)
    V, S = len(U.CONTROL_VARIANTS), 2
    for key in ("hf_energy", "fitted_frequency", "final_psnr", "top_half_error"):
        assert res[key].shape == (V, S) and np.all(np.isfinite(res[key]))
    assert res["hf_energy_curves"].shape == (V, S, 5)
    json.dumps(res.summary())
    # the first variant is the small stride as it is: the plain upsampling run, from the cache
    plain = dipnb.run("upsampling", verbose=False, **{k: v for k, v in CONTROL_TINY.items()
                                                      if k not in ("kernel_stride", "seeds")}, base_stride=2)
    assert plain.cached
    assert res["hf_energy"][0, 0] == pytest.approx(plain["runs"][2]["hf_energy_final"])
    # the wide-kernel variant differs from it only by the kernel, so it gives another output
    assert res["hf_energy"][1, 0] != pytest.approx(res["hf_energy"][0, 0])


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
        S.analytic_response("nearest", bad, 0.1)


def test_bad_mode_in_functions():
    with pytest.raises(ConfigError, match="nearest or bilinear"):
        S.upsample_by_zero_insertion(np.ones(4), "bicubic", 2)


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ({"stride": 0}, "stride must be an integer >= 1"),
        ({"stride": -4}, "stride must be an integer >= 1"),
        ({"base_stride": 0}, "base_stride must be an integer >= 1"),
        ({"mode": "bicubic"}, "use one of nearest, bilinear"),
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
    assert "stride must be an integer >= 1" in err and "one of nearest, bilinear" in err and "does not divide" in err


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
