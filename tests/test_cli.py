"""The command line: `list`, `run --json`, and exit status 2 with a one-line message on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing

import pytest

from dipnb.cli import main, parse_value

TINY = ["--set", "width=8", "--set", "depth=2", "--set", "downsample=8", "--set", "iterations=12",
        "--set", "record_every=4", "--quiet"]


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "denoising:" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("sigma "))
    assert "float" in line and "25.0" in line and "1/255" in line, "type, default and allowed range"
    assert ">= 0" in line, "the declared constraint"


def test_run_writes_json(images, tmp_path, capsys):
    path = tmp_path / "out.json"
    assert main(["run", "denoising", *TINY, "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    assert {"experiment", "profile", "config", "summary"} <= set(out)
    assert out["experiment"] == "denoising" and out["profile"] == "quick"
    assert out["config"]["width"] == 8 and out["config"]["iterations"] == 12
    assert out["cached"] is False
    assert {"best_psnr", "best_iteration", "noisy_psnr", "final_psnr"} <= set(out["summary"])
    assert str(path) in capsys.readouterr().out

    assert main(["run", "denoising", *TINY, "--json", str(path)]) == 0
    assert json.loads(path.read_text())["cached"] is True, "the second run loads the cache"


def test_run_prints_summary_without_json(images, capsys):
    assert main(["run", "denoising", *TINY, "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert summary["model"] == "dip"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "denoisng"], ["'denoisng'", "denoising"]),  # unknown experiment
        (["run", "denoising", "--profile", "fast"], ["'fast'", "quick, paper, auto"]),
        (["run", "denoising", "--set", "widht=8"], ["'widht'", "allowed are"]),  # unknown parameter
        (["run", "denoising", "--set", "width=abc"], ["width='abc'", "int"]),  # wrong type
        (["run", "denoising", "--set", "iterations=2.5"], ["iterations='2.5'", "int"]),
        (["run", "denoising", "--set", "sigma=loud"], ["sigma='loud'", "float"]),
        (["run", "denoising", "--set", "width"], ["key=value", "'width'"]),
        (["run", "denoising", "--set", "sigma=-5"], ["sigma", "-5", ">= 0"]),  # negative sigma
        (["run", "denoising", "--set", "image=lena"], ["'lena'", "house"]),  # unknown image
        (["run", "denoising", "--set", "downsample=0"], ["downsample", "0"]),  # factor <= 0
        (["run", "denoising", "--set", "lr=0"], ["lr", "> 0"]),
        (["run", "denoising", "--device", "tpu"], ["'tpu'", "cpu"]),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, words, capsys, monkeypatch):
    import dipnb.experiments.denoising as DN

    monkeypatch.setattr(DN, "fit", lambda *a, **k: pytest.fail("computed despite bad input"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dipnb: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)


def test_missing_local_image_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIPNB_IMAGES", str(tmp_path))
    assert main(["run", "denoising", *TINY]) == 2
    err = capsys.readouterr().err
    assert "house.png" in err and str(tmp_path) in err and err.count("\n") == 1


def test_device_auto_and_cpu(images, capsys):
    assert main(["run", "denoising", *TINY, "--device", "auto", "--no-cache"]) == 0
    assert main(["run", "denoising", *TINY, "--device", "cpu", "--no-cache"]) == 0


def test_divergence_exits_2(images, capsys):
    assert main(["run", "denoising", *TINY, "--set", "lr=1e12", "--set", "record_every=1"]) == 2
    assert "lower the learning rate" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


def test_module_entry_point_exit_status(tmp_path):
    """`python -m dipnb` as a process: exit status 2 and one line on stderr."""
    env = dict(os.environ, DIPNB_CACHE=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "dipnb", "run", "denoising", "--set", "width=abc"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["dipnb: error: --set width='abc': expected a value of type int"]


@pytest.mark.parametrize(
    "text, tp, value",
    [
        ("3", int, 3),
        ("2.5", float, 2.5),
        ("4", float, 4.0),
        ("yes", bool, True),
        ("off", bool, False),
        ("none", int | None, None),
        ("7", typing.Optional[int], 7),  # noqa: UP045 (both spellings occur in configs)
        ("1,2, 3", tuple[int, ...], (1, 2, 3)),
        ("house", str, "house"),
    ],
)
def test_parse_value(text, tp, value):
    assert parse_value(text, tp, "x") == value


@pytest.mark.parametrize("text, tp", [("maybe", bool), ("1.5", int), ("a,b", tuple[int, ...]), ("x", float)])
def test_parse_value_errors(text, tp):
    with pytest.raises(ValueError) as e:
        parse_value(text, tp, "p")
    assert f"--set p={text!r}" in str(e.value) and "expected a value of type" in str(e.value)
