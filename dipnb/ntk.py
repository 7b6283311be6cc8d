r"""The empirical neural tangent kernel of a network with a fixed input, and what it predicts.

Around its initial weights :math:`\theta_0` a network with a fixed input :math:`z` is, to first
order, a linear function of its weights (Jacot et al. 2018):

.. math::  f_\theta(z) \approx f_{\theta_0}(z) + J (\theta - \theta_0),
           \qquad J = \partial f_\theta(z) / \partial \theta \big|_{\theta_0} \in \mathbb{R}^{N \times P}.

Plain gradient descent with step :math:`\eta` on the mean squared error
:math:`\frac1N \|f_\theta(z) - y\|^2` then moves the residual :math:`r_t = f_{\theta_t}(z) - y`
by :math:`r_{t+1} = (I - \tfrac{2\eta}{N} K)\, r_t` with the kernel :math:`K = J J^\top`
(``N x N``). Along an eigenvector of ``K`` with eigenvalue :math:`\lambda` the residual shrinks by
the factor :math:`1 - 2\eta\lambda/N` per step; when the eigenvectors are Fourier modes, each
frequency is fitted at its own rate.

This module computes ``K`` for the function that is actually trained (BatchNorm in train mode
with a batch of one normalises over the signal's length: a function of the weights alone),
measures how close its eigenvectors are to Fourier modes, turns its spectrum into a predicted
convergence iteration per frequency, and runs the plain gradient descent that the prediction
is about (:func:`dipnb.fit.fit` runs Adam only).

Conventions: signals have ``N`` samples; frequencies ``k`` are in **cycles per signal**
(``0 .. N // 2``), as in :mod:`dipnb.spectral`; the unitary DFT is ``U[n, k] = e^{2 pi i n k / N} / sqrt(N)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .metrics import spearman  # noqa: F401 - also reachable here, where the kernel chapter found it

__all__ = [
    "trainable_function",
    "jacobian",
    "empirical_ntk",
    "ntk_by_loop",
    "eigh_descending",
    "fourier_basis",
    "fourier_kernel",
    "fourier_diagonal_fraction",
    "offset_energy_profile",
    "spectral_density",
    "eigenvector_frequencies",
    "amplitudes",
    "residual_amplitudes",
    "gd_rate",
    "stable_lr",
    "predict_iterations",
    "linearised_amplitudes",
    "convergence_iterations",
    "gradient_descent",
]


# --------------------------------------------------------------------------------------------
# The Jacobian and the kernel
# --------------------------------------------------------------------------------------------


def trainable_function(model: nn.Module) -> tuple[Callable, dict[str, torch.Tensor]]:
    """The map ``(params, z) -> output`` that training differentiates, and the initial params.

    A copy of ``model`` is put in train mode and its BatchNorm layers stop tracking running
    statistics (:func:`torch.func.replace_all_batch_norm_modules_`): in train mode they normalise
    with the statistics of the current batch anyway, so the copy computes exactly the function
    that :func:`dipnb.fit.fit` trains, without writing to any buffer. ``model`` is not modified.

    Returns:
        ``(fn, params)``: ``fn(params, z)`` returns the output flattened to ``(N,)``; ``params``
        maps parameter names to detached copies of the current weights.
    """
    net = copy.deepcopy(model)
    torch.func.replace_all_batch_norm_modules_(net)
    net.train()
    params = {k: v.detach().clone() for k, v in net.named_parameters() if v.requires_grad}

    def fn(p: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(net, p, (z,)).reshape(-1)  # (N,)

    return fn, params


def jacobian(model: nn.Module, z: torch.Tensor, *, chunk_size: int = 64) -> torch.Tensor:
    """Jacobian of the flattened output with respect to every trainable parameter.

    One forward pass, then vector-Jacobian products with the unit vectors of the output,
    ``chunk_size`` at a time (:func:`torch.func.vmap`), on the device of ``z``.

    Args:
        model: the network; its parameters are read, never changed.
        z: its fixed input, ``(1, C, *spatial)``.
        chunk_size: output entries per batched backward pass (memory ~ chunk_size x activations).

    Returns:
        ``(N, P)`` float32: row ``i`` is the gradient of output entry ``i`` (parameters in the
        order of ``model.named_parameters()``, each flattened).
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    fn, params = trainable_function(model.to(z.device))
    names = list(params)
    out, vjp_fn = torch.func.vjp(lambda p: fn(p, z), params)
    n = out.numel()
    eye = torch.eye(n, device=z.device, dtype=out.dtype)
    rows = []
    for start in range(0, n, chunk_size):
        basis = eye[start : start + chunk_size]  # (c, N)
        (grads,) = torch.func.vmap(vjp_fn)(basis)  # name -> (c, *shape)
        rows.append(torch.cat([grads[k].reshape(basis.shape[0], -1) for k in names], dim=1))  # (c, P)
    return torch.cat(rows)  # (N, P)


