"""The `lowfreq-noise` experiment (the paper's Fig. 2) and its figures, on tiny configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dipnb
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import lowfreq_noise as lf
from dipnb.metrics import psnr, ssim
from dipnb.plots import denoising as pden

# 32x32 barbara (grayscale), a 2-scale DIP of 8 channels: well under a second.
TINY = dict(image="barbara", downsample=16, width=8, depth=2, iterations=30, record_every=5, snapshot_every=10)


@pytest.fixture
def tiny(images) -> dict:
    return dict(TINY)


def test_summary_keys_and_shapes(tiny, one_thread):
    r = dipnb.run("lowfreq-noise", verbose=False, **tiny)
    s = r.summary()
    assert {"noisy_psnr", "best_psnr", "best_iteration", "noise", "image"} <= set(s)
    assert s["noise"] == "lowfreq" and s["image"] == "barbara"
    d = r.data
    assert d["clean"].shape == d["noisy"].shape == (1, 32, 32)
    assert d["psnr"].shape == d["iterations"].shape == d["noise_fraction"].shape == (7,)  # 0, 5, ..., 25, 29
    assert d["snapshots"].shape == (4, 1, 32, 32) and list(d["snapshot_iterations"]) == [0, 10, 20, 29]
    assert s["best_psnr"] == pytest.approx(d["psnr"].max())
    assert s["early_iteration"] == 20
    assert s["best_ssim"] == pytest.approx(ssim(d["best_output"], d["clean"]))
    assert s["noisy_ssim"] == pytest.approx(ssim(d["noisy"], d["clean"]))
    json.dumps(s)  # JSON-ready


def test_white_noise_has_the_same_psnr(tiny, one_thread):
    low = dipnb.run("lowfreq-noise", verbose=False, **tiny).data
    white = dipnb.run("lowfreq-noise", verbose=False, noise="white", **tiny).data
    np.testing.assert_array_equal(low["clean"], white["clean"])
    assert white["noisy_psnr"] == pytest.approx(low["noisy_psnr"], abs=0.01)
    assert white["white_sigma"] > 0 and low["white_sigma"] == 0


def test_lowfreq_noise_lies_below_the_cutoff(images):
    cfg = lf.LowFreqNoiseConfig(image="baboon", downsample=8)
    clean, noisy, _ = lf.corrupt(cfg)
    r, share = pden.energy_below(noisy - clean)
    below = share[np.searchsorted(r, cfg.max_cycles, side="right") - 1]
    assert below > 0.95, f"only {below:.3f} of the low-frequency noise lies within {cfg.max_cycles} cycles"
    cfg_w = lf.LowFreqNoiseConfig(image="baboon", downsample=8, noise="white")
    clean, noisy, _ = lf.corrupt(cfg_w)
    r, share = pden.energy_below(noisy - clean)
    assert share[np.searchsorted(r, 4.0, side="right") - 1] < 0.05, "white noise is spread over all frequencies"


def test_matched_white_noise_hits_the_target(np_rng):
    clean = np_rng.uniform(0.2, 0.8, size=(3, 37, 31)).astype(np.float32)  # odd size
    noisy, sigma = lf.matched_white_noise(clean, 22.0, seed=3)
    assert noisy.shape == clean.shape and noisy.dtype == np.float32
    assert psnr(noisy, clean) == pytest.approx(22.0, abs=1e-3)
    assert 0.05 < sigma < 0.1  # 22 dB is an RMS error of 0.079 (a little clipping)


def test_lowpass_keeps_low_and_removes_high():
    yy, xx = np.mgrid[0:40, 0:40] / 40
    low = np.sin(2 * np.pi * 3 * xx)[None]
    high = np.sin(2 * np.pi * 10 * yy)[None]
    out = pden.lowpass(low + high, 4)
    np.testing.assert_allclose(out, low, atol=1e-6)


def test_image_from_a_path_with_an_odd_size(tmp_path, one_thread):
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "odd.png"
    Image.fromarray(rng.integers(0, 255, size=(37, 31, 3), dtype=np.uint8)).save(path)
    d = dipnb.run("lowfreq-noise", verbose=False, **{**TINY, "image": str(path), "downsample": 1}).data
    assert d["clean"].shape == (3, 36, 28), "centre-cropped to a multiple of 2**depth = 4"


def test_the_network_fits_the_input_eventually(tiny, one_thread):
    d = dipnb.run("lowfreq-noise", verbose=False, **{**tiny, "iterations": 60}).data
    assert d["loss"][-1] < d["loss"][0] / 3, "the loss to the noisy input must drop"


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"noise": "pink"}, ["noise", "lowfreq", "white"]),
        ({"image": "nope"}, ["unknown image", "baboon"]),
        ({"image": "/no/such/file.png"}, ["does not exist"]),
        ({"std": 0.0}, ["std"]),
        ({"max_cycles": 0.0}, ["max_cycles"]),
        ({"downsample": 0}, ["downsample"]),
        ({"width": 0}, ["width"]),
        ({"depth": 0}, ["depth"]),
        ({"iterations": 0}, ["iterations"]),
        ({"lr": -1.0}, ["lr"]),
        ({"record_every": 0}, ["record_every"]),
        ({"snapshot_every": 0}, ["snapshot_every"]),
        ({"seed": "one"}, ["seed", "int"]),
        ({"noise_seed": 1.5}, ["noise_seed", "int"]),
    ],
)
def test_bad_values_raise_config_error(overrides, words):
    with pytest.raises(ConfigError) as e:
        dipnb.run("lowfreq-noise", verbose=False, **overrides)
    msg = str(e.value)
    assert all(w in msg for w in words), msg


def test_cli(images, tmp_path, capsys, one_thread):
    path = tmp_path / "out.json"
    args = ["run", "lowfreq-noise", "--quiet", "--json", str(path)]
    for k, v in {**TINY, "noise": "white", "iterations": 10}.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    s = json.loads(path.read_text())["summary"]
    assert s["noise"] == "white" and {"noisy_psnr", "best_psnr", "best_iteration", "image"} <= set(s)
    assert main(["run", "lowfreq-noise", "--set", "noise=pink"]) == 2
    assert "noise" in capsys.readouterr().err


def test_figures(tiny, one_thread):
    import matplotlib.pyplot as plt

    runs = {n: dipnb.run("lowfreq-noise", verbose=False, noise=n, **tiny).data for n in ("lowfreq", "white")}
    fig = pden.failure_figure(runs, early=20)
    assert len(fig.axes) == 2 * 7
    fig = pden.failure_curves(runs)
    assert fig.axes[0].get_ylabel() and fig.axes[1].get_xlabel() == "iteration"
    ax = pden.plot_noise_energy({k: d["noisy"] - d["clean"] for k, d in runs.items()})
    assert "cycles per image" in ax.get_xlabel()
    html = pden.animate_failure(runs, n_frames=3)
    assert "<script" in html.data
    plt.close("all")
