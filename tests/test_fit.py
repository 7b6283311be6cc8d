"""The fitting loop: what it records, reproducibility, resume after an interruption, divergence."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dipnb import data as D
from dipnb import models as M
from dipnb.errors import ConfigError, FitDivergedError
from dipnb.fit import FitConfig, FitRecord, fit
from dipnb.metrics import psnr

SHAPE = (3, 36, 28)  # H, W multiples of 4 for a 2-scale skip net, not square


def _skip(seed: int = 0):
    return M.build_skip(seed=seed, depth=2, width=8, skip_channels=2)


@pytest.fixture
def problem(rng):
    """A smooth clean image, its noisy version, and the fixed input z."""
    clean = D.lowfreq_noise(SHAPE, max_cycles=3, std=0.15, seed=1) + 0.5  # (3, 36, 28)
    noisy = D.add_gaussian_noise(clean, 0.1, seed=2)
    z = D.noise_like((1, *SHAPE), seed=3)
    return clean, noisy, z


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"iterations": 0}, "iterations"),
        ({"iterations": 2.5}, "iterations"),
        ({"record_every": 0}, "record_every"),
        ({"snapshot_every": -1}, "snapshot_every"),
        ({"checkpoint_every": -5}, "checkpoint_every"),
        ({"batch_pixels": -1}, "batch_pixels"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"precision": "fp16"}, "fp16"),
        ({"snapshot_budget_mb": 0}, "snapshot_budget_mb"),
    ],
)
def test_fit_config_bad_values(kwargs, bad):
    with pytest.raises(ConfigError) as e:
        FitConfig(**kwargs)
    msg = str(e.value)
    assert bad in msg, msg
    assert any(w in msg for w in ("must", "allowed", "use")), msg


# --------------------------------------------------------------------------------------------
# What is recorded
# --------------------------------------------------------------------------------------------


def test_record_shapes_two_runs(problem):
    clean, noisy, z = problem
    cfg = FitConfig(iterations=23, record_every=5, snapshot_every=4)
    band = {"bands": lambda out: np.arange(3.0)}  # a vector metric: (R, T, 3)
    rec = fit([_skip(0), _skip(1)], [z, D.noise_like(z.shape, 4)], noisy, cfg, reference=clean,
              metrics={"mean": lambda out: float(out.mean()), **band})
    assert isinstance(rec, FitRecord)
    np.testing.assert_array_equal(rec.iterations, [0, 5, 10, 15, 20, 22])  # the last one always
    T = 6
    assert rec.loss.shape == (2, T) and rec.psnr.shape == (2, T) and rec.eps.shape == (T,)
    assert rec.metrics["mean"].shape == (2, T) and rec.metrics["bands"].shape == (2, T, 3)
    np.testing.assert_array_equal(rec.snapshot_iterations, [0, 4, 8, 12, 16, 20, 22])
    assert rec.snapshots.shape == (2, 7, *SHAPE) and rec.snapshots.dtype == np.float32
    assert rec.final.shape == (2, *SHAPE)
    np.testing.assert_array_equal(rec.snapshots[:, -1], rec.final)
    # the recorded scalars are those of the recorded outputs
    assert rec.psnr[1, -1] == pytest.approx(psnr(rec.final[1], clean), abs=1e-4)
    assert rec.loss[0, -1] == pytest.approx(float(((rec.final[0] - noisy) ** 2).mean()), rel=1e-4)
    assert rec.eps[-1] == pytest.approx(float(((rec.final[0] - rec.final[1]) ** 2).sum()), rel=1e-4)
    assert rec.metrics["mean"][0, -1] == pytest.approx(float(rec.final[0].mean()), rel=1e-5)
    assert rec.seconds > 0 and rec.device == "cpu"


def test_one_run_has_no_eps_and_no_psnr_without_reference(problem):
    _, noisy, z = problem
    rec = fit(_skip(), z, noisy, FitConfig(iterations=3))
    assert rec.eps is None and rec.psnr is None and rec.snapshots is None
    assert rec.loss.shape == (1, 3)
    with pytest.raises(ValueError, match="reference"):
        rec.best()


def test_first_record_is_the_initial_output(problem):
    """Iteration i records f_{theta_i}(z): the forward pass that step i back-propagates through."""
    _, noisy, z = problem
    with torch.no_grad():
        first = F.mse_loss(_skip(5)(z), torch.as_tensor(noisy)[None]).item()  # train-mode BN, like fit
    rec = fit(_skip(5), z, noisy, FitConfig(iterations=2, channels_last=False))
    assert rec.loss[0, 0] == pytest.approx(first, rel=1e-6)


def test_loss_drops_and_best(problem):
    clean, noisy, z = problem
    rec = fit(_skip(), z, noisy, FitConfig(iterations=60, lr=0.01, record_every=10), reference=clean)
    assert rec.loss[0, -1] < 0.5 * rec.loss[0, 0], "a short seeded fit must reduce the loss"
    best, it = rec.best()
    assert best == pytest.approx(np.nanmax(rec.psnr[0])) and it in rec.iterations
    assert best > rec.psnr[0, 0]


def test_best_output_is_the_output_at_the_best_psnr(problem):
    clean, noisy, z = problem
    cfg = FitConfig(iterations=40, lr=0.03, record_every=1, snapshot_every=1)
    rec = fit([_skip(0), _skip(1)], z, noisy, cfg, reference=clean)
    assert rec.best_output.shape == (2, *SHAPE)
    for r in range(2):
        i = int(np.argmax(rec.psnr[r]))
        np.testing.assert_array_equal(rec.best_output[r], rec.snapshots[r, i])
    assert fit(_skip(), z, noisy, FitConfig(iterations=2)).best_output is None, "no reference, no best"


def test_callbacks_see_every_iteration(problem):
    _, noisy, z = problem
    seen = []
    fit(_skip(), z, noisy, FitConfig(iterations=7, record_every=3), callbacks=[seen.append])
    assert seen == list(range(7))


def test_fit_1d_conv_and_fc(rng):
    x = D.two_sines(64, 2, 10)  # (1, 64)
    z = torch.randn(1, 1, 64, generator=rng)
    conv = M.build_conv1d(width=16, depth=4)
    fc = M.build_fc1d(length=64, width=16, depth=4)
    rec = fit([conv, fc], z, x, FitConfig(iterations=40, lr=1e-2, record_every=10))
    assert rec.final.shape == (2, 1, 64) and rec.eps.shape == (5,)
    assert (rec.loss[:, -1] < rec.loss[:, 0]).all()


def test_fit_relunet_minibatches(odd_size):
    h, w = odd_size
    img = D.lowfreq_noise((3, h, w), max_cycles=2, std=0.2, seed=0) + 0.5
    net = M.build_relunet(width=16, depth=3)
    cfg = FitConfig(iterations=30, lr=1e-2, batch_pixels=64, record_every=10)
    rec = fit(net, D.coordinate_grid(h, w), img, cfg, reference=img)
    assert rec.final.shape == (1, 3, h, w), "full-image outputs are recorded"
    assert rec.loss[0, -1] == pytest.approx(float(((rec.final[0] - img) ** 2).mean()), rel=1e-4)
    # same minibatch seed: same trajectory
    rec2 = fit(M.build_relunet(width=16, depth=3), D.coordinate_grid(h, w), img, cfg, reference=img)
    np.testing.assert_allclose(rec2.loss, rec.loss, rtol=1e-5)


def test_device_names(problem):
    _, noisy, z = problem
    from dipnb.runtime import pick_device

    auto = fit(_skip(), z, noisy, FitConfig(iterations=1), device="auto")
    assert auto.device.split(":")[0] == pick_device("auto").type
    assert fit(_skip(), z, noisy, FitConfig(iterations=1)).device == os.environ["DIPNB_DEVICE"], "DIPNB_DEVICE"
    assert fit(_skip(), z, noisy, FitConfig(iterations=1), device=torch.device("cpu")).device == "cpu"
    with pytest.raises(ConfigError, match="'tpu'"):
        fit(_skip(), z, noisy, FitConfig(iterations=1), device="tpu")


def test_batch_pixels_needs_a_coordinate_net(problem):
    _, noisy, z = problem
    with pytest.raises(ConfigError, match="forward_at"):
        fit(_skip(), z, noisy, FitConfig(iterations=2, batch_pixels=16))


def test_bad_arguments(problem):
    clean, noisy, z = problem
    with pytest.raises(ConfigError, match="2 inputs for 3 models"):
        fit([_skip(), _skip(1), _skip(2)], [z, z], noisy, FitConfig(iterations=1))
    with pytest.raises(ConfigError, match="at least one model"):
        fit([], z, noisy, FitConfig(iterations=1))
    with pytest.raises(ConfigError, match="reference shape"):
        fit(_skip(), z, noisy, FitConfig(iterations=1), reference=clean[:, :8])
    with pytest.raises(ConfigError, match="cannot be downsampled"):  # before any step is taken
        fit(M.build_skip(depth=3, width=8), z, noisy, FitConfig(iterations=1000))


# --------------------------------------------------------------------------------------------
# Snapshots within a memory budget
# --------------------------------------------------------------------------------------------


def test_snapshot_budget_thins_evenly(problem):
    _, noisy, z = problem
    snap_mb = 4 * math.prod(SHAPE) / 2**20  # one run's snapshot
    cfg = FitConfig(iterations=50, record_every=10, snapshot_every=1, snapshot_budget_mb=5.5 * snap_mb)
    rec = fit(_skip(), z, noisy, cfg)
    s = rec.snapshot_iterations
    assert 2 < len(s) <= 5, f"within the budget of 5 snapshots, got {len(s)}"
    assert rec.snapshots.shape[1] == len(s)
    assert s[0] == 0 and (np.diff(s) > 0).all()
    steps = np.diff(s[:-1]) if s[-1] == 49 else np.diff(s)
    assert len(set(steps.tolist())) == 1, f"evenly spaced after thinning, got {s}"
    assert steps[0] & (steps[0] - 1) == 0, "the spacing doubles on every thinning"


def test_snapshots_unlimited_budget(problem):
    _, noisy, z = problem
    rec = fit(_skip(), z, noisy, FitConfig(iterations=12, snapshot_every=1))
    np.testing.assert_array_equal(rec.snapshot_iterations, np.arange(12))


# --------------------------------------------------------------------------------------------
# Reproducibility, precision and layout
# --------------------------------------------------------------------------------------------


def test_same_seed_same_trajectory(problem, one_thread):
    clean, noisy, z = problem
    cfg = FitConfig(iterations=25, lr=0.01, record_every=1, snapshot_every=8)
    a = fit(_skip(3), z, noisy, cfg, reference=clean)
    b = fit(_skip(3), z, noisy, cfg, reference=clean)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.psnr, b.psnr)
    np.testing.assert_array_equal(a.snapshots, b.snapshots)
    np.testing.assert_array_equal(a.final, b.final)
    c = fit(_skip(4), z, noisy, cfg, reference=clean)
    assert not np.array_equal(a.loss, c.loss), "another seed, another trajectory"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizer_gives_the_numbers_of_pytorchs_default_implementation(problem, one_thread, optimizer):
    """fit's optimizers are PyTorch's, as a plain loop with their default (per-tensor) CPU
    implementation computes them, bit for bit: choosing a faster implementation changed no number."""
    clean, noisy, z = problem
    cfg = FitConfig(iterations=30, lr=0.01, optimizer=optimizer, record_every=29, channels_last=False)
    got = fit(_skip(5), z, noisy, cfg)

    m = _skip(5)
    m.train()
    if optimizer == "adam":
        opt = torch.optim.Adam(m.parameters(), lr=0.01, foreach=False)
    else:
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.0, foreach=False)
    tgt = torch.as_tensor(noisy)[None]
    for _ in range(cfg.iterations):
        opt.zero_grad(set_to_none=True)
        out = m(z)
        loss = F.mse_loss(out, tgt)
        loss.backward()
        opt.step()
    np.testing.assert_array_equal(got.final, out.detach().numpy())
    assert got.loss[0, -1] == float(loss)


def test_channels_last_matches_contiguous(problem):
    clean, noisy, z = problem
    cfg = dict(iterations=20, lr=0.01, record_every=5)
    a = fit(_skip(), z, noisy, FitConfig(**cfg, channels_last=True), reference=clean)
    b = fit(_skip(), z, noisy, FitConfig(**cfg, channels_last=False), reference=clean)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-3)
    np.testing.assert_allclose(a.psnr, b.psnr, atol=0.02)


def test_bf16_runs_and_tracks_fp32(problem):
    clean, noisy, z = problem
    cfg = dict(iterations=40, lr=0.01, record_every=10)
    lo = fit(_skip(), z, noisy, FitConfig(**cfg, precision="bf16"), reference=clean)
    hi = fit(_skip(), z, noisy, FitConfig(**cfg), reference=clean)
    assert np.isfinite(lo.loss).all() and lo.final.dtype == np.float32
    assert lo.loss[0, -1] < 0.5 * lo.loss[0, 0]
    np.testing.assert_allclose(lo.psnr, hi.psnr, atol=0.5)  # dB, bf16 rounding over 40 steps


# --------------------------------------------------------------------------------------------
# Checkpoints: resume after an interruption
# --------------------------------------------------------------------------------------------


class _Interrupt:
    """A callback that raises KeyboardInterrupt after iteration ``at`` (a user pressing Ctrl-C)."""

    def __init__(self, at: int):
        self.at = at

    def __call__(self, it: int) -> None:
        if it == self.at:
            raise KeyboardInterrupt


def test_resume_after_interruption_gives_the_same_result(problem, tmp_path, one_thread):
    clean, noisy, z = problem
    cfg = FitConfig(iterations=30, lr=0.01, record_every=2, snapshot_every=3, checkpoint_every=5)
    runs = lambda: ([_skip(0), _skip(1)], [z, D.noise_like(z.shape, 9)])  # noqa: E731
    whole = fit(*runs(), noisy, cfg, reference=clean)

    ckpt = tmp_path / "fit.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(*runs(), noisy, cfg, reference=clean, checkpoint=ckpt, callbacks=[_Interrupt(17)])
    assert ckpt.is_file(), "the checkpoint of iteration 15 survives the interruption"
    seen = []
    resumed = fit(*runs(), noisy, cfg, reference=clean, checkpoint=ckpt, callbacks=[seen.append])
    assert seen[0] == 15 and seen[-1] == 29, "resumed from the last checkpoint, not from 0"
    assert not ckpt.exists(), "the checkpoint is removed once the fit ends"
    names = ("iterations", "loss", "psnr", "eps", "snapshot_iterations", "snapshots", "final", "best_output")
    for name in names:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name), err_msg=name)


def test_unreadable_checkpoint_starts_over(problem, tmp_path, one_thread):
    _, noisy, z = problem
    cfg = FitConfig(iterations=6, checkpoint_every=2)
    ckpt = tmp_path / "fit.ckpt"
    ckpt.write_bytes(b"garbage")
    seen = []
    with pytest.warns(UserWarning, match="discarding checkpoint"):
        rec = fit(_skip(), z, noisy, cfg, checkpoint=ckpt, callbacks=[seen.append])
    assert seen == list(range(6)) and not ckpt.exists()
    np.testing.assert_array_equal(rec.loss, fit(_skip(), z, noisy, cfg).loss)


def test_checkpoint_of_another_fit_is_ignored(problem, tmp_path, one_thread):
    _, noisy, z = problem
    ckpt = tmp_path / "fit.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(_skip(), z, noisy, FitConfig(iterations=10, checkpoint_every=2), checkpoint=ckpt,
            callbacks=[_Interrupt(5)])
    seen = []
    with pytest.warns(UserWarning, match="discarding checkpoint"):
        fit(_skip(), z, noisy, FitConfig(iterations=8, checkpoint_every=2), checkpoint=ckpt,
            callbacks=[seen.append])
    assert seen[0] == 0, "a checkpoint written by another config is not resumed"


def _interrupted_checkpoint(model, z, noisy, cfg, ckpt) -> None:
    """Leave the checkpoint that ``model``'s fit writes at iteration 4 (interrupted at 5)."""
    with pytest.raises(KeyboardInterrupt):
        fit(model, z, noisy, cfg, checkpoint=ckpt, callbacks=[_Interrupt(5)])
    assert ckpt.is_file()


