"""The infinite-width kernel recursion and the 1D decoder it describes (dipnb.kernels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dipnb import kernels as K
from dipnb.errors import ConfigError

# --------------------------------------------------------------------------------------------
# The three rules
# --------------------------------------------------------------------------------------------


def test_relu_kernel_closed_forms():
    cov = np.array([[2.0, 0.0, 2.0], [0.0, 2.0, -2.0], [2.0, -2.0, 2.0]])
    S = K.relu_kernel(cov)
    assert np.allclose(np.diag(S), 1.0), "E[relu(u)^2] = var / 2"
    assert S[0, 1] == pytest.approx(2.0 / (2 * np.pi)), "uncorrelated: sqrt(var var) / (2 pi)"
    assert S[0, 2] == pytest.approx(1.0), "identical: var / 2"
    assert S[1, 2] == pytest.approx(0.0, abs=1e-12), "opposite: never both positive"


def test_relu_kernel_matches_monte_carlo(np_rng):
    cov = np.array([[1.5, 0.6], [0.6, 0.8]])
    u = np_rng.multivariate_normal([0, 0], cov, size=400_000)
    r = np.maximum(u, 0)
    measured = r.T @ r / len(r)
    assert np.allclose(K.relu_kernel(cov), measured, atol=0.01)


def test_relu_kernel_zero_variance_gives_zero():
    assert np.all(K.relu_kernel(np.zeros((3, 3))) == 0)


def test_conv_kernel_keeps_offsets():
    L, d = 21, 3
    S = np.zeros((L, L))
    idx = np.arange(L - d)
    S[idx, idx + d] = S[idx + d, idx] = 1.0  # only offset +-d is correlated
    out = K.conv_kernel(S, 5, weight_var=2.0)
    offsets = np.abs(np.subtract.outer(np.arange(L), np.arange(L)))
    assert np.all(out[offsets != d] == 0), "a convolution with i.i.d. taps never creates new offsets"
    assert out[10, 13] == pytest.approx(2.0), "sigma_w^2 / k * (k taps of 1)"


def test_conv_kernel_zero_padding_and_bias():
    out = K.conv_kernel(np.eye(7), 3, weight_var=3.0, bias_var=0.5)
    assert out[3, 3] == pytest.approx(3.0 + 0.5)
    assert out[0, 0] == pytest.approx(3.0 * 2 / 3 + 0.5), "one tap falls in the zero padding"
    assert out[0, 5] == pytest.approx(0.5)


def test_conv_kernel_rejects_even_taps():
    with pytest.raises(ConfigError, match="odd"):
        K.conv_kernel(np.eye(4), 2)


@pytest.mark.parametrize("mode, torch_mode", [("nearest", "nearest"), ("bilinear", "linear")])
def test_upsample_matrix_matches_torch(rng, mode, torch_mode):
    x = torch.randn(1, 1, 13, generator=rng, dtype=torch.float64)
    kw = {"align_corners": False} if torch_mode == "linear" else {}
    y = F.interpolate(x, scale_factor=2, mode=torch_mode, **kw)[0, 0].numpy()
    U = K.upsample_matrix(13, mode)
    assert U.shape == (26, 13)
    assert np.allclose(U @ x[0, 0].numpy(), y)
    assert np.allclose(U.sum(axis=1), 1.0), "upsampling keeps constants"


def test_upsample_matrix_rejects_unknown_mode():
    with pytest.raises(ConfigError, match="nearest or bilinear"):
        K.upsample_matrix(4, "cubic")


def test_input_gram_is_channel_average(rng):
    z = torch.randn(1, 5, 9, generator=rng)
    G = K.input_gram(z)
    assert G.shape == (9, 9)
    assert np.allclose(G, (z[0].T @ z[0]).double().numpy() / 5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# The 1D decoder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, stages, length", [("bilinear", 2, 44), ("nearest", 3, 24), ("none", 2, 37)])
def test_decoder_members_are_plain_nets(rng, mode, stages, length):
    nets = K.build_decoder1d(seed=1, n_nets=3, length=length, in_channels=3, width=5, stages=stages,
                             kernel_size=5, upsample_mode=mode, bias_std=0.3)
    z = torch.randn(1, 3, nets.cfg.input_length, generator=rng)
    with torch.no_grad():
        y = nets(z)
        assert y.shape == (3, length)
        for i in range(3):
            assert torch.allclose(nets.member(i)(z)[0, 0], y[i], atol=1e-5), f"member {i} differs"


def test_decoder_weight_statistics():
    nets = K.build_decoder1d(seed=0, n_nets=50, in_channels=4, width=16, weight_var=2.0)
    w = nets.weights[1].detach()  # (50, 16, 16, 3)
    assert w.var().item() == pytest.approx(2.0 / (16 * 3), rel=0.05), "N(0, sigma_w^2 / fan_in)"
    assert all(float(b.detach().abs().max()) == 0 for b in nets.biases), "bias_std = 0: no bias"


def test_sample_decoder_is_reproducible():
    cfg = K.Decoder1dConfig(length=32, width=8, stages=2, in_channels=4)
    z = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
    a = K.sample_decoder1d(cfg, z, 7, seed=3, chunk=4)
    b = K.sample_decoder1d(cfg, z, 7, seed=3, chunk=4)
    c = K.sample_decoder1d(cfg, z, 7, seed=4, chunk=4)
    assert a.shape == (7, 32) and a.dtype == np.float64
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(length=30, stages=2), "multiple of 4"),
        (dict(kernel_size=4), "odd"),
        (dict(upsample_mode="linear"), "one of nearest, bilinear, none .linear interpolation is called bilinear"),
        (dict(width=0), "width"),
        (dict(in_channels=-1), "in_channels"),
        (dict(stages=11), "stages"),
        (dict(weight_var=0.0), "weight_var"),
        (dict(bias_std=-1.0), "bias_std"),
    ],
)
def test_decoder_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        K.Decoder1dConfig(**kwargs)


def test_decoder_config_none_mode_needs_no_multiple():
    cfg = K.Decoder1dConfig(length=37, stages=3, upsample_mode="none")
    assert cfg.input_length == 37


# --------------------------------------------------------------------------------------------
# The kernel: analytic checks and against samples
# --------------------------------------------------------------------------------------------


def _arccos_map(rho: float) -> float:
    return (math.sqrt(1 - rho**2) + (math.pi - math.acos(rho)) * rho) / math.pi


def test_decoder_kernel_without_upsampling_is_spike_plus_plateau():
    cfg = K.Decoder1dConfig(length=64, stages=2, upsample_mode="none")
    rho = K.kernel_profile(K.decoder_kernel(cfg), margin=8, max_offset=20)
    plateau = 0.0
    for _ in range(cfg.stages + 1):  # one ReLU per conv layer
        plateau = _arccos_map(plateau)
    assert rho[0] == 1.0
    assert np.allclose(rho[1:], plateau), "every nonzero offset sits on the same plateau"


def test_decoder_kernel_is_a_covariance():
    cfg = K.Decoder1dConfig(length=48, stages=2, upsample_mode="bilinear", bias_std=0.2)
    Kt = K.decoder_kernel(cfg)
    assert Kt.shape == (48, 48)
    assert np.allclose(Kt, Kt.T)
    assert np.linalg.eigvalsh(Kt).min() > -1e-9


def test_decoder_kernel_rejects_wrong_gram():
    with pytest.raises(ConfigError, match="gram"):
        K.decoder_kernel(K.Decoder1dConfig(length=32, stages=2), np.eye(5))


def test_upsampling_lengthens_the_kernel():
    lengths = []
    for stages in (1, 2, 3):
        Kt = K.centre_kernel(K.decoder_kernel(K.Decoder1dConfig(length=128, stages=stages)))
        lengths.append(K.correlation_length(K.kernel_profile(Kt, 16, 32)))
    assert lengths[0] < lengths[1] < lengths[2]


def test_theory_matches_samples_small(one_thread):
    cfg = K.Decoder1dConfig(length=64, width=32, stages=2, in_channels=16, upsample_mode="bilinear")
    z = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(1))
    y = K.sample_decoder1d(cfg, z, 600, seed=0)
    th = K.kernel_profile(K.decoder_kernel(cfg, K.input_gram(z)), 8, 16)
    emp = K.kernel_profile(K.second_moment(y), 8, 16)
    assert np.abs(th - emp).max() < 0.06


def test_centre_kernel_matches_centred_samples(np_rng):
    A = np_rng.standard_normal((9, 9))
    cov = A @ A.T
    y = np_rng.multivariate_normal(np.zeros(9), cov, size=200_000)
    assert np.allclose(K.second_moment(y, centre=True), K.centre_kernel(cov), atol=0.15)


def test_kernel_profile_and_correlation_length():
    L = 50
    d = np.abs(np.subtract.outer(np.arange(L), np.arange(L)))
    cov = np.maximum(1 - d / 10, 0)
    rho = K.kernel_profile(cov, margin=5, max_offset=12)
    assert rho[0] == 1.0 and rho[10] == pytest.approx(0.0)
    assert K.correlation_length(rho) == pytest.approx(5.0)
    assert np.isnan(K.correlation_length(np.ones(5)))
    with pytest.raises(ConfigError, match="leave no positions"):
        K.kernel_profile(cov, margin=20, max_offset=12)


def test_offset_covariance_of_white_noise_and_a_shift(np_rng):
    x = np_rng.standard_normal((200, 24, 20))
    mask = np.zeros((24, 20), bool)
    mask[4:20, 4:16] = True
    C = K.offset_covariance(x, mask, 4)
    assert C.shape == (9, 9)
    assert C[4, 4] == pytest.approx(1.0, abs=0.03)
    off = C.copy()
    off[4, 4] = 0
    assert np.abs(off).max() < 0.05
    y = x + np.roll(x, 2, axis=2)  # y_p correlates with y_{p + (0, +-2)}
    C = K.offset_covariance(y, mask, 4)
    assert C[4, 6] == pytest.approx(1.0, abs=0.06) and C[4, 2] == pytest.approx(1.0, abs=0.06)
    with pytest.raises(ConfigError, match="away from the borders"):
        K.offset_covariance(x, mask, 5)
