"""Smoke mode: the paper's sizes for a handful of steps, cached apart, never shown as a result.

The fast tests check the mechanism on tiny registered experiments. The tests marked ``smoke``
run every registered experiment in the paper profile in smoke mode, each in its own process
(``make smoke``); they are skipped unless ``DIPNB_SMOKE_ALL=1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import dipnb
from dipnb import experiments as E
from dipnb.errors import ConfigError
from dipnb.experiments import engine

ROOT = Path(__file__).resolve().parent.parent

MAX_BYTES = 15 * 2**30  # a T4 has 16 GB: a smoke run must stay below 15 GiB


@dataclass(frozen=True)
class _Cfg:
    iterations: int = 100  # steps
    record_every: int = 10  # steps between records
    snapshot_every: int = 0  # steps between snapshots (0: none)
    samples: int = 50  # networks drawn
    width: int = 8  # a size: never shortened
    seed: int = 0  # seed

    def __post_init__(self):
        if self.record_every > self.iterations:
            raise ConfigError(f"record_every must be <= iterations, got {self.record_every} > {self.iterations}")


@dataclass(frozen=True)
class _Outer:
    steps: int = 30  # steps of the nested run
    width: int = 8  # a size


@pytest.fixture
def registered(monkeypatch):
    """Registers tiny experiments (removed again after the test)."""
    calls = []

    def register(name, config, *, smoke=None, profiles=None):
        monkeypatch.setitem(engine._REGISTRY, name, None)  # restored by monkeypatch

        @E.experiment(name, config=config, smoke=smoke, profiles=profiles)
        def func(cfg, ctx):
            """A tiny experiment."""
            calls.append((name, cfg, ctx.smoke))
            if isinstance(cfg, _Outer):
                inner = ctx.run("smoke-inner", iterations=cfg.steps)
                return {"inner_iterations": inner.config.iterations, "width": cfg.width}
            return {"iterations": getattr(cfg, "iterations", None), "width": cfg.width, "value": 1.5}

        return func

    return register, calls


def test_default_rules_shorten_by_name_and_keep_sizes(registered):
    register, calls = registered
    register("smoke-inner", _Cfg, profiles={"paper": {"iterations": 3000, "width": 128}})
    res = dipnb.run("smoke-inner", profile="paper", smoke=True, verbose=False)
    cfg = res.config
    assert cfg.iterations == E.engine.SMOKE_STEPS and cfg.record_every == 1 and cfg.snapshot_every == 0
    assert cfg.samples == E.engine.SMOKE_SAMPLES and cfg.width == 128 and cfg.seed == 0
    assert res.meta["smoke"] is True and res.smoke
    assert res.meta["peak_memory_bytes"] > 0 and res.meta["peak_memory_kind"]
    assert list(res.summary())[0] == "SMOKE"


def test_smoke_is_cached_apart_from_real_results(registered):
    register, calls = registered
    register("smoke-inner", _Cfg)
    real = dipnb.run("smoke-inner", iterations=E.engine.SMOKE_STEPS, record_every=1, samples=E.engine.SMOKE_SAMPLES,
                     verbose=False)
    smoke = dipnb.run("smoke-inner", smoke=True, verbose=False)
    assert real.config == smoke.config, "the same config..."
    assert len(calls) == 2, "...but a smoke run never loads a real result"
    assert not real.smoke and "SMOKE" not in real.summary()
    again = dipnb.run("smoke-inner", smoke=True, verbose=False)
    assert again.cached and again.smoke and len(calls) == 2
    real_again = dipnb.run("smoke-inner", iterations=E.engine.SMOKE_STEPS, record_every=1,
                           samples=E.engine.SMOKE_SAMPLES, verbose=False)
    assert real_again.cached and not real_again.smoke, "nor does a real run load a smoke result"


def test_nested_runs_are_smoke_runs_too(registered):
    register, calls = registered
    register("smoke-inner", _Cfg)
    register("smoke-outer", _Outer, smoke={"steps": lambda v: min(v, 2)})
    res = dipnb.run("smoke-outer", smoke=True, verbose=False)
    assert res["inner_iterations"] == 2
    assert [c[2] for c in calls] == [True, True]


def test_env_turns_smoke_on(registered, monkeypatch):
    register, _ = registered
    register("smoke-inner", _Cfg)
    monkeypatch.setenv("DIPNB_SMOKE", "1")
    assert dipnb.run("smoke-inner", verbose=False).smoke
    assert not dipnb.run("smoke-inner", smoke=False, verbose=False).smoke
    monkeypatch.setenv("DIPNB_SMOKE", "maybe")
    with pytest.raises(ConfigError, match="DIPNB_SMOKE='maybe'"):
        dipnb.run("smoke-inner", verbose=False)


def test_an_experiment_that_cannot_be_shortened_says_why(registered):
    register, calls = registered
    register("smoke-never", _Cfg, smoke="its one Jacobian is the whole computation")
    with pytest.raises(ConfigError, match="cannot run in smoke mode: its one Jacobian"):
        dipnb.run("smoke-never", smoke=True, verbose=False)

    @dataclass(frozen=True)
    class NoSteps:
        width: int = 8  # a size only

    register("smoke-nothing", NoSteps)
    with pytest.raises(ConfigError, match="no iteration-like field"):
        dipnb.run("smoke-nothing", smoke=True, verbose=False)
    register("smoke-whole", NoSteps, smoke={})
    assert dipnb.run("smoke-whole", smoke=True, verbose=False).config.width == 8
    assert not [c for c in calls if c[0] in ("smoke-never", "smoke-nothing")], "nothing ran"


def test_invalid_shortened_config_is_reported(registered):
    register, _ = registered
    register("smoke-bad", _Cfg, smoke={"iterations": 1, "record_every": 5})
    with pytest.raises(ConfigError, match="smoke-mode config is invalid: record_every"):
        dipnb.run("smoke-bad", smoke=True, verbose=False)


def test_cli_smoke(registered, capsys, tmp_path):
    from dipnb.cli import main

    register, _ = registered
    register("smoke-inner", _Cfg)
    out = tmp_path / "s.json"
    assert main(["run", "smoke-inner", "--smoke", "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["SMOKE"] is True and doc["meta"]["smoke"] is True and doc["config"]["iterations"] == E.engine.SMOKE_STEPS
    assert "peak memory" in capsys.readouterr().out
    register("smoke-never", _Cfg, smoke="no reason needed here")
    assert main(["run", "smoke-never", "--smoke"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot run in smoke mode: no reason needed here" in err[0]


def test_cli_run_follows_the_smoke_environment(registered, monkeypatch, tmp_path):
    # A chapter that calls the command line from a cell, executed with DIPNB_SMOKE=1, must get a
    # smoke run like every dipnb.run call in it, not a full-length run of the profile.
    from dipnb.cli import main

    register, _ = registered
    register("smoke-inner", _Cfg)
    monkeypatch.setenv("DIPNB_SMOKE", "1")
    out = tmp_path / "s.json"
    assert main(["run", "smoke-inner", "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["SMOKE"] is True and doc["config"]["iterations"] == E.engine.SMOKE_STEPS


def test_every_experiment_has_a_smoke_plan():
    """Every registered experiment can be shortened (or declares it runs whole), paper profile."""
    for name in E.names():
        cfg, _, _ = E.make_config(name, "paper")
        over = engine.smoke_overrides(name, cfg)
        assert isinstance(over, dict), name


# --------------------------------------------------------------------------------------------
# make smoke: every experiment, paper profile, smoke mode, one process each
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke-cache")


@pytest.mark.smoke
@pytest.mark.skipif(os.environ.get("DIPNB_SMOKE_ALL") != "1", reason="make smoke runs these (DIPNB_SMOKE_ALL=1)")
@pytest.mark.parametrize("name", E.names())
def test_paper_profile_smoke(name, smoke_cache, tmp_path, images):
    out = tmp_path / "out.json"
    env = {**os.environ, "DIPNB_CACHE": str(smoke_cache), "DIPNB_PROGRESS": "0"}
    env.pop("DIPNB_SMOKE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dipnb", "run", name, "--profile", "paper", "--smoke", "--quiet", "--json", str(out)],
        env=env, capture_output=True, text=True,
    )
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"{name}: paper-profile smoke run failed:\n{tail}"
    doc = json.loads(out.read_text())
    peak = doc["meta"]["peak_memory_bytes"]
    print(f"{name}: {doc['meta']['seconds']:.1f} s, peak {peak / 2**30:.2f} GiB ({doc['meta']['peak_memory_kind']})"
          f"{' (loaded: ran earlier in this session)' if doc['cached'] else ''}")
    assert doc["SMOKE"] is True and doc["meta"]["smoke"] is True
    assert peak < MAX_BYTES, f"{name}: peak memory {peak / 2**30:.1f} GiB would not fit a 16 GB GPU"


# --------------------------------------------------------------------------------------------
# make smoke-notebooks: the chapters with their asserting cells left out
# --------------------------------------------------------------------------------------------


def _smoke_tool():
    spec = importlib.util.spec_from_file_location("smoke_notebooks", ROOT / "tools" / "smoke_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_copies_leave_out_exactly_the_asserting_cells(tmp_path):
    tool = _smoke_tool()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('import sys\nif "google.colab" in sys.modules:\n    %pip install -q dipnb'),
        nbformat.v4.new_code_cell("for x in (1, 2):\n    assert x > 0, f'{x}'"),  # nested
        nbformat.v4.new_code_cell("dipnb.claims.check('capacity', profile=PROFILE)"),  # judges nothing in smoke
        nbformat.v4.new_code_cell("print('assert is only a word here')"),
        nbformat.v4.new_markdown_cell("assert x"),
    ])
    out, tagged = tool.smoke_notebook(nb)
    assert tagged == 1
    assert [c.metadata.get("tags", []) for c in out.cells] == [[], ["nbval-skip"], [], [], []]
    assert "tags" not in nb.cells[1].metadata  # the chapter itself is left as it is
    # the command: every chapter of the book, one copy each, and a clear line for a broken cell
    assert tool.main(["--out", str(tmp_path / "smoke")]) == 0
    assert sorted(p.name for p in (tmp_path / "smoke").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    bad = tmp_path / "bad"
    bad.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("for x in")]), bad / "x.ipynb")
    assert tool.main(["--src", str(bad), "--out", str(tmp_path / "o")]) == 2