def _resume_expecting_a_fresh_start(problem, cfg, ckpt) -> None:
    """Fit the 8-channel skip net from ``ckpt``: it must warn once, in one line, and start from 0."""
    _, noisy, z = problem
    seen = []
    with pytest.warns(UserWarning) as caught:
        rec = fit(_skip(), z, noisy, cfg, checkpoint=ckpt, callbacks=[seen.append])
    msgs = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert len(msgs) == 1 and "\n" not in msgs[0] and "discarding checkpoint" in msgs[0], msgs
    assert seen[0] == 0 and seen[-1] == cfg.iterations - 1, "the fit started fresh and ran to the end"
    assert not ckpt.exists()
    fresh = fit(_skip(), z, noisy, cfg)
    np.testing.assert_array_equal(rec.loss, fresh.loss, err_msg="no weight of the checkpoint leaked in")
    np.testing.assert_array_equal(rec.final, fresh.final)


def test_checkpoint_of_another_architecture_is_discarded(problem, tmp_path, one_thread):
    # Same FitConfig, same number of runs and same target: only the network differs (16 channels).
    _, noisy, z = problem
    cfg = FitConfig(iterations=8, checkpoint_every=2)
    ckpt = tmp_path / "fit.ckpt"
    _interrupted_checkpoint(M.build_skip(seed=0, depth=2, width=16, skip_channels=2), z, noisy, cfg, ckpt)
    _resume_expecting_a_fresh_start(problem, cfg, ckpt)


