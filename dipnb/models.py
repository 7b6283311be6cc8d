"""The networks of the book, one class per architecture, each sized by a config dataclass.

- :class:`SkipNet`: the 2D "skip" encoder-decoder of Ulyanov et al. (2018), the Deep Image Prior.
- :class:`FullyConnectedAE`: the same idea with fully connected layers (the paper's DIP-Linear
  in 2D, and the fully connected twin of the 1D conv net).
- :class:`ConvAE1d`: the 1D convolutional encoder-decoder of the paper's Sec. 3.1 (DIP-Conv).
- :class:`ReLUNet`: a coordinate MLP mapping pixel positions to intensities (Rahaman et al. 2019).
- :class:`UpsampleDecoder`: a small decoder whose only change of resolution is one upsampling
  by a chosen stride (optionally with the fixed kernel of another stride), for the upsampling
  chapter.

Every model maps a fixed input (noise, or coordinates for :class:`ReLUNet`) of shape
``(1, C_in, *spatial)`` to an output of shape ``(1, C_out, *spatial)``. Build models with the
``build_*`` functions, which take a ``seed`` so the initial weights are reproducible without
touching the global random generator.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .data import input_noise
from .errors import ConfigError
from .params import Config, param
from .spectral import MODE_PARAM, check_upsample_mode, torch_upsample_options

__all__ = [
    "SkipConfig",
    "SkipNet",
    "FCConfig",
    "FullyConnectedAE",
    "ConvAE1dConfig",
    "ConvAE1d",
    "ReLUNetConfig",
    "ReLUNet",
    "DecoderConfig",
    "UpsampleDecoder",
    "FixedKernelUpsample",
    "upsampling_matrix",
    "build_skip",
    "build_dip_linear",
    "build_conv1d",
    "build_fc1d",
    "build_relunet",
    "build_decoder",
    "MODELS_1D",
    "MIN_COARSEST",
    "resolve_scales",
    "build_1d",
    "count_parameters",
    "seeded",
]

@contextmanager
def seeded(seed: int):
    """Run the block with the CPU generator seeded, restoring the caller's state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def _act(negative_slope: float) -> nn.Module:
    return nn.LeakyReLU(negative_slope, inplace=True)