def _gram(J: torch.Tensor, block: int = 1 << 16) -> np.ndarray:
    """``J J^T`` in float64, accumulated over blocks of columns (never a float64 copy of J)."""
    n = J.shape[0]
    K = torch.zeros(n, n, dtype=torch.float64, device=J.device)
    for s in range(0, J.shape[1], block):
        Jb = J[:, s : s + block].double()  # (N, b)
        K += Jb @ Jb.T
    return K.cpu().numpy()


def empirical_ntk(model: nn.Module, z: torch.Tensor, *, chunk_size: int = 64) -> np.ndarray:
    """The empirical tangent kernel ``K = J J^T`` of ``model`` at its current weights, for input ``z``.

    ``K[i, j]`` is the inner product of the gradients of output entries ``i`` and ``j``: how much
    a gradient step that lowers the error at ``j`` moves the output at ``i``.

    Returns:
        ``(N, N)`` float64, symmetric positive semi-definite.
    """
    return _gram(jacobian(model, z, chunk_size=chunk_size))


def ntk_by_loop(model: nn.Module, z: torch.Tensor) -> np.ndarray:
    """The same kernel the slow, independent way: one ``autograd.grad`` per output entry.

    Runs a copy of the *original* module (its own BatchNorm layers, in train mode), so agreement
    with :func:`empirical_ntk` checks that the functional copy computes the trained function.

    Returns:
        ``(N, N)`` float64.
    """
    net = copy.deepcopy(model).to(z.device).train()
    params = [p for p in net.parameters() if p.requires_grad]
    out = net(z).reshape(-1)  # (N,)
    rows = []
    for i in range(out.numel()):
        g = torch.autograd.grad(out[i], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                               for gi, p in zip(g, params, strict=True)]))
    return _gram(torch.stack(rows))


