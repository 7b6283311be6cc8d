"""Spectral analysis of signals, images and upsampling operators. All functions are pure.

Conventions, fixed once for the whole package:

- Frequencies are in **cycles per sample** (cycles per pixel), from 0 to 0.5 (Nyquist), unless a
  name says **cycles per signal** / **cycles per image** (the paper's k1 = 5, k2 = 50 are cycles
  per signal; multiply cycles per sample by the length to convert).
- 2D spectra are returned with DC at the centre (``fftshift``): index ``(H // 2, W // 2)``.
- Radial frequency is ``sqrt(fy^2 + fx^2)`` in cycles per pixel; radial bands split
  ``[0, 0.5]`` into equal-width rings (corners beyond 0.5 join the last band).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = [
    "power_spectrum_2d",
    "radial_frequency",
    "band_masks",
    "band_energy",
    "band_errors",
    "radial_power",
    "amplitude_at",
    "convergence_iteration",
    "upsampling_kernel",
    "paper_response",
    "continuous_response",
    "discrete_response",
    "measured_response",
    "UPSAMPLE_MODES",
    "check_mode_stride",
    "check_upsample_mode",
    "torch_upsample_options",
    "analytic_response",
    "torch_upsample_1d",
    "dc_gain",
    "upsample_by_zero_insertion",
]


def _as_np(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def power_spectrum_2d(img, *, remove_mean: bool = False) -> np.ndarray:
    """Power spectrum ``|FFT|^2 / (H W)`` of an image, averaged over channels.

    Args:
        img: ``(C, H, W)`` or ``(H, W)`` (a leading batch of 1 is also accepted).
        remove_mean: subtract each channel's mean first (drops the DC spike).

    Returns:
        ``(H, W)`` float64, DC at the centre.
    """
    a = _as_np(img)
    while a.ndim > 3:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if remove_mean:
        a = a - a.mean(axis=(1, 2), keepdims=True)
    h, w = a.shape[-2:]
    p = np.abs(np.fft.fft2(a)) ** 2 / (h * w)
    return np.fft.fftshift(p.mean(axis=0))


def radial_frequency(shape: tuple[int, int]) -> np.ndarray:
    """Radial frequency of every bin of a centred ``(H, W)`` spectrum, cycles per pixel."""
    h, w = shape
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    return np.sqrt(fy**2 + fx**2)


def band_masks(shape: tuple[int, int], n_bands: int) -> np.ndarray:
    """Boolean masks of ``n_bands`` equal-width radial rings over [0, 0.5] cycles per pixel.

    Returns:
        ``(n_bands, H, W)`` bool, band 0 the lowest (it contains DC).
    """
    if not isinstance(n_bands, int) or n_bands < 1:
        raise ConfigError(f"n_bands must be a positive integer, got {n_bands!r}")
    r = radial_frequency(shape)
    idx = np.minimum((r / 0.5 * n_bands).astype(int), n_bands - 1)
    return np.stack([idx == b for b in range(n_bands)])


def band_energy(img, n_bands: int) -> np.ndarray:
    """Spectral energy of an image in each radial band (sum of the power spectrum), float64."""
    p = power_spectrum_2d(img)
    return np.array([p[m].sum() for m in band_masks(p.shape, n_bands)])


def radial_power(img, n_bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum.

    Returns:
        ``(freqs, power)``: bin centres in cycles per pixel and the mean power in each bin.
    """
    p = power_spectrum_2d(img)
    masks = band_masks(p.shape, n_bins)
    freqs = (np.arange(n_bins) + 0.5) * 0.5 / n_bins
    return freqs, np.array([p[m].mean() if m.any() else 0.0 for m in masks])


def band_errors(output, target, n_bands: int) -> np.ndarray:
    """Relative spectral error per radial band: ``sum |F(out) - F(target)|^2 / sum |F(target)|^2``.

    0 means the band is reproduced exactly; 1 means the output has nothing right in that band
    (e.g. it is zero there). Complex differences are used, so phase errors count.

    Returns:
        ``(n_bands,)`` float64, band 0 the lowest frequencies.
    """
    o, t = _as_np(output), _as_np(target)
    while o.ndim > 3:
        o = o[0]
    while t.ndim > 3:
        t = t[0]
    if o.shape != t.shape:
        raise ConfigError(f"output shape {o.shape} differs from target shape {t.shape}")
    fo = np.fft.fftshift(np.fft.fft2(o), axes=(-2, -1))
    ft = np.fft.fftshift(np.fft.fft2(t), axes=(-2, -1))
    diff = (np.abs(fo - ft) ** 2).sum(axis=0)
    ref = (np.abs(ft) ** 2).sum(axis=0)
    masks = band_masks(o.shape[-2:], n_bands)
    return np.array([diff[m].sum() / max(ref[m].sum(), 1e-12) for m in masks])


