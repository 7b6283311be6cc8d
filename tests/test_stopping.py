"""Stopping rules on synthetic trajectories, and the stopping experiments on tiny configs."""

from __future__ import annotations

import numpy as np
import pytest

import dipnb
from dipnb import plots
from dipnb import stopping as S
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.metrics import ssim

TINY = dict(image="house", width=8, depth=3, iterations=30, record_every=5, downsample=8)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIPNB_PROGRESS", "0")


def test_smooth_keeps_constants_and_length():
    x = np.full(11, 3.0)
    assert np.allclose(S.smooth(x, 5), 3.0)
    assert S.smooth(np.arange(7.0), 3).shape == (7,)


def test_eps_first_minimum_finds_the_first_dip_not_the_global_one():
    t = np.arange(100)
    eps = 10 * np.exp(-t / 10) + 2 * np.exp(-((t - 40) ** 2) / 50) + 0.01 + 1e-3 * (100 - t)
    # falls, bumps up near 40, then decays to ~0 at the end: the first dip is before the bump
    i = S.eps_first_minimum(eps, window=1)
    assert 15 <= i < 40
    assert eps[i] > eps[-1]  # not the global minimum


def test_running_variance_stops_at_the_flattest_stretch():
    rng = np.random.default_rng(0)
    steps = np.concatenate([np.linspace(1, 0.01, 30), np.full(20, 0.01), np.linspace(0.01, 0.5, 30)])
    outs = np.cumsum(steps[:, None, None, None] * rng.standard_normal((80, 1, 4, 4)), axis=0)
    i = S.running_variance(outs, window=5, patience=10)
    assert 30 <= i <= 55


def test_residual_of_white_noise_is_white_and_of_a_smooth_image_is_not():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((3, 64, 64)) * 0.1
    ratio_white = S.residual_band_ratio(np.zeros((1, 3, 64, 64)), noise)[0]
    assert 0.7 < ratio_white < 1.4
    yy, xx = np.mgrid[0:64, 0:64] / 64
    smooth_img = np.stack([np.sin(2 * np.pi * 2 * xx) * np.cos(2 * np.pi * yy)] * 3)
    ratio_smooth = S.residual_band_ratio(np.zeros((1, 3, 64, 64)), smooth_img + noise)[0]
    assert ratio_smooth > 50


