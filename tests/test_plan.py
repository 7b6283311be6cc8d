"""The time plan (dipnb.plan, ``python -m dipnb plan``) and the colab profile.

FLOPs are checked against hand calculations and against PyTorch's own FLOP counter; the plan
is checked for what it promises (the colab profile of every chapter within 10 minutes on a T4
by its own estimate, bad input refused before anything is counted or measured), and the page
list it counts is checked against the chapters' notebooks so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import dipnb.plan as P
from dipnb import models as M
from dipnb.cli import main
from dipnb.errors import ConfigError
from dipnb.experiments import engine as E

REPO = Path(__file__).resolve().parents[1]

# A made-up CPU for tests that must not depend on this machine's speed (no probe runs).
FAKE_CPU = P.Device(name="cpu", description="test CPU", fp32=1e11, conv=1e11, fp64=5e10, bandwidth=1e10,
                    dispatch=1e-5, random=1e8, memory_gb=0.0, measured=True)


def _hand_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # (1, 8, 10, 12)
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),  # (1, 4, 10, 12)
        nn.Flatten(),  # (1, 480)
        nn.Linear(480, 5),  # (1, 5)
    )


def test_flops_of_a_small_model_by_hand():
    c = P.count_net(_hand_model, (1, 3, 10, 12))
    conv1 = (8 * 10 * 12) * 3 * 3 * 3  # output elements x input channels x taps
    conv2 = (4 * 10 * 12) * 8 * 1
    assert c.conv_macs == conv1 + conv2 == 29_760
    assert c.linear_macs == 480 * 5
    assert c.params == (3 * 9 * 8 + 8) + (8 * 4 + 4) + (480 * 5 + 5)
    assert c.param_tensors == 6
    assert c.calls == 5
    assert c.activations == 960 + 960 + 480 + 480 + 5
    step = P.train_step(c)
    assert step.flops == 3 * 2 * (29_760 + 2_400)  # forward + backward = 3 forward passes
    assert P.fit_work(c, iterations=7, runs=2).flops == 2 * 7 * step.flops
    assert P.fit_memory(c) == 4 * (4 * c.params + c.activations)  # weights, grads, 2 Adam moments + outputs


def test_strided_and_grouped_1d_convolution_by_hand():
    c = P.count_net(lambda: nn.Conv1d(2, 4, 3, stride=2, padding=1, groups=2), (1, 2, 16))
    assert c.conv_macs == (4 * 8) * 1 * 3  # 8 output samples, 1 input channel per group, 3 taps


@pytest.mark.parametrize("build, shape", [
    (lambda: M.build_skip(seed=0, width=8, depth=3), (1, 3, 40, 24)),
    (lambda: M.build_skip(seed=0, width=8, depth=2, upsample_mode="nearest", in_channels=2, out_channels=1),
     (1, 2, 20, 28)),
    (lambda: M.build_conv1d(seed=0, width=8, depth=6), (1, 1, 64)),
    (lambda: M.build_fc1d(length=64, width=16, depth=4), (1, 1, 64)),
    (lambda: M.build_decoder(seed=0, width=8, stride=4, out_channels=1), (1, 32, 5, 7)),
])
def test_meta_count_matches_pytorchs_flop_counter(build, shape):
    """The meta-device count (batch norm, activations and upsampling replaced by stand-ins that
    only shape their output) equals PyTorch's own count of a real forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    c = P.count_net(build, shape)
    net = build()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = net(torch.randn(shape))
    assert 2 * (c.conv_macs + c.linear_macs) == counter.get_total_flops()
    assert c.params == sum(p.numel() for p in net.parameters())
    assert out.numel() > 0


def test_bad_input_is_refused_before_anything_is_measured(monkeypatch):
    monkeypatch.setattr(P, "probe_cpu", lambda: pytest.fail("probed despite bad input"))
    monkeypatch.setattr(P, "chapter_work", lambda *a: pytest.fail("counted despite bad input"))
    for kwargs, words in (({"profile": "fast"}, ["'fast'", "quick", "paper", "colab", "auto"]),
                          ({"device": "tpu"}, ["'tpu'", "cpu", "t4", "a100", "h100"]),
                          ({"chapters": ["denoisng"]}, ["'denoisng'", "quickstart", "stopping"])):
        with pytest.raises(ConfigError) as e:
            P.plan(**{"profile": "quick", "device": "cpu", **kwargs})
        for w in words:
            assert w in str(e.value)