def amplitude_at(signal, k: int) -> float:
    """Amplitude of the sinusoid with ``k`` cycles per signal in a real 1D signal.

    ``A sin(2 pi k n / N + phi)`` gives ``A`` exactly when k is an integer in (0, N/2).

    Args:
        signal: ``(N,)`` or ``(1, N)`` / ``(1, 1, N)``.
        k: frequency in cycles per signal.

    Returns:
        The amplitude, ``2 |rfft(x)[k]| / N``, in the signal's units.
    """
    x = _as_np(signal).reshape(-1)
    n = x.size
    if not (isinstance(k, (int, np.integer)) and 0 < k < n / 2):
        raise ConfigError(f"k must be an integer in (0, {n / 2}) cycles for a signal of length {n}, got {k!r}")
    return float(2.0 * np.abs(np.fft.rfft(x)[k]) / n)


def convergence_iteration(iterations, values, delta: float, *, hold: int = 1) -> int | None:
    """The first iteration at which a curve falls to ``delta`` or below (the paper's t_i).

    Args:
        iterations: ``(T,)`` iteration numbers at which ``values`` were recorded.
        values: ``(T,)`` e.g. the squared amplitude error SE(k).
        delta: the threshold (the paper's 0.01).
        hold: require this many consecutive recorded values <= delta (1 = the paper's rule).

    Returns:
        The iteration number, or ``None`` if the curve never gets there.
    """
    it = np.asarray(iterations)
    v = np.asarray(values, dtype=np.float64)
    if it.shape != v.shape:
        raise ConfigError(f"iterations {it.shape} and values {v.shape} differ in shape")
    below = v <= delta
    run = 0
    for i, b in enumerate(below):
        run = run + 1 if b else 0
        if run >= hold:
            return int(it[i - hold + 1])
    return None


# --------------------------------------------------------------------------------------------
# Upsampling as zero insertion followed by a fixed kernel (paper Sec. 3.2 and Appendix E)
# --------------------------------------------------------------------------------------------

# One name per upsampler, in 1D and 2D alike: "bilinear" is linear interpolation along every
# axis (PyTorch spells it "linear" in 1D and "bilinear" in 2D; torch_upsample_options translates).
UPSAMPLE_MODES = ("nearest", "bilinear")
MODE_NOTE = "linear interpolation is called bilinear here, in 1D as in 2D"  # for messages
# The constraint of a config's upsampling-mode field: ``mode: str = param("bilinear", **MODE_PARAM)``.
MODE_PARAM = {"one_of": UPSAMPLE_MODES, "note": MODE_NOTE}


def check_upsample_mode(mode, what: str = "mode", allowed: tuple[str, ...] = UPSAMPLE_MODES) -> None:
    """Raise :class:`ConfigError` unless ``mode`` is one of ``allowed`` (by default nearest, bilinear)."""
    if isinstance(mode, str) and mode in allowed:
        return
    hint = f" ({MODE_NOTE})" if mode == "linear" else ""
    options = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
    raise ConfigError(f"{what} {mode!r} is not allowed: use {options}{hint}")


def torch_upsample_options(mode: str, dims: int) -> dict:
    """The ``mode`` (and ``align_corners``) arguments of ``F.interpolate`` / ``nn.Upsample``.

    Args:
        mode: ``nearest`` or ``bilinear``.
        dims: spatial axes of the signal, 1 (``(N, C, L)``) or 2 (``(N, C, H, W)``).

    Returns:
        keyword arguments: ``{"mode": "nearest"}``, or linear interpolation with
        ``align_corners=False`` (``"linear"`` in 1D, ``"bilinear"`` in 2D).
    """
    check_upsample_mode(mode)
    if dims not in (1, 2):
        raise ConfigError(f"dims must be 1 or 2 (spatial axes), got {dims!r}")
    if mode == "nearest":
        return {"mode": "nearest"}
    return {"mode": "linear" if dims == 1 else "bilinear", "align_corners": False}