def test_whiteness_and_band_rules_on_a_low_pass_trajectory():
    """Outputs = the noisy target low-passed at a growing cutoff: the network's spectral bias, idealised."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:64, 0:64] / 64
    clean = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * 3 * xx) * np.cos(2 * np.pi * 2 * yy)])
    target = clean + 0.1 * rng.standard_normal(clean.shape)
    f = np.sqrt(np.fft.fftfreq(64)[:, None] ** 2 + np.fft.fftfreq(64)[None] ** 2)
    cutoffs = np.linspace(0.0, 0.75, 60)
    outs = np.stack([np.fft.ifft2(np.fft.fft2(target) * (f <= c)).real for c in cutoffs])
    psnr = np.array([-10 * np.log10(((o - clean) ** 2).mean()) for o in outs])
    best = S.oracle(psnr)
    i = S.whiteness(outs, target)
    assert abs(cutoffs[i] - cutoffs[best]) < 0.15, (cutoffs[i], cutoffs[best])
    j = S.band_rule(outs, target, threshold=0.5)
    assert cutoffs[j] > 0.25  # the top band (radius > 0.375) only appears late
    assert S.band_rule(outs, target, threshold=1e9) == len(outs) - 1  # never: the last record


def test_rule_parameters_are_validated():
    with pytest.raises(ConfigError, match="window"):
        S.eps_first_minimum(np.ones(5), window=0)
    with pytest.raises(ConfigError, match="threshold"):
        S.band_rule(np.zeros((2, 1, 8, 8)), np.zeros((1, 8, 8)), threshold=0)


def test_stopping_experiment_applies_every_rule_and_writes_the_chosen_output(tmp_path):
    out = tmp_path / "den.png"
    res = dipnb.run("stopping", profile="quick", output=str(out), **TINY)
    s = res.summary()
    for rule in S.RULES:
        assert f"{rule}_iteration" in s and f"{rule}_psnr" in s
        out_ = res.data["rules"][rule]["output"]
        assert s[f"{rule}_ssim"] == pytest.approx(ssim(out_, res.data["clean"]))
    assert s["oracle_psnr"] >= max(s[f"{r}_psnr"] for r in S.RULES) - 1e-9
    assert res.data["snapshots"].shape[:2] == (2, len(res.data["iterations"]))
    assert out.exists()
    # A second call with another output path and rule loads from the cache and still writes.
    out2 = tmp_path / "den2.png"
    res2 = dipnb.run("stopping", profile="quick", output=str(out2), rule="eps", **TINY)
    assert res2.cached and out2.exists()


def test_stopping_on_an_already_noisy_file_has_no_oracle(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "mine.png"
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(path)
    res = dipnb.run("stopping", profile="quick", image=str(path), sigma=0.0, downsample=1, width=8, depth=3,
                    iterations=20, record_every=5, output=str(tmp_path / "o.png"))
    assert "oracle" not in res.data["rules"]
    assert res.data["target"].shape == (3, 40, 40)  # 40 is a multiple of 2**3
    assert (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"sigma": -1.0}, "sigma"),
        ({"rule": "magic"}, "rule"),
        ({"rule": "oracle", "sigma": 0.0}, "clean image"),
        ({"output": "x.jpg"}, "png"),
        ({"image": "lena"}, "unknown image"),
        ({"width": 0}, "width"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_stopping_bad_input(bad, match):
    with pytest.raises(ConfigError, match=match):
        dipnb.run("stopping", profile="quick", **(TINY | bad))


def test_benchmark_refuses_to_score_on_tuning_images():
    with pytest.raises(ConfigError, match="both tuned and scored"):
        dipnb.run("stopping-benchmark", profile="quick", tune_images=("house",), score_images=("house", "f16"))


@pytest.mark.slow
def test_benchmark_tunes_on_some_images_and_scores_on_others():
    res = dipnb.run("stopping-benchmark", profile="quick", tune_images=("house",), score_images=("f16",), seeds=2,
                    width=8, iterations=40, record_every=5)
    d = res.data
    assert set(d["loss"]) == {"oracle", "final", "eps", "variance", "band", "whiteness"}
    assert d["mean_loss"]["oracle"] == 0.0
    assert all(v >= 0 for v in d["mean_loss"].values())
    assert set(d["tuned"]) == {"eps", "variance", "band", "whiteness"}
    assert res.summary()["scored_on"] == ["f16"]
    # the SSIM of each rule is that of the outputs it chose, one per seed
    traj = [dipnb.run("stopping", profile="quick", image="f16", seed=s, width=8, iterations=40, record_every=5,
                      size=64).data for s in range(2)]
    for rule, per in d["ssim"].items():
        chosen = [t["snapshots"][0, list(t["iterations"]).index(it)].astype(np.float32)
                  for t, it in zip(traj, d["iterations"][rule]["f16"], strict=True)]
        assert per["f16"] == pytest.approx([ssim(c, t["clean"]) for c, t in zip(chosen, traj, strict=True)])
    assert "mean SSIM" in plots.stopping.loss_table_markdown(d)


def test_cli_stopping_writes_png(tmp_path):
    out = tmp_path / "cli.png"
    args = ["run", "stopping", "--quiet", "--set", f"output={out}"] + [f"--set={k}={v}" for k, v in TINY.items()]
    assert main(args) == 0 and out.exists()
    assert main(["run", "stopping", "--set", "rule=nope"]) == 2


# ----------------------------------------------------------------------------------------------
# dipnb.plots.stopping: each figure and table shows the numbers it is given, where it says
# ----------------------------------------------------------------------------------------------

BENCH = {
    "loss": {"oracle": {"f16": (0.0, 0.0), "peppers": (0.0, 0.0)},
             "final": {"f16": (2.5, 0.25), "peppers": (3.0, 0.5)},
             "eps": {"f16": (0.75, 0.125), "peppers": (1.25, 0.0)}},
    "iterations": {"oracle": {"f16": [100, 120], "peppers": [90, 90]},
                   "final": {"f16": [300, 300], "peppers": [300, 300]},
                   "eps": {"f16": [80, 100], "peppers": [60, 70]}},
    "mean_loss": {"oracle": 0.0, "final": 2.75, "eps": 1.0},
    "mean_ssim": {"oracle": 0.8125, "final": 0.5, "eps": 0.75},
}


def test_loss_table_shows_every_rule_with_its_numbers():
    text = plots.stopping.loss_table_markdown(BENCH)
    rows = [r for r in text.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert len(rows) == 3
    final = next(r for r in rows if r.startswith(f"| {plots.stopping.RULE_LABELS['final']} |"))
    cells = [c.strip() for c in final.strip("|").split("|")]
    assert cells[1] == "2.50 ± 0.25 dB (it. 300)" and cells[2] == "3.00 ± 0.50 dB (it. 300)"
    assert cells[3:] == ["2.75", "0.500"]
    eps = next(r for r in rows if "(eps)" in r)
    assert "0.75 ± 0.12 dB (it. 90)" in eps and eps.rstrip().endswith("| 1.00 | 0.750 |")


def test_loss_bars_have_the_losses_as_heights_and_leave_out_the_oracle():
    import matplotlib.pyplot as plt

    ax = plots.stopping.loss_bars(BENCH)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == sorted([2.5, 3.0, 0.75, 1.25])
    assert [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()] == [
        plots.stopping.RULE_LABELS[r] for r in ("final", "eps")]
    plt.close("all")


def test_trajectory_marks_each_rule_where_it_stops():
    import matplotlib.pyplot as plt

    traj = dipnb.run("stopping", profile="quick", **TINY).data
    ax = plots.stopping.trajectory_with_rules(traj)
    marks = {ln.get_label(): (ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ax.lines if ln.get_marker() == "o"}
    for rule, info in traj["rules"].items():
        x, y = marks[plots.stopping.RULE_LABELS[rule]]
        assert x == info["iteration"] and y == pytest.approx(traj["psnr"][0][info["index"]])
    fig = plots.stopping.rule_signals(traj)
    for ax, rule in zip(fig.axes, ("eps", "variance", "band", "whiteness"), strict=True):
        stops = [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == "--" and ln.get_color() == "0.3"]
        assert stops == [traj["iterations"][S.apply_rule(rule, traj, S.DEFAULT_PARAMS[rule])]], rule
    plt.close("all")