@pytest.mark.parametrize("argv, words", [
    (["plan", "--profile", "fast"], ["'fast'", "colab"]),
    (["plan", "--device", "tpu"], ["'tpu'", "t4, a100, h100"]),
    (["plan", "denoisng"], ["'denoisng'", "denoising"]),
])
def test_cli_bad_input_exits_2_with_one_line(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(P, "probe_cpu", lambda: pytest.fail("probed despite bad input"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for w in words:
        assert w in err


def test_colab_profile_of_every_chapter_fits_10_minutes_on_a_t4():
    result = P.plan("colab", "t4")
    assert [r["chapter"] for r in result["chapters"]] == list(P.CHAPTERS)
    assert result["estimate"] is True
    for r in result["chapters"]:
        assert 0 < r["minutes"] <= 10.0, f"{r['chapter']}: {r['minutes']:.1f} min on a T4 in the colab profile"
        assert r["fits_in_memory"], f"{r['chapter']}: {r['peak_memory_gb']:.1f} GB does not fit in 16 GB"


def test_colab_is_cheaper_than_paper_where_it_reduces_and_equal_where_it_does_not():
    colab = {r["chapter"]: r for r in P.plan("colab", "t4", ["denoising", "upsampling"])["chapters"]}
    paper = {r["chapter"]: r for r in P.plan("paper", "t4", ["denoising", "upsampling"])["chapters"]}
    assert colab["denoising"]["gflop"] < paper["denoising"]["gflop"] / 10
    assert colab["upsampling"]["gflop"] == paper["upsampling"]["gflop"]  # the paper's sizes fit


def test_every_experiment_has_a_colab_profile():
    for name in E.names():
        assert "colab" in E.get(name).profiles, f"experiment {name!r} has no colab profile"
        E.make_config(name, "colab")  # and it is a valid config


def test_cpu_plan_with_a_given_calibration_and_json(tmp_path):
    result = P.plan("quick", "cpu", ["quickstart", "capacity"], calibration=FAKE_CPU)
    rows = {r["chapter"]: r for r in result["chapters"]}
    assert result["estimate"] is False and result["profile"] == "quick"
    cap = rows["capacity"]
    # 4 sweeps of 3 seeds; the depth and width sweeps of a model share their (depth 10, base width)
    # point; the exercise's 4 runs include 2 of the conv width sweep (lr 1e-3); each is counted once
    conv, linear = 3 * (5 + 5 - 1), 3 * (5 + 4 - 1)
    assert cap["runs"] == 4 + conv + linear + 2
    assert cap["fits"] == conv + linear + 2  # the sweeps themselves train nothing
    s = cap["seconds"]
    assert cap["minutes"] * 60 == pytest.approx(s["arithmetic"] + s["memory"] + s["dispatch"] + s["host"])
    assert rows["quickstart"]["runs"] == rows["quickstart"]["fits"] == 1
    assert "calibrated on test CPU" in P.format_table(result)
    json.dumps(result)  # JSON-ready


def test_cli_plan_json(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", "--profile", "colab", "--device", "t4", "quickstart", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "quickstart" in text and "ESTIMATE" in text
    data = json.loads(out.read_text())
    assert data["profile"] == "colab" and data["device"]["name"] == "t4"
    entry = data["chapters"][0]
    assert entry["efficiency"] == P.EFFICIENCY["t4"] and entry["measured_minutes"] is None


def test_implied_efficiency_inverts_the_estimate():
    entry = P.plan("paper", "t4", ["upsampling"])["chapters"][0]
    eff = P.EFFICIENCY["t4"]
    assert P.implied_efficiency(entry, entry["minutes"]) == pytest.approx(eff)
    slower = P.implied_efficiency(entry, 2 * entry["minutes"])
    assert slower < eff
    # re-estimating with the implied factor reproduces the measured time
    fixed = entry["minutes"] * 60 - entry["seconds"]["scalable"]
    assert fixed + entry["seconds"]["scalable"] * eff / slower == pytest.approx(2 * entry["minutes"] * 60)
    with pytest.raises(ConfigError, match="cannot be inferred"):
        P.implied_efficiency(entry, 0.0)


def test_gpu_rates_come_from_the_datasheets_times_one_efficiency_each():
    g = P.gpu_devices()
    assert g["t4"].fp32 == pytest.approx(8.1e12 * P.EFFICIENCY["t4"])
    assert g["t4"].conv == g["t4"].fp32  # no TF32 on a T4
    assert g["a100"].conv == pytest.approx(156e12 * P.EFFICIENCY["a100"])
    assert g["h100"].fp32 == pytest.approx(67e12 * P.EFFICIENCY["h100"])
    assert not any(d.measured for d in g.values())


def test_chapters_count_every_experiment_their_pages_run():
    """Each notebook's dipnb.run calls name only experiments that the plan counts for that chapter."""
    for chapter in P.CHAPTERS:
        nb = json.loads((REPO / "notebooks" / f"{chapter}.ipynb").read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        on_page = set(re.findall(r"dipnb\.run\(\s*\"([a-z0-9-]+)\"", code))
        assert on_page, f"{chapter}: no dipnb.run call found"
        _, computations = P.chapter_work(chapter, "quick")
        counted = {c["experiment"] for c in computations}
        assert on_page <= counted, f"{chapter}: the page runs {sorted(on_page - counted)}, the plan does not count it"


def _page_code(chapter: str) -> str:
    nb = json.loads((REPO / "notebooks" / f"{chapter}.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("chapter, name, mirror", [
    ("decoupling-1d", "WIDE", P._WIDE),
    ("trajectories", "BARBARA", P._BARBARA),
])
def test_the_plan_mirrors_the_values_pages_pick_by_profile(chapter, name, mirror):
    """Where a page picks a size by profile in its own code, the plan counts the same size."""
    import ast

    # the dict may span lines; it ends at the first "}[PROFILE]"
    m = re.search(rf"^{name} = (\{{.*?\}})\[PROFILE\]", _page_code(chapter), re.M | re.S)
    assert m, f"{chapter}: no `{name} = {{...}}[PROFILE]` assignment"
    on_page = ast.literal_eval(m.group(1))
    for profile, value in on_page.items():
        assert mirror[profile] == value, f"{chapter}: {name}[{profile!r}] is {value!r} on the page"


def test_the_plan_mirrors_the_kernel_view_widths():
    import ast

    m = re.search(r"^WIDTHS = (\(.*?\)) if PROFILE == \"quick\" else (\(.*?\))$", _page_code("kernel-view"), re.M)
    assert m
    quick, other = ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))
    assert P._SPECTRUM_WIDTHS == {"quick": quick, "paper": other, "colab": other}


# --------------------------------------------------------------------------------------------
# auto picks colab inside Colab with a GPU, paper with a GPU elsewhere, quick without one
# --------------------------------------------------------------------------------------------


@pytest.fixture
def no_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("COLAB_GPU", raising=False)
    monkeypatch.setenv("DIPNB_PROFILE", "auto")


@pytest.mark.parametrize("cuda, colab, expected", [
    (True, "module", ("colab", "auto: CUDA GPU in Colab")),
    (True, "COLAB_RELEASE_TAG", ("colab", "auto: CUDA GPU in Colab")),
    (True, "COLAB_GPU", ("colab", "auto: CUDA GPU in Colab")),
    (True, None, ("paper", "auto: CUDA GPU found")),
    (False, "module", ("quick", "auto: no CUDA GPU")),  # a CPU runtime of Colab
    (False, None, ("quick", "auto: no CUDA GPU")),
])
def test_auto_profile(no_colab, monkeypatch, cuda, colab, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if colab == "module":
        monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    elif colab:
        monkeypatch.setenv(colab, "1")
    assert E.resolve_profile() == expected
    assert E.resolve_profile("auto") == expected
    assert E.resolve_profile("paper") == ("paper", "chosen")  # a profile asked for is kept


def test_unknown_profile_lists_colab():
    with pytest.raises(ConfigError) as e:
        E.resolve_profile("fast")
    assert "colab" in str(e.value) and "'fast'" in str(e.value)


@pytest.mark.slow
def test_cpu_probe_measures_this_machine():
    """The probe returns positive, finite rates (its seconds depend on the machine and its load)."""
    import math

    dev = P.probe_cpu()
    assert dev.measured and not dev.overlap and dev.name == "cpu"
    for v in (dev.conv, dev.fp32, dev.fp64, dev.bandwidth, dev.dispatch, dev.random):
        assert math.isfinite(v) and v > 0
    assert "load average" in dev.source