def eigh_descending(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) and unit eigenvectors (columns) of a symmetric kernel."""
    K = np.asarray(K, dtype=np.float64)
    w, V = np.linalg.eigh((K + K.T) / 2)
    return w[::-1].copy(), V[:, ::-1].copy()


# --------------------------------------------------------------------------------------------
# The kernel in the Fourier basis
# --------------------------------------------------------------------------------------------


def _check_square(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ConfigError(f"expected a square (N, N) kernel, got shape {K.shape}")
    return K


def fourier_basis(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The real orthonormal Fourier basis of length-``n`` signals.

    Columns: the constant, then ``cos`` and ``sin`` of 1, 2, ... cycles, and (for even ``n``) the
    alternating Nyquist vector.

    Returns:
        ``(B, freqs)``: ``B`` is ``(n, n)`` with orthonormal columns, ``freqs`` the ``(n,)``
        frequency of each column in cycles per signal.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    t = np.arange(n) / n
    cols, freqs = [np.full(n, 1 / math.sqrt(n))], [0]
    for k in range(1, (n - 1) // 2 + 1):
        cols += [np.cos(2 * np.pi * k * t) * math.sqrt(2 / n), np.sin(2 * np.pi * k * t) * math.sqrt(2 / n)]
        freqs += [k, k]
    if n % 2 == 0 and n > 1:
        cols.append(np.cos(np.pi * np.arange(n)) / math.sqrt(n))
        freqs.append(n // 2)
    return np.stack(cols, axis=1), np.asarray(freqs)


def fourier_kernel(K) -> np.ndarray:
    r"""The kernel in the unitary DFT basis: :math:`\hat K = U^* K U` (complex ``(N, N)``).

    Row and column ``k`` belong to frequency ``k`` cycles per signal (``fftfreq`` order: 0, 1, ...,
    then the negative frequencies). A shift-invariant (circulant) kernel gives a diagonal matrix.
    """
    K = _check_square(K)
    # U^* K U = fft of the rows and inverse fft of the columns (unitary normalisation)
    return np.fft.ifft(np.fft.fft(K, axis=0, norm="ortho"), axis=1, norm="ortho")


def _offsets(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    d = np.abs(k[:, None] - k[None, :])
    return np.minimum(d, n - d)  # (N, N) circular distance between frequencies


def fourier_diagonal_fraction(K, *, remove_identity: bool = False, bandwidth: int = 0) -> float:
    r"""The fraction of the kernel's Frobenius energy on the diagonal of :math:`\hat K`.

    1 for a circulant kernel (every Fourier mode is an eigenvector), about ``1 / N`` for a kernel
    whose energy is spread evenly.

    Args:
        K: ``(N, N)`` kernel.
        remove_identity: subtract its mean diagonal times the identity first. The identity is
            diagonal in *every* basis, so a kernel close to ``c I`` scores near 1 without any
            preference for Fourier modes; removing it measures the structure that is left.
        bandwidth: also count the entries within this many frequencies of the diagonal
            (``|k - k'| <= bandwidth``, circularly).

    Returns:
        A number in [0, 1] (NaN if nothing is left after removing the identity).
    """
    K = _check_square(K)
    if not isinstance(bandwidth, (int, np.integer)) or bandwidth < 0:
        raise ConfigError(f"bandwidth must be an integer >= 0, got {bandwidth!r}")
    if remove_identity:
        K = K - np.trace(K) / K.shape[0] * np.eye(K.shape[0])
    E = np.abs(fourier_kernel(K)) ** 2
    total = E.sum()
    if total <= 1e-300 * max(1.0, K.size):
        return float("nan")
    return float(E[_offsets(K.shape[0]) <= bandwidth].sum() / total)


def offset_energy_profile(K, max_offset: int | None = None, *, remove_identity: bool = False) -> np.ndarray:
    r"""Cumulative Frobenius energy of :math:`\hat K` within ``|k - k'| <= b``, for ``b = 0 .. max_offset``.

    Returns:
        ``(max_offset + 1,)`` fractions in [0, 1], non-decreasing; entry 0 is
        :func:`fourier_diagonal_fraction`. A kernel with no Fourier structure rises linearly.
    """
    K = _check_square(K)
    n = K.shape[0]
    max_offset = n // 2 if max_offset is None else int(max_offset)
    if remove_identity:
        K = K - np.trace(K) / n * np.eye(n)
    E = np.abs(fourier_kernel(K)) ** 2
    d = _offsets(n)
    per = np.bincount(d.astype(int).ravel(), weights=E.ravel(), minlength=n // 2 + 1)
    return np.cumsum(per)[: max_offset + 1] / max(E.sum(), 1e-300)


def spectral_density(K) -> np.ndarray:
    r"""The kernel's Rayleigh quotient on each frequency: :math:`\rho_k = \tfrac12 (c_k^\top K c_k + s_k^\top K s_k)`.

    ``c_k`` and ``s_k`` are the unit cosine and sine of ``k`` cycles (the constant and the
    Nyquist vector alone at ``k = 0`` and ``N / 2``). For a circulant kernel these are its
    eigenvalues; in general :math:`\rho_k` is the rate at which one gradient step shrinks a
    residual that is a pure sinusoid of frequency ``k`` (of any phase, on average).

    Returns:
        ``(N // 2 + 1,)`` float64, same units as ``K``, indexed by ``k`` in cycles per signal.
    """
    K = _check_square(K)
    n = K.shape[0]
    B, freqs = fourier_basis(n)
    q = np.einsum("ik,ij,jk->k", B, K, B)  # (N,) Rayleigh quotient of every basis vector
    rho = np.zeros(n // 2 + 1)
    np.add.at(rho, freqs, q)
    counts = np.bincount(freqs, minlength=n // 2 + 1)
    return rho / counts


def eigenvector_frequencies(V) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which frequency each eigenvector is made of, and how purely.

    Args:
        V: ``(N, M)`` unit vectors in columns (e.g. eigenvectors from :func:`eigh_descending`).

    Returns:
        ``(dominant, concentration, power)``: ``dominant`` ``(M,)`` the frequency (cycles per
        signal) holding most of each vector's energy; ``concentration`` ``(M,)`` the share of its
        energy at that frequency (cosine and sine together: 1 for a pure sinusoid); ``power``
        ``(N // 2 + 1, M)`` the share at every frequency.
    """
    V = np.asarray(V, dtype=np.float64)
    if V.ndim == 1:
        V = V[:, None]
    n = V.shape[0]
    P = np.abs(np.fft.rfft(V, axis=0)) ** 2  # (N//2+1, M)
    P[1 : (n + 1) // 2] *= 2  # positive and negative frequencies together
    P /= P.sum(axis=0, keepdims=True)
    return P.argmax(axis=0), P.max(axis=0), P


# --------------------------------------------------------------------------------------------
# Predicted convergence per frequency
# --------------------------------------------------------------------------------------------


def amplitudes(signal, frequencies) -> np.ndarray:
    """Amplitude of each sinusoid in a real signal (as :func:`dipnb.spectral.amplitude_at`).

    Args:
        signal: ``(..., N)`` array or tensor.
        frequencies: integer cycles per signal.

    Returns:
        ``(..., F)``: ``2 |rfft(x)[k]| / N`` for each ``k``.
    """
    x = signal.detach().cpu().double().numpy() if torch.is_tensor(signal) else np.asarray(signal, np.float64)
    n = x.shape[-1]
    ks = np.asarray(frequencies, dtype=int)
    return 2.0 * np.abs(np.fft.rfft(x, axis=-1)[..., ks]) / n


def residual_amplitudes(f0, target, frequencies) -> np.ndarray:
    """Amplitude of the initial residual ``f0 - target`` at each frequency, ``(F,)``."""
    return amplitudes(np.asarray(f0, np.float64).reshape(-1) - np.asarray(target, np.float64).reshape(-1), frequencies)


def gd_rate(lr: float, n: int) -> float:
    r"""The factor :math:`2\eta / N` that multiplies ``K`` in one gradient step on the mean squared error."""
    return 2.0 * float(lr) / int(n)


def stable_lr(lam_max: float, n: int) -> float:
    r"""The largest step for which linearised gradient descent does not diverge: :math:`\eta < N / \lambda_{max}`."""
    if not lam_max > 0:
        raise ConfigError(f"the kernel's largest eigenvalue must be > 0, got {lam_max!r}")
    return int(n) / float(lam_max)


def predict_iterations(rho, a0, *, lr: float, n: int, delta: float) -> np.ndarray:
    r"""The iteration at which each frequency converges if it shrinks at its kernel rate.

    A residual sinusoid of frequency ``k`` and amplitude :math:`a_0` shrinks by
    :math:`q_k = 1 - \tfrac{2\eta}{N}\rho_k` per step, so the squared amplitude error
    :math:`SE(k) \le a_0^2 q_k^{2t}` falls to ``delta`` at

    .. math::  t_k = \left\lceil \frac{\ln(a_0^2 / \delta)}{-2 \ln |q_k|} \right\rceil
               \approx \frac{N \ln(a_0 / \sqrt{\delta})}{2 \eta \rho_k}.

    Args:
        rho: ``(F,)`` the kernel's Rayleigh quotient at each frequency (:func:`spectral_density`).
        a0: ``(F,)`` the initial residual amplitude at each frequency (:func:`residual_amplitudes`).
        lr: the gradient-descent step.
        n: the signal length.
        delta: the convergence threshold on ``SE(k)`` (the paper's 0.01).

    Returns:
        ``(F,)`` float: 0 where already converged, ``inf`` where the rate is not in (0, 2)
        (that mode does not shrink: it stalls or diverges).
    """
    rho = np.asarray(rho, dtype=np.float64)
    a0 = np.broadcast_to(np.asarray(a0, dtype=np.float64), rho.shape)
    if not delta > 0:
        raise ConfigError(f"delta must be > 0, got {delta!r}")
    q = np.abs(1.0 - gd_rate(lr, n) * rho)
    out = np.full(rho.shape, np.inf)
    done = a0**2 <= delta
    ok = ~done & (q < 1) & (q > 0)
    out[done] = 0.0
    out[ok] = np.ceil(np.log(a0[ok] ** 2 / delta) / (-2.0 * np.log(q[ok])))
    out[~done & (q == 0)] = 1.0
    return out


def linearised_amplitudes(K, f0, target, frequencies, *, lr: float, iterations: int) -> np.ndarray:
    r"""The amplitudes at each frequency along the trajectory of the *linearised* network.

    :math:`f_t = y + V \operatorname{diag}\big((1 - \tfrac{2\eta}{N}\lambda_i)^t\big) V^\top (f_0 - y)`
    with the full kernel (no assumption that its eigenvectors are Fourier modes).

    Returns:
        ``(iterations, F)`` float64: the amplitude of the output at each frequency after
        ``t = 0 .. iterations - 1`` steps.
    """
    K = _check_square(K)
    n = K.shape[0]
    w, V = eigh_descending(K)
    y = np.asarray(target, np.float64).reshape(-1)
    c = V.T @ (np.asarray(f0, np.float64).reshape(-1) - y)  # (N,) residual in the eigenbasis
    q = 1.0 - gd_rate(lr, n) * w  # (N,)
    ks = np.asarray(frequencies, dtype=int)
    # The DFT of each eigenvector at the chosen frequencies, so the amplitudes need no N x N work per step.
    Vk = np.fft.rfft(V, axis=0)[ks]  # (F, N) complex
    Yk = np.fft.rfft(y)[ks]  # (F,)
    out = np.empty((iterations, ks.size))
    t = np.arange(iterations)[:, None]
    chunk = 4096
    for s in range(0, iterations, chunk):
        with np.errstate(over="ignore", invalid="ignore"):
            decay = np.power(q[None, :], t[s : s + chunk]) * c[None, :]  # (T, N)
        Rk = decay @ Vk.T  # (T, F) residual's DFT at each k
        out[s : s + chunk] = 2.0 * np.abs(Yk[None, :] + Rk) / n
    return out


def convergence_iterations(iterations, amps, target_amplitude, delta: float) -> np.ndarray:
    """First recorded iteration with ``SE(k) = (amplitude - A)^2 <= delta``, per frequency.

    Args:
        iterations: ``(T,)``.
        amps: ``(T, F)`` amplitudes along a trajectory.
        target_amplitude: ``A`` (scalar or ``(F,)``).

    Returns:
        ``(F,)`` float: the iteration, ``inf`` where the threshold was never reached.
    """
    it = np.asarray(iterations)
    se = (np.asarray(amps, np.float64) - np.asarray(target_amplitude, np.float64)) ** 2  # (T, F)
    below = se <= delta
    first = np.argmax(below, axis=0)
    return np.where(below.any(axis=0), it[first].astype(float), np.inf)


# --------------------------------------------------------------------------------------------
# Plain gradient descent, the dynamics the kernel speaks about
# --------------------------------------------------------------------------------------------


def gradient_descent(
    model: nn.Module,
    z: torch.Tensor,
    target,
    *,
    lr: float,
    iterations: int,
    record: Callable[[torch.Tensor], np.ndarray],
    probe_at: tuple[int, ...] = (),
    probe: Callable[[nn.Module], object] | None = None,
    progress: bool = False,
    description: str = "gd",
) -> dict:
    r"""Full-batch gradient descent (no momentum) on the mean squared error, recording every step.

    The same objective and the same convention as :func:`dipnb.fit.fit` (the value recorded at
    iteration ``t`` is the output after ``t`` updates, i.e. of the forward pass step ``t``
    differentiates), with :math:`\theta \leftarrow \theta - \eta \nabla_\theta \frac1N\|f_\theta(z) - y\|^2`
    in place of Adam.

    Args:
        model: trained in place, in train mode, on the device of ``z``.
        z: fixed input ``(1, C, *spatial)``.
        target: ``(C, *spatial)`` or ``(1, C, *spatial)``.
        lr: the step ``eta``.
        iterations: number of steps.
        record: function of the output ``(1, C, *spatial)`` returning a 1D array, called at every step.
        probe_at: iterations ``t`` at which to call ``probe(model)`` on the weights after ``t``
            updates (e.g. to re-measure the tangent kernel); ``t = iterations`` means the end.
        probe: the function called there.

    Returns:
        ``{"iterations": (T,), "values": (T, ...), "loss": (T,), "final": output array,
        "probes": {t: probe(model)}}``.

    Raises:
        FitDivergedError: if the loss becomes NaN or infinite; its ``record`` holds the same dict
        for the steps before, with ``"diverged_at"`` the iteration.
    """
    from .errors import FitDivergedError
    from .fit import FitConfig, fit

    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations must be an integer >= 1, got {iterations!r}")
    tgt = torch.as_tensor(np.asarray(target) if not torch.is_tensor(target) else target, dtype=z.dtype)
    if tgt.dim() == z.dim() - 1:
        tgt = tgt[None]  # (1, C, *spatial)
    if tgt.dim() != z.dim() or tgt.shape[0] != 1 or tgt.shape[2:] != z.shape[2:]:
        raise ConfigError(f"target of shape {tuple(tgt.shape)} does not match the input {tuple(z.shape)}")
    probes: dict = {}
    probe_at = set(int(t) for t in probe_at) if probe is not None else set()
    if 0 in probe_at:
        probes[0] = probe(model)

    def probe_after(it: int) -> None:  # fit calls this after update `it`: the weights after it + 1 updates
        if it + 1 in probe_at:
            probes[it + 1] = probe(model)

    # The book's one fitting loop, with plain gradient descent in place of Adam.
    cfg = FitConfig(iterations=iterations, lr=float(lr), optimizer="sgd", record_every=1, channels_last=False)
    try:
        rec = fit(model, z, tgt, cfg, metrics={"values": record}, device=z.device, progress=progress,
                  callbacks=(probe_after,) if probe_at else (), description=description)
    except FitDivergedError as e:
        part = e.record
        it = len(part.iterations)
        partial = {
            "iterations": np.arange(it),
            "values": part.metrics["values"][0] if "values" in part.metrics else np.zeros((0, 0)),
            "loss": part.loss[0],
            "final": None,
            "probes": probes,
            "diverged_at": it,
        }
        raise FitDivergedError(f"gradient descent diverged at iteration {it} (lr={lr}): lower the step",
                               record=partial) from None
    return {
        "iterations": rec.iterations,
        "values": rec.metrics["values"][0],
        "loss": rec.loss[0],
        "final": rec.final[0],
        "probes": probes,
    }