def check_mode_stride(mode: str, stride) -> None:
    """Raise :class:`ConfigError` unless ``mode`` is an upsampling mode and ``stride`` a positive integer."""
    check_upsample_mode(mode)
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride <= 0:
        raise ConfigError(f"stride must be a positive integer (the upsampling factor), got {stride!r}")


def upsampling_kernel(mode: str, stride: int) -> tuple[np.ndarray, float]:
    """The discrete kernel h such that upsampling = insert ``stride - 1`` zeros, then convolve with h.

    Derived from the interpolation rule of each mode (PyTorch's, ``align_corners=False``):
    nearest repeats each sample ``stride`` times, so h is a box of ``stride`` ones; linear puts
    output sample m at input position ``(m + 0.5) / L - 0.5``, so h samples the triangle
    ``1 - |t| / L`` at the offsets ``t = j - (L - 1) / 2``.

    Returns:
        ``(h, centre)``: the taps and the position of the kernel's centre of symmetry, in samples.
    """
    check_mode_stride(mode, stride)
    L = int(stride)
    if mode == "nearest":
        return np.ones(L), (L - 1) / 2
    j = np.arange(-L, 2 * L)
    t = j - (L - 1) / 2
    h = np.clip(1 - np.abs(t) / L, 0, None)
    keep = h > 0
    return h[keep], (L - 1) / 2 - j[keep][0]


def paper_response(mode: str, stride: int, k) -> np.ndarray:
    """The frequency responses exactly as printed in the paper (Appendix E).

    ``sin(pi L k) / (pi L k)`` for nearest and ``sin^2(pi L k) / (L pi^2 k^2)`` for bilinear, with
    k in cycles per output sample. Note that the two are normalised differently (DC gain 1 vs L);
    see :func:`continuous_response` for a consistent version.
    """
    check_mode_stride(mode, stride)
    k = np.asarray(k, dtype=np.float64)
    L = float(stride)
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "nearest":
            r = np.sin(np.pi * L * k) / (np.pi * L * k)
            return np.where(k == 0, 1.0, r)
        r = np.sin(np.pi * L * k) ** 2 / (L * np.pi**2 * k**2)
        return np.where(k == 0, L, r)


def continuous_response(mode: str, stride: int, k) -> np.ndarray:
    """Magnitude response of the continuous kernels, normalised to DC gain 1.

    Box of width L: ``|sinc(L k)|``; triangle of half-width L: ``sinc(L k)^2``
    (``sinc(x) = sin(pi x) / (pi x)``). These approximate the discrete responses well below
    ``1 / L`` cycles per sample and ignore their periodicity (aliasing).
    """
    check_mode_stride(mode, stride)
    s = np.abs(np.sinc(stride * np.asarray(k, dtype=np.float64)))
    return s if mode == "nearest" else s**2


def discrete_response(mode: str, stride: int, k) -> np.ndarray:
    """Exact magnitude response of the discrete upsampling kernel, normalised to DC gain 1.

    Nearest: ``|sin(pi L k) / (L sin(pi k))|``. Bilinear: the DTFT of :func:`upsampling_kernel`,
    which for odd L equals ``(sin(pi L k) / (L sin(pi k)))^2``.

    Args:
        k: frequencies in cycles per output sample, in [0, 0.5].

    Returns:
        ``|H(k)| / H(0)``, same shape as ``k``.
    """
    h, _ = upsampling_kernel(mode, stride)
    k = np.asarray(k, dtype=np.float64)
    n = np.arange(h.size)
    H = (h[None, :] * np.exp(-2j * np.pi * k.reshape(-1, 1) * n[None, :])).sum(axis=1)
    return (np.abs(H) / h.sum()).reshape(k.shape)


