"""Tests of the ``decoupling-1d`` experiment (conv vs linear on two sines) and its figures."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dipnb  # noqa: E402
from dipnb import cli  # noqa: E402
from dipnb import data as D  # noqa: E402
from dipnb import spectral as S  # noqa: E402
from dipnb.errors import ConfigError  # noqa: E402
from dipnb.experiments.decoupling import DecouplingConfig, build  # noqa: E402
from dipnb.models import resolve_scales  # noqa: E402
from dipnb.plots import decoupling as P  # noqa: E402

# A tiny config: 64 samples, 2 and 10 cycles, a 4-layer net of 8 channels (well under a second).
TINY = dict(length=64, k1=2, k2=10, depth=4, width=8, iterations=25)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path))
    monkeypatch.setenv("DIPNB_PROGRESS", "0")


@pytest.mark.parametrize(
    "bad, words",
    [
        (dict(model="mlp"), "model"),
        (dict(k1=0), "k1"),
        (dict(k2=128), "k2"),
        (dict(k1=50), "differ"),
        (dict(length=4), "length"),
        (dict(depth=1), "depth"),
        (dict(width=0), "width"),
        (dict(scales=6), "scales"),
        (dict(scales=-2), "scales"),
        (dict(length=120, scales=4), "halved"),
        (dict(delta=0.0), "delta"),
        (dict(seed=-1), "seed"),
        (dict(iterations=0), "iterations"),
        (dict(lr=-1e-3), "lr"),
    ],
)
def test_bad_values_raise_config_error(bad, words):
    with pytest.raises(ConfigError, match=words):
        dipnb.experiments.make_config("decoupling-1d", "quick", **bad)


def test_wrong_type_is_a_config_error():
    with pytest.raises(ConfigError, match="wrong type"):
        dipnb.experiments.make_config("decoupling-1d", "quick", k1=5.5)


def test_resolve_scales():
    assert resolve_scales(10, 256) == 5  # every down layer strided, as in the paper's net
    assert resolve_scales(24, 256) == 5  # capped: the coarsest signal keeps 8 samples
    assert resolve_scales(10, 64) == 3
    assert resolve_scales(10, 96) == 3  # 96 = 8 * 12
    assert resolve_scales(10, 256, 0) == 0  # an explicit value is kept
    assert resolve_scales(4, 256) == 2


def test_target_amplitudes_are_one():
    x = D.two_sines(256, 5, 50)
    assert S.amplitude_at(x, 5) == pytest.approx(1.0, abs=1e-5)
    assert S.amplitude_at(x, 50) == pytest.approx(1.0, abs=1e-5)
    assert S.amplitude_at(x, 20) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("model", ["conv", "linear"])
def test_build_shapes(model):
    cfg = DecouplingConfig(model=model, **{k: v for k, v in TINY.items() if k != "iterations"})
    net, z = build(cfg)
    assert z.shape == (1, 1, 64)
    assert net(z).shape == (1, 1, 64)


@pytest.mark.parametrize("model", ["conv", "linear"])
def test_tiny_run_shapes_and_summary(model):
    res = dipnb.run("decoupling-1d", profile="quick", model=model, verbose=False, **TINY)
    d = res.data
    T = TINY["iterations"]
    assert d["iterations"].shape == (T,)
    assert d["se"].shape == d["amplitude"].shape == (2, T)
    assert np.all(d["se"] >= 0)
    assert d["signal"].shape == (64,)
    assert "end" in d["outputs"] and d["outputs"]["end"].shape == (64,)
    assert d["output_iterations"]["end"] == T - 1
    assert d["loss"][-1] < d["loss"][0], "the loss should drop"
    s = res.summary()
    assert set(s["convergence_iteration"]) == {"2", "10"}
    for v in s["convergence_iteration"].values():
        assert v is None or 0 <= v < T
    assert set(s["se"]) == {"2", "10"} and len(s["se"]["2"]) == T
    json.dumps(cli._jsonable(s))  # JSON-ready
    # The same config again comes from the cache.
    assert dipnb.run("decoupling-1d", profile="quick", model=model, verbose=False, **TINY).cached


def test_outputs_at_convergence_match_the_iterations():
    res = dipnb.run("decoupling-1d", profile="quick", model="linear", verbose=False, **dict(TINY, iterations=60))
    d = res.data
    for name, it in d["output_iterations"].items():
        sig = d["outputs"][name]
        k = {"k1=2": 2, "k2=10": 10}.get(name)
        if k is not None:
            i = d["frequencies"].index(k)
            se = (S.amplitude_at(sig, k) - 1.0) ** 2
            assert se == pytest.approx(d["se"][i, it], rel=1e-4, abs=1e-6)
            assert se <= 0.01


def test_cli_runs_and_rejects(tmp_path):
    out = tmp_path / "s.json"
    args = ["run", "decoupling-1d", "--profile", "quick", "--quiet", "--json", str(out)]
    args += [f"--set={k}={v}" for k, v in TINY.items()]
    assert cli.main(args) == 0
    summary = json.loads(out.read_text())["summary"]
    assert "convergence_iteration" in summary and "se" in summary
    assert cli.main(["run", "decoupling-1d", "--set", "model=mlp"]) == 2
    assert cli.main(["run", "decoupling-1d", "--set", "k2=500"]) == 2


def test_figures_under_agg():
    res = dipnb.run("decoupling-1d", profile="quick", model="conv", verbose=False, **TINY)
    fig = P.decoupling_figure(res.data, title="tiny")
    assert len(fig.axes) == 5
    plt.close(fig)
    fig = P.se_panels({"a": res.data, "b": res.data})
    assert len(fig.axes) == 2
    plt.close(fig)


def test_conv_separates_and_linear_does_not():
    """The chapter's headline at a CPU size (a few seconds): conv k2 >= 2x later than k1; linear within 1.5x."""
    conv = dipnb.run("decoupling-1d", profile="quick", model="conv", width=64, verbose=False).data
    lin = dipnb.run("decoupling-1d", profile="quick", model="linear", width=256, verbose=False).data
    assert conv["ratio"] is not None and conv["ratio"] >= 2, conv["convergence_iteration"]
    assert lin["ratio"] is not None and 1 / 1.5 <= lin["ratio"] <= 1.5, lin["convergence_iteration"]