def test_checkpoint_of_another_model_class_with_the_same_parameters_is_discarded(problem, tmp_path, one_thread):
    _, noisy, z = problem
    net = _skip()
    other = type("OtherNet", (type(net),), {})  # same parameter names and shapes, another class
    net.__class__ = other
    cfg = FitConfig(iterations=8, checkpoint_every=2)
    ckpt = tmp_path / "fit.ckpt"
    _interrupted_checkpoint(net, z, noisy, cfg, ckpt)
    _resume_expecting_a_fresh_start(problem, cfg, ckpt)


def test_checkpoint_whose_weights_do_not_load_is_discarded(problem, tmp_path, one_thread):
    # The fingerprint matches, but one tensor has the wrong shape, so load_state_dict fails after
    # copying the tensors before it: the fit must start from the model's own initial weights.
    _, noisy, z = problem
    cfg = FitConfig(iterations=8, checkpoint_every=2)
    ckpt = tmp_path / "fit.ckpt"
    _interrupted_checkpoint(_skip(), z, noisy, cfg, ckpt)
    state = torch.load(ckpt, weights_only=False)
    weights = state["models"][0]
    last = list(weights)[-1]
    weights[last] = torch.zeros(weights[last].numel() + 1)
    torch.save(state, ckpt)
    _resume_expecting_a_fresh_start(problem, cfg, ckpt)


