"""Rules that choose when to stop a Deep Image Prior fit, most of them without the clean image.

Every rule reads a recorded trajectory and returns the index of the record it would stop at
(the output it would hand back). All are pure functions of arrays:

- ``iterations``: ``(T,)`` iteration numbers of the records;
- ``outputs``: ``(T, C, H, W)`` the outputs of one run at those iterations;
- ``target``: ``(C, H, W)`` the noisy image that is being fitted.

Rules:

- ``final``: no early stopping: the last recorded output (the baseline every rule must beat).
- :func:`oracle`: the best PSNR to the clean image (what the paper reports; needs the clean image).
- :func:`eps_first_minimum`: two runs from different seeds agree most, after their first approach:
  the first local minimum of the smoothed :math:`\\varepsilon` of the paper (Sec. 2).
- :func:`running_variance`: the windowed moving variance of the outputs stops falling
  (after Wang et al., "Early Stopping for Deep Image Prior").
- :func:`band_rule`: the output starts to carry the target's highest frequency band, which for an
  image with white noise is mostly noise (after the frequency-band view of Shi et al., "On
  Measuring and Controlling the Spectral Bias of the Deep Image Prior").
- :func:`whiteness`: ours. White noise has a flat spectrum; the residual ``target - output`` is
  white exactly when the network has fitted the image but not yet the noise. Before, it holds
  the image's unfitted low frequencies (too much low-band power); after, the network has fitted
  the noise's low frequencies first (too little). Stop where the residual's low-band to
  high-band power ratio crosses 1.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .spectral import band_masks

__all__ = [
    "RULES",
    "DEFAULT_PARAMS",
    "GRIDS",
    "apply_rule",
    "oracle",
    "eps_first_minimum",
    "running_variance",
    "band_rule",
    "whiteness",
    "smooth",
    "band_powers",
    "residual_band_ratio",
    "high_band_ratio",
    "moving_variance",
]


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` records (edges averaged over what exists)."""
    x = np.asarray(x, dtype=np.float64)
    window = min(int(window), x.size)  # np.convolve's "same" output is as long as the longer input
    if window <= 1:
        return x
    k = np.ones(window)
    num = np.convolve(x, k, mode="same")
    den = np.convolve(np.ones_like(x), k, mode="same")
    return num / den


def band_powers(images: np.ndarray, n_bands: int) -> np.ndarray:
    """Spectral power of each image in each radial band.

    Args:
        images: ``(T, C, H, W)``.

    Returns:
        ``(T, n_bands)`` mean power per frequency bin of each band, summed over channels.
    """
    imgs = np.asarray(images, dtype=np.float64)
    h, w = imgs.shape[-2:]
    p = np.abs(np.fft.fftshift(np.fft.fft2(imgs), axes=(-2, -1))) ** 2 / (h * w)  # (T, C, H, W)
    p = p.sum(axis=1)  # (T, H, W)
    masks = band_masks((h, w), n_bands)
    return np.stack([p[:, m].mean(axis=1) for m in masks], axis=1)


def residual_band_ratio(outputs: np.ndarray, target: np.ndarray, n_bands: int = 4) -> np.ndarray:
    """Per record, ``power(residual, lowest band without DC) / power(residual, highest band)``.

    For white noise the ratio is 1 (a flat spectrum).

    Returns:
        ``(T,)`` positive ratios.
    """
    res = np.asarray(target)[None] - np.asarray(outputs)  # (T, C, H, W)
    res = res - res.mean(axis=(-2, -1), keepdims=True)  # drop DC: a brightness offset is not noise
    bp = band_powers(res, n_bands)
    return bp[:, 0] / np.maximum(bp[:, -1], 1e-20)


def high_band_ratio(outputs: np.ndarray, target: np.ndarray, n_bands: int = 4) -> np.ndarray:
    """Per record, the output's power in the highest band over the target's power there.

    Returns:
        ``(T,)``; 0 while the output is smooth, about 1 once it reproduces the target's top band.
    """
    bo = band_powers(outputs, n_bands)[:, -1]
    bt = band_powers(np.asarray(target)[None], n_bands)[0, -1]
    return bo / max(bt, 1e-20)


def moving_variance(outputs: np.ndarray, window: int) -> np.ndarray:
    """Windowed moving variance: mean squared distance of the last ``window`` outputs to their mean.

    Returns:
        ``(T,)`` (``nan`` for the first ``window - 1`` records).
    """
    outs = np.asarray(outputs, dtype=np.float64)
    t = outs.shape[0]
    v = np.full(t, np.nan)
    for i in range(window - 1, t):
        w = outs[i - window + 1 : i + 1]
        v[i] = ((w - w.mean(axis=0)) ** 2).sum(axis=tuple(range(1, w.ndim))).mean()
    return v


