"""PSNR and MSE against known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dipnb.metrics import SCORES, denoising_scores, mse, psnr, ssim


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


def test_ssim_matches_the_reference_implementation_of_its_authors_setting():
    """scikit-image's test suite checks its SSIM against IPOL's independent implementation
    (imdiff, Gaussian window, population covariance): 0.357959091663361 for its camera image
    with noise of sigma 20 drawn after ``np.random.seed(5)``. Ours, on [0, 1] intensities, gives
    the same number to 3 decimals, as theirs does."""
    from skimage import data

    cam = data.camera()
    rs = np.random.RandomState(5)
    noisy = np.clip(cam + 20.0 * rs.randn(*cam.shape), 0, 255).astype(cam.dtype)
    assert ssim(noisy / 255.0, cam / 255.0) == pytest.approx(0.357959091663361, abs=5e-4)


def test_ssim_properties(np_rng):
    img = np_rng.random((3, 32, 40))
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = [np.clip(img + s * np_rng.standard_normal(img.shape), 0, 1) for s in (0.05, 0.2)]
    a, b = ssim(noisy[0], img), ssim(noisy[1], img)
    assert 1.0 > a > b, "more noise, less structural similarity"
    # a colour image's SSIM is the mean of its channels'
    per = [ssim(noisy[1][c], img[c]) for c in range(3)]
    assert b == pytest.approx(np.mean(per))
    # one channel given as (1, H, W) or (H, W) is the same image
    assert ssim(noisy[0][:1], img[:1]) == pytest.approx(ssim(noisy[0][0], img[0]))
    assert ssim(torch.as_tensor(noisy[0]), torch.as_tensor(img)) == pytest.approx(a)


@pytest.mark.parametrize("x, y, words", [
    (np.zeros((3, 16, 16)), np.zeros((3, 16, 17)), "shapes differ"),
    (np.zeros(16), np.zeros(16), r"\(C, H, W\) or \(H, W\)"),
])
def test_ssim_bad_input(x, y, words):
    with pytest.raises(ValueError, match=words):
        ssim(x, y)


def test_ssim_of_an_image_smaller_than_its_window_is_nan():
    assert np.isnan(ssim(np.zeros((3, 8, 16)), np.zeros((3, 8, 16))))
    assert not np.isnan(ssim(np.zeros((3, 11, 11)), np.zeros((3, 11, 11))))


def test_denoising_scores_pick_the_first_best_record(np_rng):
    clean = np_rng.random((1, 16, 16))
    noisy = np.clip(clean + 0.1, 0, 1)
    # PSNR peaks twice (at iterations 20 and 40): the best is the first of the two.
    scores = denoising_scores([0, 10, 20, 30, 40], [5.0, 9.0, 12.0, 11.0, 12.0], noisy, clean,
                              best_output=clean, final_output=noisy)
    assert scores["best_iteration"] == 20 and scores["best_psnr"] == 12.0
    assert scores["final_psnr"] == 12.0
    assert scores["noisy_psnr"] == pytest.approx(psnr(noisy, clean))
    assert scores["best_ssim"] == pytest.approx(1.0)  # the clean image itself
    assert scores["final_ssim"] == scores["noisy_ssim"] < 1.0
    assert set(scores) == set(SCORES)