# --------------------------------------------------------------------------------------------
# Divergence
# --------------------------------------------------------------------------------------------


def test_nan_target_stops_with_a_message(problem):
    _, noisy, z = problem
    bad = noisy.copy()
    bad[0, 3, 4] = np.nan
    with pytest.raises(FitDivergedError) as e:
        fit(_skip(), z, bad, FitConfig(iterations=50))
    msg = str(e.value)
    assert "nan" in msg.lower() and "iteration 0" in msg and "target contains NaN" in msg
    rec = e.value.record
    assert rec is not None and rec.final.shape == (1, *SHAPE)
    assert rec.loss.shape == (1, 0) and len(rec.iterations) == 0, "nothing finite was recorded"


def test_huge_learning_rate_diverges_and_keeps_the_record(problem):
    clean, noisy, z = problem
    with pytest.raises(FitDivergedError) as e:
        fit(_skip(), z, noisy, FitConfig(iterations=200, lr=1e12), reference=clean)
    rec = e.value.record
    assert "lr=1000000000000.0" in str(e.value) and "lower the learning rate" in str(e.value)
    assert len(rec.iterations) >= 1, "what was computed before the divergence is kept"
    assert rec.loss.shape == (1, len(rec.iterations)) and np.isfinite(rec.loss).all()
    assert rec.psnr.shape == (1, len(rec.iterations))


