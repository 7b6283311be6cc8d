"""The denoising table (`denoising-table`, Tables 1-2), its units (`denoising`) and its figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dipnb
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import denoising_table as dtab
from dipnb.metrics import ssim
from dipnb.plots import denoising as pden

# 64x64 house (the DIP needs 32 pixels per side for its 5 scales), a few steps per model.
TINY_TABLE = dict(
    images=("house",), seeds=2, downsample=4, dip_width=8, dip_iterations=4, linear128_iterations=4,
    linear2048_iterations=2, relunet_iterations=6, relunet_batch=64, records=2, relunet_records=3, frames=2,
)


@pytest.fixture
def tiny_table(images) -> dict:
    return dict(TINY_TABLE)


def test_single_run_summary(tiny_denoising, one_thread):
    r = dipnb.run("denoising", verbose=False, **tiny_denoising)
    s = r.summary()
    assert {"noisy_psnr", "best_psnr", "best_iteration", "final_psnr"} <= set(s)
    assert s["best_psnr"] >= s["final_psnr"]
    # SSIM is of the same images as the PSNR beside it
    d = r.data
    assert s["noisy_ssim"] == pytest.approx(ssim(d["noisy"], d["clean"]))
    assert s["best_ssim"] == pytest.approx(ssim(d["best_output"], d["clean"]))
    assert s["final_ssim"] == pytest.approx(ssim(d["final_output"], d["clean"]))
    assert s["best_ssim"] != s["noisy_ssim"]


def test_paper_table_is_consistent():
    """The quoted Table 2 averages to the quoted Table 1 (9 images, Lena included)."""
    means = dtab.paper_means(list(dtab.PAPER_TABLE2))
    for m, v in dtab.PAPER_TABLE1.items():
        assert means[m] == pytest.approx(v, abs=0.006), m
    assert "lena" not in dtab.PAPER_IMAGES and len(dtab.PAPER_IMAGES) == 8


def test_unit_overrides():
    cfg = dtab.DenoisingTableConfig(relunet_iterations=30000, relunet_records=300, frames=30)
    relu0 = dtab.unit_overrides(cfg, "house", "relunet", 0)
    assert relu0["model"] == "relunet" and relu0["batch_pixels"] == 2048 and relu0["record_every"] == 100
    assert relu0["snapshot_every"] == 1000
    assert dtab.unit_overrides(cfg, "house", "relunet", 1)["snapshot_every"] == 0, "frames only for seed 0"
    wide = dtab.unit_overrides(cfg, "house", "linear-2048", 0)
    assert wide["width"] == 2048 and wide["lr"] == cfg.linear2048_lr and wide["snapshot_every"] == 0
    assert dtab.unit_overrides(cfg, "house", "dip", 3)["width"] == 128
    for m in dtab.MODEL_LABELS:  # every unit is a valid `denoising` config
        dipnb.experiments.make_config("denoising", "quick", **dtab.unit_overrides(cfg, "house", m, 0))


def test_table_runs_and_summarises(tiny_table, one_thread):
    r = dipnb.run("denoising-table", verbose=False, **tiny_table)
    s = r.summary()
    assert s["models"] == list(dtab.MODEL_LABELS) and s["images"] == ["house"]
    for m in dtab.MODEL_LABELS:
        vals = r.data["best_psnr"][m]["house"]
        assert len(vals) == 2
        assert s["best_psnr"][m]["house"]["mean"] == pytest.approx(np.mean(vals))
        assert s["best_psnr"][m]["house"]["std"] == pytest.approx(np.std(vals, ddof=1))
        assert s["mean_over_images"][m] == pytest.approx(np.mean(vals))
        unit_ssim = [dtab.load_unit(r, "house", m, seed).data["best_ssim"] for seed in range(2)]
        assert r.data["best_ssim"][m]["house"] == pytest.approx(unit_ssim)
        assert s["best_ssim"][m]["house"]["mean"] == pytest.approx(np.mean(unit_ssim))
    assert s["noisy_psnr"]["house"] == pytest.approx(20.3, abs=0.3)
    assert s["paper_mean_over_images"]["dip"] == pytest.approx(26.89)
    json.dumps(s)
    # Every cell is a cached `denoising` run that can be loaded again.
    unit = dtab.load_unit(r, "house", "dip", 0)
    assert unit.cached and unit["best_psnr"] == r.data["best_psnr"]["dip"]["house"][0]
    assert unit["snapshots"] is not None and dtab.load_unit(r, "house", "dip", 1)["snapshots"] is None


def test_interrupted_table_resumes_from_its_units(tiny_table, monkeypatch, one_thread):
    """A table whose units are cached is assembled without fitting anything again."""
    tiny_table["models"] = ("dip", "linear-128")
    first = dipnb.run("denoising-table", verbose=False, **tiny_table)
    from dipnb.experiments import denoising as den

    def no_fit(*a, **k):
        raise AssertionError("a cached unit was fitted again")

    monkeypatch.setattr(den, "fit", no_fit)
    from dipnb.experiments.cache import ResultStore

    for p in (ResultStore().root / "denoising-table").glob("*.npz"):  # as if it stopped before the end
        p.unlink()
    again = dipnb.run("denoising-table", verbose=False, **tiny_table)
    assert not again.cached and again.data["best_psnr"] == first.data["best_psnr"]


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"images": ()}, ["images"]),
        ({"images": ("nope",)}, ["unknown image"]),
        ({"images": ("house", "house")}, ["repeat"]),
        ({"models": ("cnn",)}, ["cnn", "linear-2048"]),
        ({"seeds": 0}, ["seeds"]),
        ({"sigma": -1.0}, ["sigma"]),
        ({"downsample": 0}, ["downsample"]),
        ({"dip_iterations": 0}, ["dip_iterations"]),
        ({"dip_width": 0}, ["dip_width"]),
        ({"linear128_iterations": 0}, ["linear128_iterations"]),
        ({"linear2048_iterations": 0}, ["linear2048_iterations"]),
        ({"relunet_iterations": 0}, ["relunet_iterations"]),
        ({"relunet_records": 0}, ["relunet_records"]),
        ({"relunet_batch": 0}, ["relunet_batch"]),
        ({"linear2048_lr": 0.0}, ["linear2048_lr"]),
        ({"frames": -1}, ["frames"]),
        ({"records": 0}, ["records"]),
        ({"seeds": 2.5}, ["seeds", "int"]),
    ],
)
def test_bad_values_raise_config_error(overrides, words):
    with pytest.raises(ConfigError) as e:
        dipnb.run("denoising-table", verbose=False, **overrides)
    msg = str(e.value)
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize(
    "overrides, words",
    [({"model": "cnn"}, ["dip", "relunet"]), ({"sigma": -5.0}, ["sigma"]), ({"width": -1}, ["width"]),
     ({"image": "nope.png"}, ["does not exist"]), ({"downsample": 0}, ["downsample"]),
     ({"iterations": 0}, ["iterations"])],
)
def test_bad_single_run_values(overrides, words):
    with pytest.raises(ConfigError) as e:
        dipnb.run("denoising", verbose=False, **overrides)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_cli(images, tmp_path, capsys, one_thread):
    path = tmp_path / "table.json"
    args = ["run", "denoising-table", "--quiet", "--json", str(path), "--set", "models=dip,linear-128",
            "--set", "images=house", "--set", "seeds=1"]
    for k in ("downsample", "dip_width", "dip_iterations", "linear128_iterations", "records", "frames"):
        args += ["--set", f"{k}={TINY_TABLE[k]}"]
    assert main(args) == 0
    s = json.loads(path.read_text())["summary"]
    assert set(s["best_psnr"]) == {"dip", "linear-128"} and "house" in s["best_psnr"]["dip"]
    assert main(["run", "denoising-table", "--set", "models=cnn"]) == 2
    assert "cnn" in capsys.readouterr().err


def test_figures_and_table(tiny_table, one_thread):
    import matplotlib.pyplot as plt

    tiny_table["models"] = ("dip", "linear-128", "relunet")
    r = dipnb.run("denoising-table", verbose=False, **tiny_table)
    s = r.summary()
    text = pden.table_markdown(s, dtab.PAPER_TABLE2, dtab.MODEL_NAMES)
    assert "(26.89 ± 0.10)" in text and "| **mean** |" in text and "DIP Linear-128" in text
    ax = pden.plot_table(s, paper=dtab.PAPER_TABLE2, names=dtab.MODEL_NAMES)
    assert "PSNR" in ax.get_ylabel()
    runs = {m: dtab.load_unit(r, "house", m).data for m in s["models"]}
    ax = pden.plot_psnr_curves(runs)
    assert "iteration" in ax.get_xlabel()
    fig = pden.best_outputs_figure(runs)
    assert len(fig.axes) == 5
    fig = pden.trajectory_figure({"DIP": (runs["dip"], [0, 2, 3]), "ReLUNet": (runs["relunet"], [0, 5])})
    assert len(fig.axes) == 6
    plt.close("all")