def _conv_bn_act(cin: int, cout: int, k: int, stride: int, bn: bool, slope: float, dims: int = 2):
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    layers: list[nn.Module] = [conv(cin, cout, k, stride=stride, padding=k // 2, bias=True)]
    if bn:
        layers.append(norm(cout))
    layers.append(_act(slope))
    return layers


# --------------------------------------------------------------------------------------------
# The 2D skip encoder-decoder (DIP)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkipConfig(Config):
    in_channels: int = param(3, ge=1)  # channels of the input noise z; the paper's code draws z shaped like the image
    out_channels: int = param(3, ge=1)  # channels of the image (3 RGB, 1 grayscale)
    depth: int = param(5, ge=1)  # number of scales; each halves the resolution, so H and W need 2**depth
    width: int = param(128, ge=1)  # channels at every scale, down and up (the paper's 128; its code's: 256)
    skip_channels: int = param(4, ge=0)  # channels of each skip branch (0 removes the skips)
    kernel_size: int = param(3, ge=1)  # spatial size of the main convolutions
    upsample_mode: str = param("bilinear", **MODE_PARAM)  # bilinear (the spectral-bias experiments) or nearest
    upsample_factor: int = param(2, ge=1)  # stride of each downsampling and upsampling
    batch_norm: bool = True  # BatchNorm after every convolution
    negative_slope: float = 0.2  # LeakyReLU slope

    def check(self):
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (to keep the size), got {self.kernel_size}")

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: ``upsample_factor ** depth``."""
        return self.upsample_factor**self.depth


class _SkipLevel(nn.Module):
    """One scale: a skip branch at this resolution beside a deeper branch that comes back up."""

    def __init__(self, cfg: SkipConfig, cin: int, deeper: nn.Module | None):
        super().__init__()
        w, s, k, bn, a = cfg.width, cfg.skip_channels, cfg.kernel_size, cfg.batch_norm, cfg.negative_slope
        f = cfg.upsample_factor
        self.skip = nn.Sequential(*_conv_bn_act(cin, s, 1, 1, bn, a)) if s > 0 else None
        down = _conv_bn_act(cin, w, k, f, bn, a) + _conv_bn_act(w, w, k, 1, bn, a)
        self.down = nn.Sequential(*down)
        self.deeper = deeper
        self.up = nn.Upsample(scale_factor=f, **torch_upsample_options(cfg.upsample_mode, 2))
        merged = s + w
        merge: list[nn.Module] = [nn.BatchNorm2d(merged)] if bn else []
        merge += _conv_bn_act(merged, w, k, 1, bn, a) + _conv_bn_act(w, w, 1, 1, bn, a)
        self.merge = nn.Sequential(*merge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)  # (B, w, H/f, W/f)
        if self.deeper is not None:
            y = self.deeper(y)  # (B, w, H/f, W/f)
        y = self.up(y)  # (B, w, H, W)
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], dim=1)  # (B, s + w, H, W)
        return self.merge(y)


class SkipNet(nn.Module):
    """The Deep Image Prior's skip encoder-decoder (Ulyanov et al. 2018), as the paper used it.

    Per scale: a strided 3x3 conv and a 3x3 conv going down, the deeper scales, an upsampling,
    then concat with a 1x1 skip branch, BN, a 3x3 conv and a 1x1 conv. Every conv is followed
    by BN and LeakyReLU(0.2); zero padding; a final 1x1 conv and a sigmoid give the image.
    """

    def __init__(self, cfg: SkipConfig):
        super().__init__()
        self.cfg = cfg
        level: nn.Module | None = None
        for i in reversed(range(cfg.depth)):
            cin = cfg.in_channels if i == 0 else cfg.width
            level = _SkipLevel(cfg, cin, level)
        self.body = level
        self.head = nn.Conv2d(cfg.width, cfg.out_channels, 1)

    def check_input(self, height: int, width: int) -> None:
        """Raise :class:`ConfigError` unless an image of this size can be halved ``depth`` times."""
        m = self.cfg.size_multiple
        if height % m or width % m:
            raise ConfigError(
                f"image size {height}x{width} cannot be downsampled {self.cfg.depth} times by "
                f"{self.cfg.upsample_factor}: height and width must be multiples of {m} "
                f"(e.g. {max(m, height - height % m)}); crop the image or lower depth"
            )
        if self.cfg.batch_norm and (height // m) * (width // m) < 2:
            # BatchNorm in training mode needs more than one value per channel (batch of one).
            raise ConfigError(
                f"image size {height}x{width} leaves a 1x1 map after {self.cfg.depth} downsamplings, "
                f"where BatchNorm cannot train: use at least {2 * m} pixels on one side or lower depth"
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.check_input(z.shape[-2], z.shape[-1])
        return torch.sigmoid(self.head(self.body(z)))  # (B, C_out, H, W)


# --------------------------------------------------------------------------------------------
# Fully connected encoder-decoder (DIP-Linear in 2D, the FC twin in 1D)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FCConfig(Config):
    in_features: int = param(ge=1)  # number of input values (C*H*W for an image, L for a 1D signal)
    out_features: int = param(ge=1)  # number of output values
    width: int = param(128, ge=1)  # units in every hidden layer (the paper's 128 or 2048; 256 in 1D)
    depth: int = param(5, ge=2, note="an encoder and a decoder layer")  # fully connected layers, the output's included
    negative_slope: float = 0.2  # LeakyReLU slope between layers
    sigmoid: bool = True  # squash the output to [0, 1] (images) or leave it linear (1D signals)


class FullyConnectedAE(nn.Module):
    """An encoder-decoder whose every layer is fully connected: no convolution, no BN, no skips.

    The input is flattened, passed through ``depth`` linear layers (``depth - 1`` hidden layers
    of ``width`` units with LeakyReLU), and reshaped to the input's spatial shape with
    ``out_channels = out_features / prod(spatial)`` channels.
    """

    def __init__(self, cfg: FCConfig):
        super().__init__()
        self.cfg = cfg
        dims = [cfg.in_features] + [cfg.width] * (cfg.depth - 1) + [cfg.out_features]
        layers: list[nn.Module] = []
        for i in range(cfg.depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < cfg.depth - 1:
                layers.append(_act(cfg.negative_slope))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, spatial = z.shape[0], z.shape[2:]
        n = math.prod(spatial)
        if z[0].numel() != self.cfg.in_features or self.cfg.out_features % n:
            raise ConfigError(
                f"input of shape {tuple(z.shape)} does not match in_features={self.cfg.in_features}"
                f" / out_features={self.cfg.out_features}"
            )
        y = self.net(z.reshape(b, -1))  # (B, out_features)
        if self.cfg.sigmoid:
            y = torch.sigmoid(y)
        return y.reshape(b, self.cfg.out_features // n, *spatial)


# --------------------------------------------------------------------------------------------
# 1D convolutional encoder-decoder (DIP-Conv of Sec. 3.1)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvAE1dConfig(Config):
    channels: int = param(1, ge=1)  # channels of the signal (and of the input noise)
    width: int = param(256, ge=1)  # channels of every conv layer (the paper's 256)
    depth: int = param(10, ge=2)  # conv layers in all: depth // 2 going down, the rest going up (the paper's 10)
    scales: int | None = None  # how many down layers halve the length (default: all depth // 2)
    kernel_size: int = param(3, ge=1)  # taps of each conv
    upsample_mode: str = param("nearest", **MODE_PARAM)  # nearest | bilinear (linear interpolation) before each up conv
    batch_norm: bool = True  # BatchNorm after each conv
    negative_slope: float = 0.2  # LeakyReLU slope

    def check(self):
        if self.scales is not None and not 0 <= self.scales <= self.depth // 2:
            raise ConfigError(f"scales must be an integer in [0, depth // 2 = {self.depth // 2}], got {self.scales!r}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd, got {self.kernel_size}")

    @property
    def n_scales(self) -> int:
        """How many times the length is halved (and doubled back)."""
        return self.depth // 2 if self.scales is None else self.scales


class ConvAE1d(nn.Module):
    """A 1D conv encoder-decoder: strided convs halve the length, upsampling + conv restore it.

    ``depth // 2`` conv layers go down (the first ``scales`` with stride 2), the rest go up (the
    last ``scales`` of them after a x2 upsampling); each conv is followed by BN and LeakyReLU.
    A final 1x1 conv maps to the signal's channels with no squashing (signals are not in [0, 1]).
    """

    def __init__(self, cfg: ConvAE1dConfig):
        super().__init__()
        self.cfg = cfg
        n_down, n_up, s = cfg.depth // 2, cfg.depth - cfg.depth // 2, cfg.n_scales
        layers: list[nn.Module] = []
        cin = cfg.channels
        for i in range(n_down):
            stride = 2 if i < s else 1
            layers += _conv_bn_act(cin, cfg.width, cfg.kernel_size, stride, cfg.batch_norm, cfg.negative_slope, dims=1)
            cin = cfg.width
        for i in range(n_up):
            if i >= n_up - s:
                layers.append(nn.Upsample(scale_factor=2, **torch_upsample_options(cfg.upsample_mode, 1)))
            layers += _conv_bn_act(cfg.width, cfg.width, cfg.kernel_size, 1, cfg.batch_norm, cfg.negative_slope, dims=1)
        layers.append(nn.Conv1d(cfg.width, cfg.channels, 1))
        self.net = nn.Sequential(*layers)

    def check_input(self, length: int) -> None:
        """Raise :class:`ConfigError` unless the length can be halved ``scales`` times."""
        m = 2**self.cfg.n_scales
        if length % m:
            raise ConfigError(
                f"signal length {length} cannot be halved {self.cfg.n_scales} times: it must be a "
                f"multiple of {m}; change the length or lower depth/scales"
            )
        if self.cfg.batch_norm and length // m < 2:
            # BatchNorm in training mode needs more than one value per channel (batch of one).
            raise ConfigError(
                f"signal length {length} leaves 1 sample after {self.cfg.n_scales} halvings, where "
                f"BatchNorm cannot train: use a length of at least {2 * m} or lower depth/scales"
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.check_input(z.shape[-1])
        return self.net(z)  # (B, C, L)


# --------------------------------------------------------------------------------------------
# Coordinate network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReLUNetConfig(Config):
    in_features: int = param(2, ge=1)  # coordinates per pixel: (row, col)
    out_channels: int = param(3, ge=1)  # intensities per pixel
    width: int = param(256, ge=1)  # units per hidden layer (the paper's 256)
    depth: int = param(10, ge=2)  # linear layers, the output layer included (the paper's 10)


class ReLUNet(nn.Module):
    """A ReLU MLP from pixel coordinates to intensities, applied to every pixel independently.

    The input is a coordinate image ``(1, 2, H, W)`` (see :func:`dipnb.data.coordinate_grid`);
    :meth:`forward_at` evaluates a subset of pixels, for minibatch training.
    """

    def __init__(self, cfg: ReLUNetConfig):
        super().__init__()
        self.cfg = cfg
        dims = [cfg.in_features] + [cfg.width] * (cfg.depth - 1) + [cfg.out_channels]
        layers: list[nn.Module] = []
        for i in range(cfg.depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            layers.append(nn.ReLU(inplace=True) if i < cfg.depth - 1 else nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward_at(self, coords: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Predict the pixels at flat indices ``index`` of a ``(1, 2, H, W)`` coordinate image.

        Returns:
            ``(1, C, N)`` intensities in [0, 1] for the N indices.
        """
        pts = coords.flatten(2)[0, :, index].T  # (N, 2)
        return self.net(pts).T[None]  # (1, C, N)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        b, _, h, w = coords.shape
        pts = coords.permute(0, 2, 3, 1).reshape(-1, coords.shape[1])  # (B*H*W, 2)
        return self.net(pts).reshape(b, h, w, -1).permute(0, 3, 1, 2)  # (B, C, H, W)


# --------------------------------------------------------------------------------------------
# A decoder with a single upsampling by a chosen stride
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecoderConfig(Config):
    in_channels: int = param(32, ge=1)  # channels of the low-resolution input noise
    out_channels: int = param(1, ge=1)  # channels of the image
    width: int = param(64, ge=1)  # channels of every conv
    stride: int = param(4, ge=1)  # the one upsampling factor; the input is (H / stride, W / stride)
    upsample_mode: str = param("bilinear", **MODE_PARAM)  # nearest or bilinear
    convs_before: int = param(2, ge=0)  # 3x3 conv-BN-LeakyReLU blocks at the low resolution
    convs_after: int = param(2, ge=0)  # 3x3 conv-BN-LeakyReLU blocks after the upsampling
    negative_slope: float = 0.2  # LeakyReLU slope
    kernel_stride: int = param(0, ge=0)  # the stride whose fixed kernel the upsampling uses; 0 = its own `stride`


def upsampling_matrix(n_in: int, mode: str, stride: int, kernel_stride: int) -> torch.Tensor:
    """The ``(n_in * stride, n_in)`` matrix of "insert ``stride - 1`` zeros, then convolve with the
    fixed kernel of ``mode`` at ``kernel_stride``", with PyTorch's edge handling.

    Input sample ``n`` lands at output position ``n L + (L - 1) / 2`` (``L = stride``, PyTorch's
    ``align_corners=False`` convention) and is spread by the continuous kernel ``g`` of width
    ``K = kernel_stride``: the triangle ``1 - |t| / K`` on ``|t| < K`` (bilinear) or the box
    ``-K / 2 <= t < K / 2`` (nearest), times ``L / K`` so that a constant input stays constant
    (DC gain ``L``, like PyTorch's kernels). Positions outside the input take its end samples, as
    PyTorch clamps them. With ``K = L`` this is ``F.interpolate`` exactly; a larger ``K`` is a
    wider, lower-pass kernel at the same stride.

    Returns:
        float64 ``(n_in * stride, n_in)``; row ``m`` holds the weights of output sample ``m``.
    """
    check_upsample_mode(mode)
    for name, v in (("n_in", n_in), ("stride", stride), ("kernel_stride", kernel_stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
    L, K = int(stride), int(kernel_stride)
    pad = -(-K // L) + 1  # input samples beyond each end that the kernel can reach
    m = torch.arange(n_in * L, dtype=torch.float64)[:, None]  # (n_in L, 1) output positions
    n = torch.arange(-pad, n_in + pad)  # (n_in + 2 pad,) input samples, ends extended
    t = m - n[None].double() * L - (L - 1) / 2  # (n_in L, n_in + 2 pad) offsets from each sample
    if mode == "bilinear":
        g = (1 - t.abs() / K).clamp(min=0)
    else:
        g = ((t >= -K / 2) & (t < K / 2)).double()
    g = g * (L / K)
    out = torch.zeros(n_in * L, n_in, dtype=torch.float64)
    out.index_add_(1, n.clamp(0, n_in - 1), g)  # clamped positions add onto the end samples
    return out


class FixedKernelUpsample(nn.Module):
    """Upsampling by ``stride`` with the fixed kernel of another stride (:func:`upsampling_matrix`).

    Applied to each channel along both axes (separable, like PyTorch's 2D upsampling). No weights.
    """

    def __init__(self, mode: str, stride: int, kernel_stride: int):
        super().__init__()
        upsampling_matrix(1, mode, stride, kernel_stride)  # validates the arguments
        self.mode, self.stride, self.kernel_stride = mode, int(stride), int(kernel_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        uh = upsampling_matrix(h, self.mode, self.stride, self.kernel_stride).to(x)  # (h L, h)
        uw = upsampling_matrix(w, self.mode, self.stride, self.kernel_stride).to(x)  # (w L, w)
        return torch.einsum("mh,bchw,nw->bcmn", uh, x, uw)  # (B, C, h L, w L)


class UpsampleDecoder(nn.Module):
    """Noise at ``1/stride`` of the image size -> convs -> one upsampling by ``stride`` -> convs -> sigmoid.

    The upsampling is the only change of resolution, and it is zero insertion followed by a fixed
    smoothing kernel (Sec. 3.2, Appendix E of the paper). Two things change with the stride,
    though, not one: the kernel, whose pass band narrows as ``1 / stride``, and the bottleneck, the
    input of ``(H / stride) x (W / stride)`` positions that everything is computed from (4x4 at
    stride 32 for a 128x128 image, against 32x32 at stride 4). To change the kernel alone, keep
    ``stride`` and set ``kernel_stride``: the upsampling by ``stride`` then uses the kernel of
    ``kernel_stride`` (:class:`FixedKernelUpsample`), with the bottleneck and every learned layer
    unchanged.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = cfg.in_channels
        for _ in range(cfg.convs_before):
            layers += _conv_bn_act(cin, cfg.width, 3, 1, True, cfg.negative_slope)
            cin = cfg.width
        if cfg.kernel_stride in (0, cfg.stride):
            layers.append(
                nn.Upsample(scale_factor=cfg.stride, **torch_upsample_options(cfg.upsample_mode, 2))
            )
        else:
            layers.append(FixedKernelUpsample(cfg.upsample_mode, cfg.stride, cfg.kernel_stride))
        for _ in range(cfg.convs_after):
            layers += _conv_bn_act(cin, cfg.width, 3, 1, True, cfg.negative_slope)
            cin = cfg.width
        layers += [nn.Conv2d(cin, cfg.out_channels, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, C_out, H, W)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def build_skip(*, seed: int = 0, **kwargs) -> SkipNet:
    """The DIP skip encoder-decoder (Ulyanov et al. 2018) with weights drawn from ``seed``.

    Keyword arguments are the fields of :class:`SkipConfig` (depth, width, skip_channels,
    kernel_size, upsample_mode, upsample_factor, batch_norm, ...).
    """
    cfg = SkipConfig(**kwargs)
    with seeded(seed):
        return SkipNet(cfg)


def build_dip_linear(
    *, shape: tuple[int, int, int], width: int = 128, depth: int = 5, seed: int = 0
) -> FullyConnectedAE:
    """DIP-Linear: the paper's fully connected encoder-decoder for a ``(C, H, W)`` image."""
    n = math.prod(shape)
    with seeded(seed):
        return FullyConnectedAE(FCConfig(n, n, width=width, depth=depth, sigmoid=True))


def build_conv1d(*, seed: int = 0, **kwargs) -> ConvAE1d:
    """DIP-Conv: the 1D conv encoder-decoder (fields of :class:`ConvAE1dConfig`)."""
    cfg = ConvAE1dConfig(**kwargs)
    with seeded(seed):
        return ConvAE1d(cfg)


def build_fc1d(*, length: int, channels: int = 1, width: int = 256, depth: int = 10, seed: int = 0) -> FullyConnectedAE:
    """The fully connected twin of :func:`build_conv1d`: same depth, linear layers, linear output."""
    if not isinstance(length, int) or length <= 0:
        raise ConfigError(f"length must be a positive integer, got {length!r}")
    n = length * channels
    with seeded(seed):
        return FullyConnectedAE(FCConfig(n, n, width=width, depth=depth, sigmoid=False))


def build_relunet(*, seed: int = 0, **kwargs) -> ReLUNet:
    """The coordinate ReLU network (fields of :class:`ReLUNetConfig`)."""
    cfg = ReLUNetConfig(**kwargs)
    with seeded(seed):
        return ReLUNet(cfg)


def build_decoder(*, seed: int = 0, **kwargs) -> UpsampleDecoder:
    """The single-upsampling decoder (fields of :class:`DecoderConfig`)."""
    cfg = DecoderConfig(**kwargs)
    with seeded(seed):
        return UpsampleDecoder(cfg)


MODELS_1D = ("conv", "linear")  # the 1D encoder-decoder and its fully connected twin
MIN_COARSEST = 8  # the automatic `scales` stops halving once the signal would get shorter than this


def resolve_scales(depth: int, length: int, scales: int = -1) -> int:
    """How many times the conv encoder-decoder halves the length.

    ``scales = -1`` (automatic) gives ``depth // 2`` (every down layer strided, as in the paper's
    10-layer net) unless that would make the coarsest signal shorter than :data:`MIN_COARSEST`
    samples or the length is not divisible; the extra layers of a deep net then work at the
    coarsest scale. Any other value is returned unchanged.
    """
    if scales >= 0:
        return scales
    s = min(depth // 2, max(0, int(math.log2(length)) - int(math.log2(MIN_COARSEST))))
    while s > 0 and length % 2**s:
        s -= 1
    return s


def check_scales(depth: int, length: int, scales: int) -> int:
    """:func:`resolve_scales`, checked: ``scales`` must be -1 or in ``[0, depth // 2]``, and
    ``length`` must be divisible by ``2**scales``.

    Returns:
        the number of halvings. Raises :class:`ConfigError` saying which rule failed.
    """
    if not -1 <= scales <= depth // 2:
        raise ConfigError(
            f"scales must be -1 (automatic) or an integer in [0, depth // 2 = {depth // 2}], got {scales!r}"
        )
    s = resolve_scales(depth, length, scales)
    if length % 2**s:
        raise ConfigError(
            f"length {length} cannot be halved scales={s} times: use a multiple of {2**s} or fewer scales"
        )
    return s


def build_1d(model: str, *, length: int, width: int, depth: int, scales: int, seed: int,
             **conv_options) -> tuple[nn.Module, torch.Tensor]:
    """A 1D conv encoder-decoder (``model="conv"``) or its fully connected twin, and its fixed input.

    ``conv_options`` (``batch_norm``, ``upsample_mode`` ...) go to :func:`dipnb.models.build_conv1d`.

    Returns:
        ``(model, z)``: weights from ``seed``; ``z`` ``(1, 1, L)`` noise from ``seed + 10_000``
        (:func:`dipnb.data.input_noise`), the
        same for both models.
    """
    if model not in MODELS_1D:
        raise ConfigError(f"model {model!r} is not allowed: use one of {', '.join(MODELS_1D)}")
    if model == "conv":
        net = build_conv1d(
            seed=seed, width=width, depth=depth, scales=resolve_scales(depth, length, scales), **conv_options
        )
    else:
        net = build_fc1d(length=length, width=width, depth=depth, seed=seed)
    z = input_noise((1, 1, length), seed=seed)  # (1, 1, L)
    return net, z


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