def test_divergence_is_caught_between_records_on_the_cpu():
    """With sparse records the CPU still stops at the step where the loss became NaN."""
    import dipnb.fit as fitmod

    model = torch.nn.Conv1d(1, 1, 3, padding=1)
    target = torch.zeros(1, 16)
    target[0, 5] = float("nan")
    cfg = fitmod.FitConfig(iterations=200, record_every=50)
    with pytest.raises(fitmod.FitDivergedError, match="iteration 0 ") as err:
        fitmod.fit(model, torch.randn(1, 1, 16), target, cfg, device="cpu", progress=False)
    assert "target contains NaN" in str(err.value)
    target = torch.zeros(1, 16)
    with pytest.raises(fitmod.FitDivergedError) as err:
        fitmod.fit(torch.nn.Conv1d(1, 1, 3, padding=1), torch.full((1, 1, 16), 1e3), target + 1.0,
                   fitmod.FitConfig(iterations=200, record_every=50, lr=1e6, optimizer="sgd"),
                   device="cpu", progress=False)
    it = int(str(err.value).split("at iteration ")[1].split(" ")[0])
    assert it % 50 != 0 and it < 50, f"caught late, at iteration {it}"


def test_fit_config_of_takes_the_shared_fields_then_the_overrides():
    @dataclass(frozen=True)
    class Experiment:
        iterations: int = 7
        lr: float = 0.5
        record_every: int = 2
        image: str = "house"  # not a fit field: left out

    fc = FitConfig.of(Experiment(), record_every=1, checkpoint_every=3)
    assert (fc.iterations, fc.lr, fc.record_every, fc.checkpoint_every) == (7, 0.5, 1, 3)
    assert fc.snapshot_every == FitConfig().snapshot_every  # not in the experiment: the default
    with pytest.raises(ConfigError, match="iterations"):
        FitConfig.of(Experiment(iterations=0))