def measured_response(mode: str, stride: int, n_out: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Measure the response of PyTorch's own upsampling operator from its impulse response.

    A unit impulse in the middle of a zero signal of length ``n_out / stride`` is upsampled with
    ``torch.nn.functional.interpolate``; the output is that sample times the operator's kernel
    (zero insertion of a single impulse is the impulse itself). Its DFT magnitude, divided by
    the DC gain, is the response.

    Returns:
        ``(k, response)``: frequencies in cycles per output sample (0 .. 0.5) and ``|H(k)| / H(0)``.
    """
    check_mode_stride(mode, stride)
    n_in = max(n_out // stride, 8)
    x = torch.zeros(1, 1, n_in, dtype=torch.float64)
    x[..., n_in // 2] = 1.0
    y = F.interpolate(x, scale_factor=stride, **torch_upsample_options(mode, 1))[0, 0].numpy()  # (n_in * L,)
    H = np.abs(np.fft.rfft(y))
    k = np.fft.rfftfreq(y.size)
    return k, H / H[0]


def analytic_response(mode: str, stride: int, k) -> np.ndarray:
    r"""Closed form of the upsampler's magnitude response, normalised to 1 at DC.

    ``|sin(pi L k) / (L sin(pi k))|`` for nearest; its square for bilinear, times ``|cos(pi k)|``
    when L is even (the kernel then samples the triangle ``1 - |t|/L`` at half-integers, which
    is the integer-sampled triangle averaged with its neighbour: a two-tap mean, response
    ``cos(pi k)``).

    Args:
        mode: ``"nearest"`` or ``"bilinear"``.
        stride: the upsampling factor L >= 1.
        k: frequencies in cycles per output sample (any shape; 1-periodic).

    Returns:
        ``|H(k)| / H(0)``, float64, same shape as ``k``.
    """
    check_mode_stride(mode, stride)
    L = int(stride)
    k = np.asarray(k, dtype=np.float64)
    s = np.sin(np.pi * k)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.sin(np.pi * L * k) / (L * s)
    d = np.where(np.abs(s) < 1e-12, 1.0, d)  # the limit at k = 0 (mod 1)
    if mode == "nearest":
        return np.abs(d)
    r = d**2
    return r * np.abs(np.cos(np.pi * k)) if L % 2 == 0 else r


def torch_upsample_1d(x, mode: str, stride: int) -> np.ndarray:
    """PyTorch's own upsampling of a 1D signal (``F.interpolate``, ``align_corners=False``).

    Args:
        x: ``(N,)`` samples.

    Returns:
        ``(N * stride,)`` float64.
    """
    check_mode_stride(mode, stride)
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))[None, None]  # (1, 1, N)
    y = F.interpolate(t, scale_factor=int(stride), **torch_upsample_options(mode, 1))
    return y[0, 0].numpy()


def dc_gain(mode: str, stride: int) -> float:
    """``H(0)`` of PyTorch's upsampler, measured: the sum of its response to a unit impulse.

    Zero insertion leaves a single impulse as it is, so the response is the kernel itself and its
    sum is the kernel's gain at DC (``L`` for both modes: every output sample is a weighted mean of
    the input samples, and the zeros take ``L - 1`` shares of ``L``).
    """
    check_mode_stride(mode, stride)
    n = 4 * int(stride) + 8  # long enough that the kernel never reaches the ends
    x = np.zeros(n)
    x[n // 2] = 1.0
    return float(torch_upsample_1d(x, mode, stride).sum())


def upsample_by_zero_insertion(x, mode: str, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upsample a 1D signal the paper's way: insert ``stride - 1`` zeros, then convolve.

    The signal is first extended by one sample at each end (a copy of the end sample), which is
    what PyTorch's clamping of out-of-range positions amounts to, so the result equals
    :func:`torch_upsample_1d` everywhere, ends included.

    Args:
        x: ``(N,)`` samples.

    Returns:
        ``(y, u, h)``: the output ``(N * stride,)``, the zero-inserted signal ``(N * stride,)``
        (without the extension) and the kernel taps.
    """
    check_mode_stride(mode, stride)
    L = int(stride)
    x = np.asarray(x, dtype=np.float64)
    h, centre = upsampling_kernel(mode, L)
    xp = np.concatenate([x[:1], x, x[-1:]])  # (N + 2,) edge extension
    up = np.zeros(xp.size * L)
    up[::L] = xp  # zero insertion
    full = np.convolve(up, h)  # (L (N + 2) + len(h) - 1,)
    # Output sample m sits at full[m + L + centre - (L - 1) / 2] (L: the one-sample extension).
    start = L + int(round(centre - (L - 1) / 2))
    y = full[start : start + x.size * L]
    u = np.zeros(x.size * L)
    u[::L] = x
    return y, u, h
