"""The gp-prior experiments: shapes, summaries, bad parameters, the CLI and the figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dipnb
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import gp_prior as G

TINY_SAMPLES = dict(size=40, depth=2, width=4, samples=3, max_offset=4, blocks=2, keep=2)
TINY_KERNEL = dict(length=48, stages=2, width=8, in_channels=4, samples=60, margin=4, max_offset=8)
TINY_CHAPTER = dict(size=64, depth=2, width=4, samples=2, depths=(1, 2), kernel_width=8, kernel_samples=40)


@pytest.fixture
def samples_result():
    return dipnb.run("gp-prior-samples", verbose=False, **TINY_SAMPLES)


def test_samples_shapes_and_normalisation(samples_result):
    d = samples_result.data
    assert d["n_samples"] == 9, "3 nets x 3 output channels"
    assert d["examples"].shape == (2, 3, 40, 40)
    assert d["covariance_map"].shape == (9, 9)
    assert d["covariance_map"][4, 4] == pytest.approx(1.0)
    assert d["profile"].shape == d["profile_x"].shape == (5,)
    assert d["block_profiles"].shape == (4, 5)
    assert d["variance_map"].shape == d["power_2d"].shape == (40, 40)
    assert d["band_energy"].shape == (G.N_BANDS,)
    assert d["white_high_low_energy_ratio"] > 5, "white noise has far more bins at high frequency"
    summary = samples_result.summary()
    for key in ("correlation_length", "stationarity_max_deviation", "high_low_energy_ratio"):
        assert key in summary


def test_samples_are_reproducible(samples_result):
    again = dipnb.run("gp-prior-samples", verbose=False, cache=False, **TINY_SAMPLES)
    assert np.array_equal(samples_result["examples"], again["examples"])


def test_sample_skip_outputs_differ_per_net():
    cfg = G.SamplesConfig(**TINY_SAMPLES)
    y = G.sample_skip_outputs(cfg, 0, 2)
    assert y.shape == (2, 3, 40, 40) and y.dtype == np.float32
    assert not np.allclose(y[0], y[1])


def test_kernel_experiment():
    res = dipnb.run("gp-prior-kernel", verbose=False, **TINY_KERNEL)
    d = res.data
    assert d["rho_theory"].shape == d["rho_empirical"].shape == (9,)
    assert d["rho_theory"][0] == d["rho_empirical"][0] == 1.0
    assert d["kernel_theory"].shape == (48, 48)
    assert d["examples"].shape == (4, 48)
    assert set(d["theory_lengths"]) == {"nearest", "bilinear"}
    assert 0 <= res.summary()["kernel_max_abs_error"] < 1


def test_chapter_experiment_and_summary():
    res = dipnb.run("gp-prior", verbose=False, **TINY_CHAPTER)
    s = res.summary()
    for key in ("stationarity_max_deviation", "high_low_energy_ratio", "kernel_max_abs_error",
                "correlation_length_by_depth", "isotropy_max_deviation"):
        assert key in s
    assert set(s["correlation_length_by_depth"]) == {"nearest", "bilinear"}
    assert set(s["correlation_length_by_depth"]["bilinear"]) == {"1", "2"}
    assert set(res["sweep"]["nearest"][1]) >= {"correlation_length", "examples", "covariance_map"}
    # the shown configuration is one point of the sweep: computed once, then loaded
    shown = dipnb.run("gp-prior-samples", verbose=False, size=64, depth=2, width=4, samples=2,
                      upsample_mode="bilinear", seed=0)
    assert shown.cached


@pytest.mark.parametrize(
    "name, overrides, match",
    [
        ("gp-prior", dict(size=60), "multiple of 32"),
        ("gp-prior", dict(depth=0), "depth"),
        ("gp-prior", dict(width=0), "width"),
        ("gp-prior", dict(samples=1), "samples"),
        ("gp-prior", dict(seed=-1), "seed"),
        ("gp-prior", dict(upsample_mode="cubic"), "use one of nearest, bilinear"),
        ("gp-prior", dict(depths=()), "depths"),
        ("gp-prior", dict(depths=(2, 9)), "depths"),
        ("gp-prior", dict(modes=("nearest", "nearest")), "must not repeat"),
        ("gp-prior", dict(modes=("area",)), "'area' in modes is not allowed: use one of nearest, bilinear"),
        ("gp-prior", dict(kernel_width=0), "width"),
        ("gp-prior", dict(kernel_samples=1), "samples"),
        ("gp-prior", dict(kernel_stages=11), "stages"),
        ("gp-prior", dict(kernel_mode="linear"), "one of nearest, bilinear, none"),
        ("gp-prior-samples", dict(size=32, max_offset=12), "too small"),
        ("gp-prior-samples", dict(skip_channels=-1), "skip_channels"),
        ("gp-prior-samples", dict(blocks=0), "blocks"),
        ("gp-prior-samples", dict(keep=-1), "keep"),
        ("gp-prior-samples", dict(in_channels=0), "in_channels"),
        ("gp-prior-kernel", dict(length=64, margin=30), "length"),
        ("gp-prior-kernel", dict(length=100, stages=3), "multiple of 8"),
        ("gp-prior-kernel", dict(bias_std=-0.1), "bias_std"),
    ],
)
def test_bad_parameters_raise(name, overrides, match):
    with pytest.raises(ConfigError, match=match):
        dipnb.experiments.make_config(name, **overrides)


def test_cli_runs_and_writes_summary(tmp_path, capsys):
    out = tmp_path / "gp.json"
    sets = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in TINY_CHAPTER.items()]
    argv = ["run", "gp-prior", "--quiet", "--json", str(out)] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    summary = json.loads(out.read_text())["summary"]
    assert "correlation_length_by_depth" in summary and "kernel_max_abs_error" in summary


@pytest.mark.parametrize("bad", ["upsample_mode=cubic", "depth=two", "samples=1", "colour=red"])
def test_cli_rejects_bad_values(bad, capsys):
    assert main(["run", "gp-prior", "--quiet", "--set", bad]) == 2
    assert "error" in capsys.readouterr().err


def test_plots_draw():
    import matplotlib.pyplot as plt

    from dipnb.plots import gp_prior as P

    res = dipnb.run("gp-prior", verbose=False, **TINY_CHAPTER)
    s, k, sw = res["samples"], res["kernel"], res["sweep"]
    P.show_samples(s["examples"])
    fig, axes = plt.subplots(3, 4)
    ax = iter(axes.flat)
    P.plot_mean_spectrum(s, next(ax))
    P.plot_radial_spectrum(s, next(ax))
    P.plot_covariance_map(s, next(ax))
    P.plot_direction_profiles(s, next(ax))
    P.plot_variance_map(s, next(ax))
    P.plot_block_profiles(s, next(ax))
    P.plot_kernel_samples(k, next(ax))
    P.plot_kernel_comparison(k, next(ax))
    P.plot_kernel_comparison(k, next(ax), centred=True)
    P.plot_correlation_lengths(sw, next(ax))
    P.plot_theory_lengths(k["theory_lengths"], next(ax))
    P.depth_panel(sw, 2)
    assert P.stretch(np.array([1.0, 3.0])).tolist() == [0.0, 1.0]


@pytest.mark.slow
def test_quick_profile_claims(one_thread):
    """The chapter's assertions on the quick profile (about 30 s on a 2-core CPU)."""
    s = dipnb.run("gp-prior", profile="quick", verbose=False).summary()
    tol = G.TOLERANCES
    assert s["stationarity_max_deviation"] < tol["stationarity"]
    assert s["isotropy_max_deviation"] < tol["isotropy"]
    assert s["high_low_energy_ratio"] < tol["high_low_energy_ratio"]
    assert s["kernel_max_abs_error"] < tol["kernel"]
    lengths = s["correlation_length_by_depth"]["bilinear"]
    values = [lengths[k] for k in sorted(lengths, key=int)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_chapter_figures():
    from dipnb.plots import gp_prior as P

    res = dipnb.run("gp-prior", verbose=False, **TINY_CHAPTER)
    s, k = res["samples"], res["kernel"]
    for fig in (P.spectrum_figure(s), P.covariance_figure(s), P.stationarity_figure(s), P.kernel_figure(k),
                P.lengths_figure(res["sweep"], k["theory_lengths"])):
        assert len(fig.axes) >= 2
