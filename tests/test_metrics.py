"""PSNR and MSE against known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dipnb.metrics import mse, psnr


def test_psnr_of_a_constant_offset(rng, odd_size):
    ref = torch.rand(3, *odd_size, generator=rng) * 0.8
    assert mse(ref + 0.1, ref) == pytest.approx(0.01, rel=1e-6)
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert psnr(ref.numpy() - 0.01, ref.numpy()) == pytest.approx(40.0, abs=1e-3)


def test_psnr_data_range():
    ref = np.full((1, 8, 8), 100.0)
    assert psnr(ref + 25.5, ref, data_range=255.0) == pytest.approx(20.0, abs=1e-9)


def test_psnr_identical_is_infinite(rng):
    x = torch.rand(1, 5, 7, generator=rng)
    assert psnr(x, x.clone()) == float("inf")


def test_psnr_of_noise_matches_sigma(np_rng):
    ref = np.full((1, 256, 256), 0.5)
    noisy = ref + np_rng.normal(0, 25 / 255, ref.shape)
    assert psnr(noisy, ref) == pytest.approx(20 * np.log10(255 / 25), abs=0.05)  # 20.17 dB


def test_mixed_inputs_and_batch_dims(rng):
    x = torch.rand(1, 3, 4, 5, generator=rng)
    assert psnr(x, x.numpy() + 0.1) == pytest.approx(20.0, abs=1e-4)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        mse(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