def _check_window(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def oracle(psnr: np.ndarray) -> int:
    """Index of the best PSNR to the clean image (needs the clean image)."""
    return int(np.nanargmax(psnr))


def eps_first_minimum(eps: np.ndarray, window: int = 5) -> int:
    """Index of the first local minimum of the smoothed two-run distance :math:`\\varepsilon`.

    Falls back to the global minimum if the smoothed curve has no interior local minimum.
    """
    _check_window("window", window)
    e = smooth(np.log(np.maximum(np.asarray(eps, dtype=np.float64), 1e-20)), window)
    for i in range(1, len(e) - 1):
        if e[i] <= e[i - 1] and e[i] < e[i + 1]:
            return i
    return int(np.argmin(e))


def running_variance(outputs: np.ndarray, window: int = 10, patience: int = 20) -> int:
    """Stop once the moving variance has not reached a new minimum for ``patience`` records.

    Returns:
        Index of the record at the moving variance's minimum up to the stopping point (the
        window's last output).
    """
    _check_window("window", window)
    _check_window("patience", patience)
    window = min(int(window), len(outputs))  # a trajectory shorter than the window: one window
    v = moving_variance(outputs, window)
    best, best_i = np.inf, window - 1
    for i in range(window - 1, len(v)):
        if v[i] < best:
            best, best_i = v[i], i
        elif i - best_i >= patience:
            break
    return int(best_i)


def band_rule(outputs: np.ndarray, target: np.ndarray, threshold: float = 0.1, n_bands: int = 4) -> int:
    """First record whose output holds ``threshold`` of the target's highest-band power.

    Falls back to the last record if the output never gets there.
    """
    if not threshold > 0:
        raise ConfigError(f"threshold must be > 0, got {threshold}")
    r = high_band_ratio(outputs, target, n_bands)
    hit = np.nonzero(r >= threshold)[0]
    return int(hit[0]) if hit.size else len(r) - 1


def whiteness(outputs: np.ndarray, target: np.ndarray, offset: float = 0.0, n_bands: int = 4, window: int = 3) -> int:
    """First record where the residual's low/high band power ratio falls to ``exp(offset)`` (1 at 0).

    ``offset`` shifts the crossing (tuned on images other than those scored); the ratio is
    smoothed over ``window`` records in log space. Falls back to the record closest to the
    crossing if it never falls that far.
    """
    _check_window("window", window)
    lr = smooth(np.log(residual_band_ratio(outputs, target, n_bands)), window)
    below = np.nonzero(lr <= offset)[0]
    if below.size:
        return int(below[0])
    return int(np.argmin(np.abs(lr - offset)))


RULES = ("oracle", "final", "eps", "variance", "band", "whiteness")


# Default rule parameters, chosen on the tuning images of the benchmark (see the chapter).
DEFAULT_PARAMS = {
    "eps": {"window": 5},
    "variance": {"window": 10, "patience": 20},
    "band": {"threshold": 0.1},
    "whiteness": {"offset": 0.0},
}
# Each rule's parameter grid for tuning.
GRIDS = {
    "eps": [{"window": w} for w in (1, 3, 5, 9, 15)],
    "variance": [{"window": w, "patience": p} for w in (5, 10, 20) for p in (10, 20, 40)],
    "band": [{"threshold": float(t)} for t in np.round(np.logspace(-2.5, 0, 11), 4)],
    "whiteness": [{"offset": float(o)} for o in np.round(np.linspace(-1.0, 1.0, 21), 2)],
}


def apply_rule(rule: str, traj: dict, params: dict | None = None) -> int:
    """Index of the record that ``rule`` stops at on a recorded trajectory (run 0).

    ``traj`` is a ``stopping`` result's data (``snapshots`` ``(2, T, C, H, W)``, ``target``,
    ``eps``, ``iterations``, ``psnr`` or None); ``params`` default to :data:`DEFAULT_PARAMS`.
    """
    params = DEFAULT_PARAMS.get(rule, {}) if params is None else params
    outs, target = traj["snapshots"][0].astype(np.float32), traj["target"]
    if rule == "oracle":
        if traj.get("psnr") is None:
            raise ConfigError("the oracle rule needs the clean image (sigma > 0 on a test image)")
        return oracle(traj["psnr"][0])
    if rule == "final":
        return len(traj["iterations"]) - 1
    if rule == "eps":
        return eps_first_minimum(traj["eps"], **params)
    if rule == "variance":
        return running_variance(outs, **params)
    if rule == "band":
        return band_rule(outs, target, **params)
    if rule == "whiteness":
        return whiteness(outs, target, **params)
    raise ConfigError(f"unknown rule {rule!r}: allowed are {', '.join(RULES)}")
