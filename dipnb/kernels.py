r"""The Deep Image Prior at initialisation as a Gaussian process (Cheng et al. 2019).

When every layer of a convolutional net with random weights has infinitely many channels, its
output on a fixed input is a Gaussian process; its covariance (the *kernel*) follows from the
input layer by layer. This module computes that kernel for a small 1D decoder and measures the
same covariance from samples of finite nets, in 1D and in 2D.

Three rules carry a second-moment matrix :math:`\Sigma(i, j) = \mathbb{E}[a_c(i)\, a_c(j)]` of a
layer's activations (the same for every channel ``c``) through the net:

- **convolution** with ``k`` taps, weights i.i.d. :math:`\mathcal N(0, \sigma_w^2 / (C k))`, biases
  :math:`\mathcal N(0, \sigma_b^2)` and zero padding, as the number of input channels
  :math:`C \to \infty`:
  :math:`K(i, j) = \frac{\sigma_w^2}{k} \sum_t \Sigma(i + t, j + t) + \sigma_b^2`
  (:func:`conv_kernel`). Different taps have independent weights, so only pairs at the *same*
  offset ``j - i`` feed each other: a convolution alone never correlates two positions that
  were uncorrelated.
- **ReLU**: :math:`\mathbb{E}[\max(u, 0) \max(v, 0)]` for a centred Gaussian pair, the
  arc-cosine kernel of degree 1 (Cho & Saul 2009) (:func:`relu_kernel`).
- **upsampling**, a fixed linear map ``U``: :math:`\Sigma' = U \Sigma U^\top`
  (:func:`upsample_kernel`). This is where neighbouring outputs become correlated.

Offsets and lengths are in samples (pixels). Kernels are float64 numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .params import Config, param
from .spectral import MODE_NOTE, UPSAMPLE_MODES, check_upsample_mode, torch_upsample_options

__all__ = [
    "UPSAMPLE_MODES_1D",
    "relu_kernel",
    "conv_kernel",
    "upsample_matrix",
    "upsample_kernel",
    "input_gram",
    "Decoder1dConfig",
    "ConvReLUDecoder1d",
    "build_decoder1d",
    "sample_decoder1d",
    "decoder_kernel",
    "second_moment",
    "centre_kernel",
    "kernel_profile",
    "correlation_length",
    "offset_covariance",
]

UPSAMPLE_MODES_1D = (*UPSAMPLE_MODES, "none")  # none: no upsampling, stride-1 convs only


# --------------------------------------------------------------------------------------------
# The kernel recursion
# --------------------------------------------------------------------------------------------


def relu_kernel(K: np.ndarray) -> np.ndarray:
    r"""Second moment of ``ReLU(h)`` for a centred Gaussian vector ``h`` with covariance ``K``.

    For each pair :math:`(i, j)`, with :math:`\cos\theta = K_{ij} / \sqrt{K_{ii} K_{jj}}`:
    :math:`\mathbb{E}[\mathrm{relu}(h_i)\,\mathrm{relu}(h_j)] = \frac{\sqrt{K_{ii}K_{jj}}}{2\pi}
    (\sin\theta + (\pi - \theta)\cos\theta)`, the arc-cosine kernel of degree 1 (Cho & Saul 2009).
    Positions of zero variance give zero.

    Args:
        K: ``(L, L)`` covariance matrix.

    Returns:
        ``(L, L)`` second-moment matrix (not centred: ReLU outputs have a positive mean).
    """
    K = np.asarray(K, dtype=np.float64)
    d = np.sqrt(np.clip(np.diag(K), 0.0, None))
    norm = np.outer(d, d)  # (L, L)
    cos = np.divide(K, norm, out=np.zeros_like(K), where=norm > 0)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    return norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


def conv_kernel(S: np.ndarray, kernel_size: int, weight_var: float = 2.0, bias_var: float = 0.0) -> np.ndarray:
    r"""Covariance after a stride-1 convolution with i.i.d. Gaussian weights and zero padding.

    :math:`K(i, j) = \frac{\sigma_w^2}{k}\sum_{t=-r}^{r} \Sigma(i + t, j + t) + \sigma_b^2`, with
    :math:`r = (k - 1) / 2` and :math:`\Sigma = 0` outside the signal (zero padding). Exact in
    the limit of infinitely many input channels; weights :math:`\mathcal N(0, \sigma_w^2 / (C k))`.

    Args:
        S: ``(L, L)`` second moment of the layer's input (per channel).
        kernel_size: odd number of taps ``k``.
        weight_var: :math:`\sigma_w^2` (2 is He's choice for ReLU nets).
        bias_var: :math:`\sigma_b^2`.
    """
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise ConfigError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    L, r = S.shape[0], kernel_size // 2
    Sp = np.pad(np.asarray(S, dtype=np.float64), r)  # (L + 2r, L + 2r), zeros outside
    out = np.zeros((L, L))
    for t in range(kernel_size):
        out += Sp[t : t + L, t : t + L]  # the pairs (i + t - r, j + t - r)
    return weight_var / kernel_size * out + bias_var


def upsample_matrix(n: int, mode: str) -> np.ndarray:
    """The ``(2n, n)`` matrix of PyTorch's x2 upsampling of a length-``n`` signal.

    Built by upsampling the unit vectors with :func:`torch.nn.functional.interpolate`
    (:func:`dipnb.spectral.torch_upsample_options`), so it matches the network exactly, borders
    included. ``mode`` is ``nearest`` or ``bilinear`` (linear interpolation).
    """
    check_upsample_mode(mode, "upsampling mode")
    eye = torch.eye(n, dtype=torch.float64)[:, None, :]  # (n, 1, n): n unit signals
    up = F.interpolate(eye, scale_factor=2, **torch_upsample_options(mode, 1))[:, 0, :]  # (n, 2n)
    return up.T.numpy()


def upsample_kernel(S: np.ndarray, mode: str) -> np.ndarray:
    r"""Second moment after x2 upsampling: :math:`U \Sigma U^\top`."""
    U = upsample_matrix(S.shape[0], mode)
    return U @ S @ U.T


def input_gram(z) -> np.ndarray:
    r"""Second moment of the input across its channels, :math:`\frac{1}{C}\sum_c z_c(i) z_c(j)`.

    Args:
        z: ``(C, L)`` or ``(1, C, L)`` input.

    Returns:
        ``(L, L)``; close to the identity for white noise with many channels.
    """
    a = torch.as_tensor(z).detach().double().cpu()
    while a.dim() > 2:
        a = a[0]
    return (a.T @ a).numpy() / a.shape[0]


# --------------------------------------------------------------------------------------------
# The 1D decoder whose kernel we compute
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoder1dConfig(Config):
    length: int = param(128, ge=1)  # length of the output signal (samples)
    in_channels: int = param(32, ge=1)  # channels of the input noise z
    width: int = param(64, ge=1)  # channels of every hidden layer (the theory's infinite limit)
    stages: int = param(3, ge=0, le=10)  # x2 upsamplings (each followed by conv-ReLU); the input has length / 2**stages
    kernel_size: int = param(3, ge=1)  # taps of every convolution (odd)
    upsample_mode: str = param("bilinear", one_of=UPSAMPLE_MODES_1D, note=MODE_NOTE)  # or none: stride-1 convs only
    weight_var: float = param(2.0, gt=0)  # sigma_w^2: weights ~ N(0, sigma_w^2 / fan_in), He's choice for ReLU
    bias_std: float = param(0.0, ge=0)  # sigma_b: biases ~ N(0, sigma_b^2)

    def check(self):
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (to keep the length), got {self.kernel_size}")
        if self.length % self.scale:
            raise ConfigError(
                f"length {self.length} cannot be reached by {self.stages} x2 upsamplings: it must be a "
                f"multiple of {self.scale}"
            )

    @property
    def scale(self) -> int:
        """How much the decoder lengthens its input: ``2**stages`` (1 without upsampling)."""
        return 1 if self.upsample_mode == "none" else 2**self.stages

    @property
    def input_length(self) -> int:
        return self.length // self.scale


class ConvReLUDecoder1d(nn.Module):
    """``n_nets`` independent 1D decoders with the same architecture, evaluated together.

    One decoder: conv-ReLU on the input; then ``stages`` times: x2 upsampling, conv-ReLU (stride 1,
    zero padding); then a 1x1 convolution to one output channel (no squashing). With
    ``upsample_mode="none"`` the upsamplings are left out. Weights are drawn
    :math:`\\mathcal N(0, \\sigma_w^2 / \\text{fan-in})`, biases :math:`\\mathcal N(0, \\sigma_b^2)`.
    No batch norm. :meth:`member` returns decoder ``i`` as an ordinary ``nn.Sequential``.
    """

    def __init__(self, cfg: Decoder1dConfig, n_nets: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(n_nets, int) or n_nets < 1:
            raise ConfigError(f"n_nets must be an integer >= 1, got {n_nets!r}")
        self.cfg, self.n_nets = cfg, n_nets
        k, w = cfg.kernel_size, cfg.width
        shapes = [(w, cfg.in_channels, k)] + [(w, w, k)] * cfg.stages + [(1, w, 1)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for cout, cin, taps in shapes:
            std = math.sqrt(cfg.weight_var / (cin * taps))
            self.weights.append(nn.Parameter(torch.randn(n_nets, cout, cin, taps, generator=generator) * std))
            self.biases.append(nn.Parameter(torch.randn(n_nets, cout, generator=generator) * cfg.bias_std))

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.upsample_mode
        if mode == "none":
            return x
        return F.interpolate(x, scale_factor=2, **torch_upsample_options(mode, 1))

    @staticmethod
    def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # x (B, C, L) with B = 1 (shared input) or n; w (n, Cout, C, k); b (n, Cout)
        k = w.shape[-1]
        cols = F.pad(x, (k // 2, k // 2)).unfold(2, k, 1)  # (B, C, L, k)
        cols = cols.permute(0, 1, 3, 2).reshape(x.shape[0], -1, x.shape[-1])  # (B, C*k, L), index c*k + t
        return torch.matmul(w.flatten(2), cols) + b[..., None]  # (n, Cout, L)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Outputs of every decoder on the same input ``z`` of shape ``(C, L0)`` or ``(1, C, L0)``.

        Returns:
            ``(n_nets, length)``.
        """
        x = z if z.dim() == 3 else z[None]  # (1, C, L0)
        x = torch.relu(self._conv(x, self.weights[0], self.biases[0]))  # (n, W, L0)
        for w, b in zip(self.weights[1:-1], self.biases[1:-1], strict=True):
            x = torch.relu(self._conv(self._upsample(x), w, b))  # (n, W, 2 L)
        return self._conv(x, self.weights[-1], self.biases[-1])[:, 0]  # (n, length)

    def member(self, i: int) -> nn.Sequential:
        """Decoder ``i`` as a plain ``nn.Sequential`` of ``Conv1d``, ``ReLU`` and ``Upsample`` layers."""
        cfg, layers = self.cfg, []
        n_layers = len(self.weights)
        for j, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if 0 < j < n_layers - 1 and cfg.upsample_mode != "none":
                layers.append(nn.Upsample(scale_factor=2, **torch_upsample_options(cfg.upsample_mode, 1)))
            cout, cin, k = w.shape[1:]
            conv = nn.Conv1d(cin, cout, k, padding=k // 2)
            with torch.no_grad():
                conv.weight.copy_(w[i])
                conv.bias.copy_(b[i])
            layers.append(conv)
            if j < n_layers - 1:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


def build_decoder1d(*, seed: int = 0, n_nets: int = 1, **kwargs) -> ConvReLUDecoder1d:
    """``n_nets`` decoders (fields of :class:`Decoder1dConfig`) with weights drawn from ``seed``."""
    return ConvReLUDecoder1d(Decoder1dConfig(**kwargs), n_nets, torch.Generator().manual_seed(int(seed)))


@torch.no_grad()
def sample_decoder1d(
    cfg: Decoder1dConfig, z: torch.Tensor, n: int, *, seed: int = 0, chunk: int = 250, device=None
) -> np.ndarray:
    """Outputs of ``n`` independently initialised decoders on the same input ``z``.

    The weights come from one generator seeded with ``seed``, ``chunk`` decoders at a time (the
    result depends on ``chunk``, not on the device).

    Returns:
        ``(n, length)`` float64.
    """
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for start in range(0, n, chunk):
        nets = ConvReLUDecoder1d(cfg, min(chunk, n - start), g).to(device or "cpu")
        out.append(nets(z.to(device or "cpu")).double().cpu().numpy())
    return np.concatenate(out)


def decoder_kernel(cfg: Decoder1dConfig, gram: np.ndarray | None = None) -> np.ndarray:
    """The infinite-width kernel of the decoder's output, layer by layer.

    Args:
        cfg: the decoder.
        gram: ``(L0, L0)`` second moment of the input across channels (:func:`input_gram` of a
            fixed ``z``); ``None`` takes ideal white noise, the identity.

    Returns:
        ``(length, length)`` covariance of the output.
    """
    S = np.eye(cfg.input_length) if gram is None else np.asarray(gram, dtype=np.float64)
    if S.shape != (cfg.input_length, cfg.input_length):
        raise ConfigError(f"gram must be {cfg.input_length}x{cfg.input_length}, got {S.shape}")
    bias_var = cfg.bias_std**2
    S = relu_kernel(conv_kernel(S, cfg.kernel_size, cfg.weight_var, bias_var))
    for _ in range(cfg.stages):
        if cfg.upsample_mode != "none":
            S = upsample_kernel(S, cfg.upsample_mode)
        S = relu_kernel(conv_kernel(S, cfg.kernel_size, cfg.weight_var, bias_var))
    return conv_kernel(S, 1, cfg.weight_var, bias_var)  # the 1x1 readout


# --------------------------------------------------------------------------------------------
# Measuring kernels from samples
# --------------------------------------------------------------------------------------------


def second_moment(samples, centre: bool = False) -> np.ndarray:
    """``(L, L)`` mean of ``y yᵀ`` over samples ``(N, L)``; with ``centre``, each sample's own
    mean over positions is subtracted first (see :func:`centre_kernel` for the theory's side)."""
    y = np.asarray(samples, dtype=np.float64)
    if centre:
        y = y - y.mean(axis=1, keepdims=True)
    return y.T @ y / len(y)


def centre_kernel(K: np.ndarray) -> np.ndarray:
    r"""The kernel of ``y - mean(y)`` when ``y`` has kernel ``K``: :math:`P K P`.

    :math:`P = I - \frac{1}{L}\mathbf{1}\mathbf{1}^\top` subtracts the mean over positions.
    """
    L = K.shape[0]
    P = np.eye(L) - 1.0 / L
    return P @ K @ P


def kernel_profile(K: np.ndarray, margin: int, max_offset: int) -> np.ndarray:
    r"""The kernel as a function of offset, averaged over positions away from the borders.

    :math:`\rho(d) = \overline{K(i, i + d)} / \overline{K(i, i)}`, averages over
    :math:`i \in [m, L - m - D)`: 1 at offset 0.

    Returns:
        ``(max_offset + 1,)``.
    """
    L = K.shape[0]
    idx = np.arange(margin, L - margin - max_offset)
    if len(idx) < 1:
        raise ConfigError(f"margin {margin} and max_offset {max_offset} leave no positions in a length-{L} signal")
    v = np.array([K[idx, idx + d].mean() for d in range(max_offset + 1)])
    return v / v[0]


def correlation_length(rho) -> float:
    """The offset (samples) where a normalised profile first falls to 1/2, linearly interpolated.

    NaN when it never does within the profile.
    """
    rho = np.asarray(rho, dtype=np.float64)
    below = np.nonzero(rho <= 0.5)[0]
    if len(below) == 0:
        return float("nan")
    d = int(below[0])
    if d == 0:
        return 0.0
    a, b = rho[d - 1], rho[d]
    return float(d - 1 + (a - 0.5) / (a - b))


def offset_covariance(x, mask, max_offset: int) -> np.ndarray:
    r"""Mean of :math:`x_p\, x_{p + \delta}` over samples and the positions ``p`` of ``mask``.

    Args:
        x: ``(N, H, W)`` samples (centre them first).
        mask: ``(H, W)`` bool, at least ``max_offset`` pixels from every border.
        max_offset: largest offset ``D`` per axis.

    Returns:
        ``(2D + 1, 2D + 1)``: entry ``[D + dy, D + dx]`` is the covariance at offset ``(dy, dx)``
        (rows down, columns right).
    """
    x = np.asarray(x, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    n, h, w = x.shape
    D = int(max_offset)
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        raise ConfigError("the mask selects no pixels")
    if rows.min() < D or cols.min() < D or rows.max() >= h - D or cols.max() >= w - D:
        raise ConfigError(f"the mask must stay {D} pixels (max_offset) away from the borders")
    # With the mask that far from the borders, circular correlation equals the plain one.
    fa = np.fft.rfft2(x * mask)  # (N, H, W // 2 + 1)
    fx = np.fft.rfft2(x)
    r = np.fft.irfft2((np.conj(fa) * fx).sum(axis=0), s=(h, w))  # r[dy, dx] = sum_p a_p x_{p + d}
    offs = np.arange(-D, D + 1)
    return r[np.ix_(offs % h, offs % w)] / (n * mask.sum())
