"""Spectral tools against analytic answers: sinusoids, Parseval, band partitions, and the
upsampling responses of Appendix E against PyTorch's own operator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dipnb import spectral as S
from dipnb.errors import ConfigError

ODD_H, ODD_W = 37, 31  # odd sizes catch transposed axes (see the odd_size fixture)

STRIDES = [1, 2, 3, 4, 5, 6, 7, 8, 16, 32]
MODES = ["nearest", "bilinear"]


# --------------------------------------------------------------------------------------------
# 2D spectra and radial bands
# --------------------------------------------------------------------------------------------


def test_power_spectrum_peaks_at_the_cosine_frequency():
    h, w, ky, kx = ODD_H, ODD_W, 3, 5  # cycles per image
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.cos(2 * np.pi * (ky * yy / h + kx * xx / w))
    p = S.power_spectrum_2d(img)
    assert p.shape == (h, w)
    c = (h // 2, w // 2)  # DC at the centre
    peaks = {tuple(int(v) for v in ix) for ix in np.argwhere(p > 0.5 * p.max())}
    assert peaks == {(c[0] + ky, c[1] + kx), (c[0] - ky, c[1] - kx)}
    # Parseval: with |FFT|^2 / (H W), the spectrum sums to the signal's energy
    np.testing.assert_allclose(p.sum(), (img**2).sum(), rtol=1e-10)


def test_power_spectrum_accepts_tensors_channels_and_batch(rng):
    x = torch.rand(1, 3, ODD_H, ODD_W, generator=rng)
    p = S.power_spectrum_2d(x)
    assert p.shape == (ODD_H, ODD_W)
    q = S.power_spectrum_2d(x, remove_mean=True)
    assert q[ODD_H // 2, ODD_W // 2] == pytest.approx(0.0, abs=1e-12), "no DC once the mean is removed"


def test_radial_frequency_conventions():
    r = S.radial_frequency((ODD_H, ODD_W))
    assert r[ODD_H // 2, ODD_W // 2] == 0.0
    assert r.max() <= np.sqrt(0.5)
    r8 = S.radial_frequency((8, 8))
    assert r8[0, 4] == pytest.approx(0.5), "the first row of an even size is Nyquist (-0.5)"


@pytest.mark.parametrize("n_bands", [1, 3, 8])
def test_band_masks_partition_the_plane(n_bands):
    m = S.band_masks((ODD_H, ODD_W), n_bands)
    assert m.shape == (n_bands, ODD_H, ODD_W) and m.dtype == bool
    np.testing.assert_array_equal(m.sum(axis=0), 1)  # every bin in exactly one band
    assert m[0, ODD_H // 2, ODD_W // 2], "band 0 holds DC"
    assert all(b.any() for b in m), "no empty band"
    r = S.radial_frequency((ODD_H, ODD_W))
    means = [r[b].mean() for b in m]
    assert means == sorted(means), "bands go from low to high frequency"


def test_band_masks_bad_count():
    with pytest.raises(ConfigError, match="n_bands"):
        S.band_masks((8, 8), 0)


def test_band_errors_zero_for_identical_one_for_zero(rng):
    t = torch.rand(3, ODD_H, ODD_W, generator=rng).numpy()
    np.testing.assert_allclose(S.band_errors(t, t, 4), 0.0, atol=1e-12)
    np.testing.assert_allclose(S.band_errors(np.zeros_like(t), t, 4), 1.0, rtol=1e-12)
    # a low-pass output is right at low frequencies and wrong at high ones
    lp = np.real(np.fft.ifft2(np.fft.fft2(t) * np.fft.ifftshift(S.band_masks(t.shape[1:], 4)[0])))
    e = S.band_errors(lp, t, 4)
    assert e[0] < 1e-12 and np.allclose(e[1:], 1.0)


def test_band_errors_shape_mismatch():
    with pytest.raises(ConfigError, match="differs"):
        S.band_errors(np.zeros((1, 8, 8)), np.zeros((1, 8, 9)), 2)


def test_band_energy_and_radial_power(rng):
    img = torch.rand(1, 32, 32, generator=rng).numpy()
    e = S.band_energy(img, 5)
    np.testing.assert_allclose(e.sum(), S.power_spectrum_2d(img).sum(), rtol=1e-10)
    f, p = S.radial_power(img, 16)
    assert f.shape == p.shape == (16,)
    assert 0 < f[0] < f[-1] < 0.5
    assert p[0] > p[5], "the mean (DC) dominates a positive image's lowest band"


# --------------------------------------------------------------------------------------------
# 1D amplitude and convergence
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, k, amp, phase", [(256, 5, 1.0, 0.0), (256, 50, 0.7, 1.1), (37, 4, 2.0, -0.3)])
def test_amplitude_at_a_sinusoid(n, k, amp, phase):
    t = np.arange(n)
    x = amp * np.sin(2 * np.pi * k * t / n + phase)
    assert S.amplitude_at(x, k) == pytest.approx(amp, rel=1e-10)
    spectrum = [S.amplitude_at(x, j) for j in range(1, (n - 1) // 2 + 1)]
    assert int(np.argmax(spectrum)) + 1 == k, "the peak is in bin k"
    others = [a for j, a in enumerate(spectrum, start=1) if j != k]
    assert max(others) < 1e-10


def test_amplitude_at_two_sines_and_shapes():
    from dipnb.data import two_sines

    x = two_sines(256, 5, 50)  # (1, 256)
    assert S.amplitude_at(x, 5) == pytest.approx(1.0, rel=1e-5)
    assert S.amplitude_at(torch.as_tensor(x)[None], 50) == pytest.approx(1.0, rel=1e-5)
    assert S.amplitude_at(x, 20) < 1e-5


@pytest.mark.parametrize("k", [0, 128, 200, 2.5, -1])
def test_amplitude_at_bad_frequency(k):
    with pytest.raises(ConfigError) as e:
        S.amplitude_at(np.zeros(256), k)
    assert repr(k) in str(e.value) and "(0, 128" in str(e.value)


def test_convergence_first_crossing():
    it = np.arange(1000)
    v = np.exp(-it / 100.0)  # crosses 0.01 at 100 ln(100) = 460.5
    assert S.convergence_iteration(it, v, 0.01) == 461
    assert S.convergence_iteration(it[::10], v[::10], 0.01) == 470, "the first recorded iteration"


def test_convergence_hold_and_never():
    it = [0, 10, 20, 30, 40, 50]
    v = [1.0, 0.005, 0.5, 0.004, 0.003, 0.002]
    assert S.convergence_iteration(it, v, 0.01) == 10
    assert S.convergence_iteration(it, v, 0.01, hold=2) == 30
    assert S.convergence_iteration(it, v, 0.01, hold=3) == 30
    assert S.convergence_iteration(it, v, 0.01, hold=4) is None
    assert S.convergence_iteration(it, [1.0] * 6, 0.01) is None
    assert S.convergence_iteration(it, [np.nan] * 6, 0.01) is None
    assert S.convergence_iteration(it, v, 0.005) == 10, "delta itself counts as converged"


def test_convergence_shape_mismatch():
    with pytest.raises(ConfigError, match="differ"):
        S.convergence_iteration([0, 1, 2], [1.0, 0.0], 0.1)


# --------------------------------------------------------------------------------------------
# Upsampling responses (paper Appendix E)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("mode", MODES)
def test_discrete_response_equals_measured(mode, stride):
    k, measured = S.measured_response(mode, stride)
    assert k[0] == 0 and 0.499 < k[-1] <= 0.5
    np.testing.assert_allclose(S.discrete_response(mode, stride, k), measured, rtol=0, atol=1e-9)


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("mode", MODES)
def test_kernel_reproduces_the_operator(mode, stride):
    """Upsampling = insert stride-1 zeros, then convolve with upsampling_kernel (away from edges)."""
    x = np.random.default_rng(stride).standard_normal(40)
    tmode = "nearest" if mode == "nearest" else "linear"
    kw = {} if mode == "nearest" else {"align_corners": False}
    y = F.interpolate(torch.as_tensor(x)[None, None], scale_factor=stride, mode=tmode, **kw)[0, 0].numpy()
    h, centre = S.upsampling_kernel(mode, stride)
    u = np.zeros(x.size * stride)
    u[::stride] = x
    full = np.convolve(u, h)
    shift = int(round(centre - (stride - 1) / 2))  # where output sample 0 sits in `full`
    inner = slice(2 * stride, (x.size - 2) * stride)
    np.testing.assert_allclose(full[shift:][: y.size][inner], y[inner], atol=1e-12)
    assert h.sum() == pytest.approx(stride), "DC gain of zero insertion + kernel is the stride"


@pytest.mark.parametrize("mode", MODES)
def test_odd_bilinear_closed_form(mode):
    k = np.linspace(0, 0.5, 101)[1:]
    for L in (3, 5, 7):
        d = np.abs(np.sin(np.pi * L * k) / (L * np.sin(np.pi * k)))
        expected = d if mode == "nearest" else d**2
        np.testing.assert_allclose(S.discrete_response(mode, L, k), expected, atol=1e-12)


@pytest.mark.parametrize("stride", [2, 3, 4, 8, 16, 32])
@pytest.mark.parametrize("mode", MODES)
def test_continuous_response_is_close_at_low_frequency_only(mode, stride):
    k = np.linspace(0, 0.5, 2001)
    c, d = S.continuous_response(mode, stride, k), S.discrete_response(mode, stride, k)
    low = k <= 1 / (4 * stride)
    assert np.abs(c - d)[low].max() < 0.025, "the sinc approximates the kernel well below 1/L"
    assert np.abs(c - d).max() > 2 * np.abs(c - d)[low].max(), "and worse above it"


@pytest.mark.parametrize("stride", [3, 5, 7])
def test_continuous_response_misses_the_aliased_images(stride):
    """At Nyquist the discrete box response is 1/L; the continuous sinc gives 2/(pi L)."""
    assert S.discrete_response("nearest", stride, 0.5) == pytest.approx(1 / stride)
    assert S.continuous_response("nearest", stride, 0.5) == pytest.approx(2 / (np.pi * stride))


@pytest.mark.parametrize("stride", [2, 4, 8, 16])
def test_paper_response_normalisation_quirk(stride):
    """Appendix E prints nearest with DC gain 1 but bilinear with DC gain L (and nearest signed)."""
    k = np.linspace(0, 0.5, 257)
    near, bil = S.paper_response("nearest", stride, k), S.paper_response("bilinear", stride, k)
    assert near[0] == 1.0 and bil[0] == stride
    np.testing.assert_allclose(bil / stride, S.continuous_response("bilinear", stride, k), atol=1e-12)
    np.testing.assert_allclose(np.abs(near), S.continuous_response("nearest", stride, k), atol=1e-12)
    if stride > 2:  # its first zero is at 1/L, inside [0, 0.5]
        assert near.min() < 0, "the printed nearest response is a signed sinc"


@pytest.mark.parametrize(
    "fn", [S.paper_response, S.continuous_response, S.discrete_response, S.upsampling_kernel]
)
@pytest.mark.parametrize("mode, stride, bad", [("nearest", 0, "0"), ("bilinear", -2, "-2"), ("bicubic", 2, "bicubic")])
def test_response_bad_input(fn, mode, stride, bad):
    args = (mode, stride) if fn is S.upsampling_kernel else (mode, stride, 0.1)
    with pytest.raises(ConfigError) as e:
        fn(*args)
    assert bad in str(e.value) and ("positive" in str(e.value) or "nearest or bilinear" in str(e.value))


def test_measured_response_bad_stride():
    with pytest.raises(ConfigError, match="stride"):
        S.measured_response("nearest", 0)
