"""The empirical tangent kernel against independent computations and closed forms, the Fourier
measures on matrices whose answer is known, and the linearised dynamics against gradient descent
on a model that is exactly linear in its parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from dipnb import ntk
from dipnb.errors import ConfigError, FitDivergedError
from dipnb.models import build_conv1d, build_fc1d, seeded


class _Linear1d(nn.Module):
    """y = W z + b on a (1, 1, N) signal: the kernel is (|z|^2 + 1) I in closed form."""

    def __init__(self, n: int):
        super().__init__()
        self.lin = nn.Linear(n, n)

    def forward(self, z):
        return self.lin(z.reshape(1, -1)).reshape(z.shape)


def _circulant(c: np.ndarray) -> np.ndarray:
    n = c.size
    return np.stack([np.roll(c, i) for i in range(n)])  # C[i, j] = c[(j - i) mod n]


@pytest.fixture
def z37(rng) -> torch.Tensor:
    return torch.randn(1, 1, 37, generator=rng)


# --------------------------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_kernel_matches_one_backward_per_output(rng, one_thread, mode):
    # BatchNorm in train mode, stride 2 down and x2 up: the functional copy must compute the trained function
    net = build_conv1d(width=6, depth=4, scales=2, upsample_mode=mode, seed=3)
    z = torch.randn(1, 1, 24, generator=rng)
    K = ntk.empirical_ntk(net, z, chunk_size=5)  # chunks that do not divide 24
    K_loop = ntk.ntk_by_loop(net, z)
    assert K.shape == (24, 24)
    np.testing.assert_allclose(K, K_loop, rtol=1e-4, atol=1e-6 * np.abs(K_loop).max())
    assert np.allclose(K, K.T) and np.linalg.eigvalsh(K).min() > -1e-6 * np.abs(K).max()


def test_kernel_is_jacobian_gram(z37, one_thread):
    net = build_fc1d(length=37, width=9, depth=3, seed=1)
    J = ntk.jacobian(net, z37, chunk_size=8)
    n_params = sum(p.numel() for p in net.parameters())
    assert J.shape == (37, n_params)
    # one row by plain autograd
    out = net(z37).reshape(-1)
    g = torch.autograd.grad(out[11], list(net.parameters()))
    np.testing.assert_allclose(J[11].numpy(), torch.cat([x.reshape(-1) for x in g]).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ntk.empirical_ntk(net, z37), (J.double() @ J.double().T).numpy(), rtol=1e-10)


def test_linear_model_kernel_closed_form(z37):
    K = ntk.empirical_ntk(_Linear1d(37), z37)
    expected = (float((z37.double() ** 2).sum()) + 1.0) * np.eye(37)
    np.testing.assert_allclose(K, expected, rtol=1e-5, atol=1e-5)


def test_single_conv_kernel_is_local_autocorrelation(z37):
    # y_i = sum_t w_t z_{i+t-1} + b: K_ij = sum_t z_{i+t-1} z_{j+t-1} + 1 (zero padding)
    conv = nn.Conv1d(1, 1, 3, padding=1)
    K = ntk.empirical_ntk(conv, z37)
    zp = np.pad(z37.reshape(-1).double().numpy(), 1)
    windows = np.stack([zp[i : i + 3] for i in range(37)])  # (N, 3)
    np.testing.assert_allclose(K, windows @ windows.T + 1.0, rtol=1e-5, atol=1e-5)


def test_kernel_leaves_the_model_untouched(rng):
    net = build_conv1d(width=4, depth=4, scales=1, seed=0)
    before = copy.deepcopy(net.state_dict())
    fn, params = ntk.trainable_function(net)
    z = torch.randn(1, 1, 16, generator=rng)
    ntk.empirical_ntk(net, z)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"  # running statistics included
    # the functional copy computes the train-mode output
    ref = copy.deepcopy(net).train()(z).reshape(-1)
    torch.testing.assert_close(fn(params, z), ref)


def test_bad_chunk_size(z37):
    with pytest.raises(ConfigError, match="chunk_size"):
        ntk.jacobian(_Linear1d(37), z37, chunk_size=0)


# --------------------------------------------------------------------------------------------
# Fourier structure
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 16, 37])
def test_fourier_basis_orthonormal(n):
    B, f = ntk.fourier_basis(n)
    assert B.shape == (n, n) and f.shape == (n,)
    np.testing.assert_allclose(B.T @ B, np.eye(n), atol=1e-12)
    assert f.max() == n // 2 and f.min() == 0


def test_circulant_kernel(np_rng):
    n = 36
    c = np_rng.random(n)
    c = c + np.roll(c[::-1], 1)  # symmetric: c[m] = c[-m]
    C = _circulant(c)
    assert ntk.fourier_diagonal_fraction(C) == pytest.approx(1.0, abs=1e-12)
    assert ntk.fourier_diagonal_fraction(C, remove_identity=True) == pytest.approx(1.0, abs=1e-12)
    eig = np.real(np.fft.fft(c))  # the eigenvalue of frequency k
    np.testing.assert_allclose(ntk.spectral_density(C), eig[: n // 2 + 1], atol=1e-10)
    prof = ntk.offset_energy_profile(C)
    assert prof[0] == pytest.approx(1.0) and np.all(np.diff(prof) >= -1e-12)


def test_identity_is_diagonal_in_every_basis():
    eye = np.eye(20)
    assert ntk.fourier_diagonal_fraction(eye) == pytest.approx(1.0)
    assert np.isnan(ntk.fourier_diagonal_fraction(eye, remove_identity=True))


def test_unstructured_kernel_spreads(np_rng):
    A = np_rng.standard_normal((64, 64))
    K = A @ A.T
    f = ntk.fourier_diagonal_fraction(K, remove_identity=True)
    assert f < 0.1, f  # about 1/N of the energy on the diagonal
    prof = ntk.offset_energy_profile(K, 32, remove_identity=True)
    assert prof[-1] == pytest.approx(1.0) and prof.shape == (33,)


def test_fourier_measures_reject_bad_input():
    with pytest.raises(ConfigError, match="square"):
        ntk.spectral_density(np.ones((3, 4)))
    with pytest.raises(ConfigError, match="bandwidth"):
        ntk.fourier_diagonal_fraction(np.eye(4), bandwidth=-1)


def test_eigenvector_frequencies_of_sinusoids():
    n = 40
    B, f = ntk.fourier_basis(n)
    dom, conc, power = ntk.eigenvector_frequencies(B)
    np.testing.assert_array_equal(dom, f)
    np.testing.assert_allclose(conc, 1.0, atol=1e-12)
    assert power.shape == (n // 2 + 1, n)
    mixed = (B[:, 3] + B[:, 11]) / np.sqrt(2)  # half at 2 cycles, half at 6
    _, c, _ = ntk.eigenvector_frequencies(mixed)
    assert c[0] == pytest.approx(0.5)


def test_amplitudes_of_a_sine():
    t = np.arange(64) / 64
    x = 0.7 * np.sin(2 * np.pi * 5 * t + 0.3) + 0.2 * np.cos(2 * np.pi * 9 * t)
    np.testing.assert_allclose(ntk.amplitudes(x, [5, 9, 12]), [0.7, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(ntk.amplitudes(torch.tensor(x)[None], [5]), [[0.7]], atol=1e-6)


# --------------------------------------------------------------------------------------------
# Predictions and dynamics
# --------------------------------------------------------------------------------------------


def test_predict_iterations_formula():
    lr, n, delta = 0.5, 64, 0.01
    rho = np.array([32.0, 8.0, 1.0])  # rates 2 lr rho / n = 0.5, 0.125, 0.015625
    a0 = np.ones(3)
    t = ntk.predict_iterations(rho, a0, lr=lr, n=n, delta=delta)
    q = 1 - 2 * lr * rho / n
    np.testing.assert_array_equal(t, np.ceil(np.log(1 / delta) / (-2 * np.log(q))))
    assert np.all(a0**2 * q ** (2 * t) <= delta) and np.all(a0**2 * q ** (2 * (t - 1)) > delta)
    # already converged, a mode that stalls, a mode that diverges, one exactly removed in one step
    t2 = ntk.predict_iterations(np.array([8.0, 0.0, 200.0, 64.0]), np.array([0.05, 1, 1, 1]), lr=lr, n=n, delta=delta)
    np.testing.assert_array_equal(t2, [0, np.inf, np.inf, 1])
    with pytest.raises(ConfigError, match="delta"):
        ntk.predict_iterations(rho, a0, lr=lr, n=n, delta=0)
    assert ntk.stable_lr(4.0, 64) == 16.0
    with pytest.raises(ConfigError):
        ntk.stable_lr(0.0, 64)


def test_linearised_dynamics_are_exact_for_a_linear_model(rng, one_thread):
    # A single conv layer is linear in its weights: gradient descent IS the linearised dynamics.
    n, ks = 32, np.array([2, 5, 11])
    z = torch.randn(1, 1, n, dtype=torch.float64, generator=rng)
    with seeded(0):
        conv = nn.Conv1d(1, 1, 5, padding=2).double()
    K = ntk.empirical_ntk(conv, z)
    y = np.sin(2 * np.pi * ks[:, None] * np.arange(n)[None] / n).sum(0)
    with torch.no_grad():
        f0 = conv(z).reshape(-1).numpy()
    lr = 0.5 * ntk.stable_lr(ntk.eigh_descending(K)[0][0], n)
    lin = ntk.linearised_amplitudes(K, f0, y, ks, lr=lr, iterations=40)
    rec = ntk.gradient_descent(copy.deepcopy(conv), z, torch.tensor(y)[None], lr=lr, iterations=40,
                               record=lambda o: ntk.amplitudes(o.reshape(-1), ks))
    np.testing.assert_allclose(rec["values"], lin, atol=1e-10)
    assert rec["values"].shape == (40, 3) and rec["loss"].shape == (40,)


def test_rayleigh_prediction_is_exact_for_a_circulant_kernel():
    n, ks, delta = 64, np.array([1, 4, 9, 20]), 0.01
    c = np.exp(-np.minimum(np.arange(n), n - np.arange(n)) / 3.0)  # a smooth, symmetric bump
    K = _circulant(c)
    y = np.sin(2 * np.pi * ks[:, None] * np.arange(n)[None] / n).sum(0)
    f0 = np.zeros(n)
    lr = 0.5 * ntk.stable_lr(ntk.eigh_descending(K)[0][0], n)
    rho = ntk.spectral_density(K)[ks]
    pred = ntk.predict_iterations(rho, ntk.residual_amplitudes(f0, y, ks), lr=lr, n=n, delta=delta)
    lin = ntk.linearised_amplitudes(K, f0, y, ks, lr=lr, iterations=int(pred.max()) + 5)
    meas = ntk.convergence_iterations(np.arange(lin.shape[0]), lin, 1.0, delta)
    np.testing.assert_array_equal(meas, pred)
    assert np.all(np.diff(pred) > 0), "a low-pass kernel fits low frequencies first"


def test_convergence_iterations_and_spearman():
    it = np.arange(5)
    amps = np.array([[0.0, 0.0], [0.5, 0.0], [0.95, 0.1], [0.99, 0.2], [1.0, 0.3]])
    np.testing.assert_array_equal(ntk.convergence_iterations(it, amps, 1.0, 0.01), [2, np.inf])
    assert ntk.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert ntk.spearman([1, 2, 3], [10, np.inf, 5]) == pytest.approx(-0.5)  # inf ranks last
    assert np.isnan(ntk.spearman([1, 2, 3], [4, 4, 4]))
    with pytest.raises(ConfigError):
        ntk.spearman([1, 2], [1, 2, 3])


def test_gradient_descent_probes_and_divergence(rng):
    net = build_conv1d(width=4, depth=4, scales=1, seed=0)
    z = torch.randn(1, 1, 16, generator=rng)
    y = torch.sin(torch.arange(16) * 0.8)[None]
    rec = ntk.gradient_descent(copy.deepcopy(net), z, y, lr=1e-3, iterations=5, record=lambda o: o.reshape(-1).numpy(),
                               probe_at=(0, 2, 5), probe=lambda m: ntk.empirical_ntk(m, z))
    assert sorted(rec["probes"]) == [0, 2, 5]
    np.testing.assert_allclose(rec["probes"][0], ntk.empirical_ntk(net, z))
    assert rec["values"].shape == (5, 16)
    assert rec["loss"][-1] < rec["loss"][0]
    with pytest.raises(FitDivergedError) as err:
        ntk.gradient_descent(copy.deepcopy(net), z, y, lr=1e30, iterations=50, record=lambda o: np.zeros(1))
    assert err.value.record["diverged_at"] >= 1
    with pytest.raises(ConfigError, match="lr"):
        ntk.gradient_descent(net, z, y, lr=-1.0, iterations=5, record=lambda o: np.zeros(1))
    with pytest.raises(ConfigError, match="target"):
        ntk.gradient_descent(net, z, torch.zeros(1, 15), lr=1e-3, iterations=5, record=lambda o: np.zeros(1))
