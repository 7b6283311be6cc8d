"""Image quality metrics, and the one rank correlation of the package."""

from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["psnr", "ssim", "mse", "spearman", "denoising_scores", "SCORES"]


def mse(x, ref) -> float:
    """Mean squared error between two arrays or tensors of the same shape (intensity units squared)."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float64)
    ref = torch.as_tensor(np.asarray(ref) if not torch.is_tensor(ref) else ref, dtype=torch.float64)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    return float(((x - ref) ** 2).mean())


def psnr(x, ref, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio of ``x`` against ``ref``.

    Args:
        x, ref: arrays or tensors of the same shape, intensities in [0, data_range].
        data_range: the peak value (1.0 for images in [0, 1]).

    Returns:
        PSNR in dB, ``10 log10(data_range^2 / MSE)``; ``inf`` when the two are identical.
    """
    m = mse(x, ref)
    if m == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / m))


def ssim(x, ref, data_range: float = 1.0) -> float:
    """Structural similarity (SSIM) of ``x`` against ``ref``, with Wang et al.'s (2004) settings.

    Computed by scikit-image (``skimage.metrics.structural_similarity``) with an 11x11 Gaussian
    window of standard deviation 1.5 and population covariances, the settings of the paper that
    defined SSIM; the mean over channels for a colour image.

    Args:
        x, ref: arrays or tensors of the same shape, ``(C, H, W)`` or ``(H, W)``, intensities in
            [0, data_range].
        data_range: the peak value (1.0 for images in [0, 1]).

    Returns:
        The mean SSIM, a number in [-1, 1] (1 for identical images); no unit. NaN for an image
        smaller than the 11x11 window, where SSIM is not defined.
    """
    from skimage.metrics import structural_similarity

    x = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
    ref = np.asarray(ref.detach().cpu() if torch.is_tensor(ref) else ref, dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if x.ndim not in (2, 3):
        raise ValueError(f"ssim needs (C, H, W) or (H, W) images, got shape {x.shape}")
    if min(x.shape[-2:]) < 11:
        return float("nan")
    if x.ndim == 3 and x.shape[0] == 1:
        x, ref = x[0], ref[0]
    return float(structural_similarity(
        x, ref, data_range=data_range, channel_axis=0 if x.ndim == 3 else None,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    ))


def spearman(a, b) -> float:
    """Spearman rank correlation of two sequences; ``inf`` (never converged) ranks last, ties share ranks.

    Returns NaN when either sequence is constant or has fewer than 2 entries.
    """
    from scipy.stats import rankdata

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"spearman needs two 1D sequences of the same length, got {a.shape} and {b.shape}")
    if a.size < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)  # inf ranks last
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


# The scalar scores that denoising_scores returns, in the order a summary lists them.
SCORES = ("noisy_psnr", "best_psnr", "best_iteration", "final_psnr", "noisy_ssim", "best_ssim", "final_ssim")


def denoising_scores(iterations, psnr_curve, noisy, clean, best_output, final_output) -> dict:
    """How good a denoising fit is: its input, its best output and its last output against ``clean``.

    Args:
        iterations: the recorded iterations, ``(T,)``.
        psnr_curve: PSNR of the output at each of them (dB), ``(T,)``.
        noisy, clean: the input and the target, ``(C, H, W)`` in [0, 1].
        best_output, final_output: the output at the highest PSNR and the last output.

    Returns:
        The keys of :data:`SCORES`: ``noisy_psnr``, ``best_psnr`` and ``final_psnr`` (dB),
        ``best_iteration`` (the recorded iteration of the highest PSNR; the first of a tie), and
        SSIM of the input, of the best output and of the last output (no unit).
    """
    curve = np.asarray(psnr_curve)
    i = int(np.argmax(curve))
    return {
        "noisy_psnr": psnr(noisy, clean),
        "best_psnr": float(curve[i]),
        "best_iteration": int(np.asarray(iterations)[i]),
        "final_psnr": float(curve[-1]),
        "noisy_ssim": ssim(noisy, clean),
        "best_ssim": ssim(best_output, clean),
        "final_ssim": ssim(final_output, clean),
    }
