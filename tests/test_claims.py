"""dipnb.claims: checks, outcomes, the chapters' claims, ``python -m dipnb claims`` and the GPU check."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dipnb import claims as C
from dipnb.cli import main
from dipnb.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Check and Outcome
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, op, bound, passed, margin",
    [(3.0, ">=", 3.0, True, 0.0), (2.5, ">=", 3.0, False, -0.5), (3.0, ">", 3.0, False, 0.0),
     (0.2, "<", 0.25, True, 0.05), (0.3, "<=", 0.25, False, -0.05), (1.0, "<=", 1.0, True, 0.0)],
)
def test_check_passes_and_margin(value, op, bound, passed, margin):
    c = C.Check("x", value, op, bound)
    assert c.passed is passed
    assert c.margin == pytest.approx(margin)
    assert ("ok" in str(c)) is passed and ("FAILS" in str(c)) is not passed


def test_nan_never_passes_and_has_the_worst_margin():
    c = C.Check("t(k2)/t(k1)", float("nan"), "<", 1.5, "a frequency never converged")
    assert not c.passed and c.margin == -math.inf and "never converged" in str(c)
    # None, a point never reached (as in a smoke run), reads as NaN: it fails and prints
    c = C.Check("t(k2)/t(k1)", None, "<", 1.5)
    assert math.isnan(c.value) and not c.passed and str(c).startswith("t(k2)/t(k1): nan < 1.5")
    with pytest.raises(ValueError, match="op must be"):
        C.Check("x", 1.0, "==", 1.0)


def _fake(monkeypatch, measure, chapter="fake-chapter", name="fake"):
    c = C.Claim(name, chapter, "A fake sentence.", measure)
    monkeypatch.setitem(C.CLAIMS, c.id, c)
    return c


def test_outcome_worst_and_smoke(monkeypatch):
    def measure(profile, seed, smoke):
        return [C.Check("a", 10.0, ">=", 5.0), C.Check("b", 0.9, "<", 1.0)]  # relative margins 1.0 and 0.1

    c = _fake(monkeypatch, measure)
    o = c.evaluate("quick", 0, smoke=False)
    assert o.passed is True and o.worst.what == "b"
    s = c.evaluate("quick", 0, smoke=True)
    assert s.passed is None and "SMOKE" in s.report()


def test_unknown_chapter_and_claim():
    with pytest.raises(ConfigError, match="unknown chapter 'nope'"):
        C.claims_for("nope")
    with pytest.raises(ConfigError, match="unknown claim 'nope'"):
        C.claims_for("upsampling", ["nope"])
    with pytest.raises(ConfigError, match="seed must be an integer >= 0"):
        C.evaluate("upsampling", seeds=[-1])


def test_every_chapter_with_assertions_has_claims():
    notebooks = {p.stem: json.loads(p.read_text()) for p in (REPO / "notebooks").glob("*.ipynb")}
    assert set(C.chapters()) <= set(notebooks)
    for name, nb in notebooks.items():
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        if "assert " in code or "claims.check" in code:
            assert name in C.chapters(), f"{name}: its assertions are not claims"
    for c in C.CLAIMS.values():
        assert c.sentence.endswith(".") and len(c.sentence) > 20, c.id


def test_check_asserts_and_prints(monkeypatch, capsys):
    _fake(monkeypatch, lambda profile, seed, smoke: [C.Check("gain (dB)", 2.0 + seed, ">=", 3.0)])
    with pytest.raises(AssertionError, match="fake-chapter/fake seed 0: gain"):
        C.check("fake-chapter", seeds=(0, 1), profile="quick")
    assert "gain (dB): 2 >= 3  FAILS" in capsys.readouterr().out
    C.check("fake-chapter", seeds=(1,), profile="quick")
    C.check("fake-chapter", seeds=(0,), profile="quick", smoke=True)  # smoke: printed, not asserted
    assert "assertions are skipped" in capsys.readouterr().out


def test_analytic_claims_hold_on_two_seeds():
    """Real claims that need no fit: they hold (these can fail: they compare against torch)."""
    for o in C.evaluate("upsampling", profile="quick", seeds=(0, 1), names=["zero-insertion", "closed-form"]):
        assert o.passed, o.report()


def test_claim_runs_the_experiment_in_smoke_mode(tmp_path):
    (o,) = C.evaluate("decoupling-1d", profile="quick", seeds=(0,), smoke=True, names=["conv-separates"])
    assert o.passed is None and o.smoke and len(o.checks) == 1


# --------------------------------------------------------------------------------------------
# python -m dipnb claims
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["claims", "--chapter", "nope"], "unknown chapter 'nope'"),
    (["claims", "--seeds", "0"], "--seeds must be an integer >= 1"),
    (["claims", "--seeds", "-2"], "--seeds must be an integer >= 1"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(C.Claim, "evaluate", lambda *a, **k: pytest.fail("nothing may run on bad input"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_cli_table_and_json(monkeypatch, capsys, tmp_path):
    _fake(monkeypatch, lambda profile, seed, smoke: [C.Check("ratio", 1.0 + seed, ">=", 2.0)])
    out = tmp_path / "claims.json"
    assert main(["claims", "--chapter", "fake-chapter", "--seeds", "3", "--profile", "quick", "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "2/3" in text and "ratio: 1 >= 2" in text, text
    doc = json.loads(out.read_text())
    assert doc["seeds"] == 3 and [o["passed"] for o in doc["outcomes"]] == [False, True, True]
    assert doc["outcomes"][0]["checks"][0]["margin"] == pytest.approx(-1.0)


def test_cli_second_call_loads_from_the_cache(capsys):
    argv = ["claims", "--chapter", "decoupling-1d", "--smoke", "--profile", "quick", "--quiet"]
    assert main(argv) == 0
    trace_free = capsys.readouterr().out
    assert "SMOKE" in trace_free
    from dipnb.experiments import run

    r = run("decoupling-1d", profile="quick", smoke=True, verbose=False)
    assert r.cached and r.smoke


# --------------------------------------------------------------------------------------------
# Without ipywidgets, pooch and jupyter (the GPU machine may lack them)
# --------------------------------------------------------------------------------------------


def test_claims_work_without_ipywidgets_and_pooch(tmp_path, images):
    code = (
        "import sys; sys.modules.update(ipywidgets=None, pooch=None, jupyter=None)\n"
        "import dipnb, dipnb.claims as C\n"
        "r = dipnb.run('denoising', profile='paper', smoke=True, verbose=False)\n"
        "assert r.smoke\n"
        "(o,) = C.evaluate('quickstart', profile='paper', smoke=True)\n"
        "print('ok', len(o.checks))\n"
    )
    env = {**os.environ, "DIPNB_CACHE": str(tmp_path / "c"), "DIPNB_IMAGES": str(images), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok 4" in proc.stdout


# --------------------------------------------------------------------------------------------
# benchmarks/gpu_check.py (on fake steps: the real ones run on the GPU, and in smoke mode by hand)
# --------------------------------------------------------------------------------------------


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv, words", [
    (["--budget-minutes", "0"], "--budget-minutes must be > 0"),
    (["--only", "99"], "--only takes step numbers"),
])
def test_gpu_check_bad_input(argv, words, capsys, images):
    assert _gpu_check().main(["--smoke", *argv]) == 2
    assert words in capsys.readouterr().err


def test_gpu_check_needs_images(monkeypatch, capsys):
    monkeypatch.delenv("DIPNB_IMAGES", raising=False)
    assert _gpu_check().main(["--smoke"]) == 2
    assert "DIPNB_IMAGES" in capsys.readouterr().err


def test_gpu_check_without_gpu_refuses_unless_smoke(capsys, images):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert _gpu_check().main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_gpu_check_stops_at_the_budget_and_reports(monkeypatch, tmp_path, images):
    import time as _time
    from types import SimpleNamespace

    gc = _gpu_check()
    calls = []
    # A clock that moves only when a step runs, so the test does not depend on how fast this
    # machine is: each step takes 60 s of it, the budget is 30 s.
    clock = [0.0]
    monkeypatch.setattr(gc, "time", SimpleNamespace(perf_counter=lambda: clock[0], strftime=_time.strftime))

    def slow(profile, seed, smoke):
        calls.append(seed)
        clock[0] += 60.0
        return [C.Check("x", 1.0, ">=", 0.5)]

    _fake(monkeypatch, slow)
    for var in ("DIPNB_TRACE", "MPLBACKEND", "DIPNB_PROGRESS"):  # main sets them: restored after the test
        monkeypatch.setenv(var, str(tmp_path / "trace.txt") if var == "DIPNB_TRACE" else os.environ.get(var, "0"))
    monkeypatch.setattr(gc, "STEPS", [("first", "fake-chapter", None, (0,), {}),
                                      ("second", "fake-chapter", None, (1,), {})])
    report = tmp_path / "r.md"
    assert gc.main(["--smoke", "--report", str(report), "--budget-minutes", "0.5"]) == 0
    text = report.read_text()
    assert calls == [0], "the second step starts after the budget is spent"
    assert "| 1. first | done |" in text and "| 2. second | skipped (budget) |" in text
    assert "SMOKE" in text and "fake-chapter/fake" in text


def test_every_claim_is_checked_on_its_page_through_dipnb_claims():
    """The page and `python -m dipnb claims` share one definition: each claim is asserted on its
    chapter by ``dipnb.claims.check``, by name or with the whole chapter."""
    import re

    for chapter in C.chapters():
        nb = json.loads((REPO / "notebooks" / f"{chapter}.ipynb").read_text())
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        calls = re.findall(r'dipnb\.claims\.check\(\s*"([^"]+)"\s*(,\s*\[[^\]]*\])?', code)
        assert all(ch == chapter for ch, _ in calls), f"{chapter}: checks another chapter's claims"
        whole = any(not names for _, names in calls)
        named = {n for _, names in calls for n in re.findall(r'"([^"]+)"', names)}
        ids = {c.id.split("/", 1)[1] for c in C.CLAIMS.values() if c.chapter == chapter}
        assert whole or ids <= named, f"{chapter}: claims its page does not check: {sorted(ids - named)}"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", C.chapters())
def test_every_claim_measures_end_to_end_in_smoke_mode(chapter):
    """Each measure runs its experiments and reads their results (a handful of steps each), so a
    name a claim uses and the library no longer has fails here, not in a chapter or a ten-seed run."""
    outcomes = C.evaluate(chapter, profile="quick", smoke=True)
    assert len(outcomes) == len(C.claims_for(chapter)) and all(o.checks for o in outcomes)
