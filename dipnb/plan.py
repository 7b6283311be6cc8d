r"""The time plan: runs, work, memory and minutes of every chapter, counted without running anything.

For every chapter of the book, :func:`plan` lists the computations its page asks for (the
experiments of its ``dipnb.run`` cells, their sub-runs, the sub-runs' sub-runs), keeps each
distinct config once (the cache computes it once), and counts for each one, from its config alone:

- **runs**: distinct computations (cache entries) the page computes from a cold cache;
- **fits**: networks trained (a two-run fit counts 2);
- **GFLOP**: the multiply-adds of the convolutions and fully connected layers, x 2. Every network
  is built on PyTorch's ``meta`` device (shapes, no numbers) and run once there with forward
  hooks that count each ``Conv1d``, ``Conv2d`` and ``Linear`` layer's multiply-adds (output
  elements x input channels per group x kernel taps, or output elements x input features). A
  training step is 3 forward passes' worth (forward, then backward: gradients of the inputs and
  of the weights); a Jacobian row is one more backward pass. Batch norm, activations,
  upsampling and Adam are not counted as FLOPs (like ``benchmarks/step.py``'s counter), but
  their memory traffic and their operator count are (below);
- **peak memory**: the largest single computation of the chapter (computations run one after
  another): weights, gradients and Adam's two moments (4 x 4 bytes per parameter) of every
  network fitted side by side, plus every layer's output kept for the backward pass (4 bytes per
  element, the sum of all layers' output sizes); for a tangent kernel, the ``N x P`` Jacobian
  and a chunk of 256 backward passes. The CUDA context (about 0.3-0.5 GB) and the allocator's
  slack are not included;
- **minutes**, from a cost model of four terms per computation::

      arithmetic = FLOPs / (peak FLOP/s x efficiency)
      memory     = bytes moved / (memory bandwidth x efficiency)
      dispatch   = operators x seconds per operator       # the host launching each layer's work
      host       = networks x seconds per build + weights / host rate   # building them on the CPU
                 + pixels of recorded outputs x seconds per pixel      # spectral metrics on the CPU

  On a CPU the four add up. On a GPU the host dispatches while the device computes, so a
  computation takes the longer of (arithmetic + memory) and dispatch, plus the shorter one on
  the steps that wait for the device (those that record or snapshot the output), plus host.
  Memory traffic per training step is 4 bytes x (6 x the layers' output elements + 10 x the
  parameters): each output is written and read forward and read, and its gradient written and
  read, backward; each weight is read twice and its gradient written, and Adam reads and writes
  the weight, its gradient and two moments. Operators per step are 3 per layer call (forward
  and backward) plus one per parameter tensor (the optimiser). Not counted: checkpoint writes,
  loading the images.

The device terms: for the CPU they are **measured** by a probe of a few
seconds (:func:`probe_cpu`: a memory copy, building two DIP nets, and a few steps of two DIP
fits, which give the arithmetic rate and the time per operator); for GPUs they are the vendors'
published peaks times one efficiency factor per device (:data:`EFFICIENCY`), an **assumption
until measured**. Convolutions use the TF32 peak where the GPU has one (PyTorch lets cuDNN
convolutions use TF32 by default, ``torch.backends.cudnn.allow_tf32``) and fully connected layers
the FP32 peak (matrix products stay in FP32 by default); the tangent kernel's ``J J^T`` runs in
FP64.

:func:`implied_efficiency` turns a measured chapter time into the efficiency that would have
predicted it, which is how a GPU measurement replaces the assumed factor.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from .errors import ConfigError

__all__ = [
    "CHAPTERS",
    "DEVICES",
    "EFFICIENCY",
    "DISPATCH_SECONDS",
    "HOST_BUILD_SECONDS",
    "HOST_RANDOM_PER_SECOND",
    "HOST_METRIC_SECONDS_PER_PIXEL",
    "Device",
    "gpu_devices",
    "Work",
    "NetCount",
    "count_net",
    "net_count",
    "train_step",
    "forward_pass",
    "fit_work",
    "fit_memory",
    "jacobian_work",
    "records",
    "chapter_work",
    "probe_cpu",
    "estimate_seconds",
    "plan",
    "format_table",
    "implied_efficiency",
]

# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------

# Fraction of the datasheet peaks (arithmetic and memory bandwidth) that the book's small
# networks reach, per GPU: ASSUMED. The DIP's convolutions work on batches of one image of 64 to
# 512 pixels a side with 64 to 256 channels, too small to fill a data-centre GPU. The one
# measurement there is (one H200, benchmarks/results/gpu_check_h200_2026-12-01.md: ten runs of
# the paper profile) cannot pin these factors: its runs were bound by the host's dispatch, and
# they fit equally well for any factor from 0.2 up. Replace one by `implied_efficiency` of a
# chapter timed on that GPU (see the README's "Time plan").
EFFICIENCY = {"t4": 0.35, "a100": 0.2, "h100": 0.2}
# Host time per operator (one layer's forward or backward work, or one optimiser update). H100:
# FITTED to the H200 measurement above (its 16-core Xeon host; the model then reproduces its ten
# runs within about 25%, rms 20%). A100: ASSUMED the same (a server host). T4: ASSUMED 1.4 times
# slower, for Colab's two virtual CPUs.
DISPATCH_SECONDS = {"t4": 50e-6, "a100": 35e-6, "h100": 35e-6}
# Networks are built on the host CPU (their modules, then their initial weights drawn from a CPU
# generator) whatever the device: seconds per network and weights per second, ASSUMED for GPU
# hosts (the CPU probe measures its own; this machine's 2 cores build a 2.2 M-weight skip net in
# about 37 ms of CPU time, a 144 k-weight one in about 14 ms).
HOST_BUILD_SECONDS = 0.015
HOST_RANDOM_PER_SECOND = 1e8
# Spectral metrics of recorded outputs (band errors: two FFTs in NumPy on the host), seconds per
# output pixel: ASSUMED, as measured on this project's 2-core CPU (the CPU probe measures its own);
# in the H200's upsampling runs they explain about half of the time.
HOST_METRIC_SECONDS_PER_PIXEL = 3e-7


@dataclass(frozen=True)
class Device:
    """What the cost model needs of a device. Rates in operations or bytes per second."""

    name: str
    description: str
    fp32: float  # arithmetic rate of fully connected layers (FLOP/s), efficiency included
    conv: float  # arithmetic rate of convolutions (FLOP/s), efficiency included
    fp64: float  # arithmetic rate in float64 (FLOP/s), efficiency included
    bandwidth: float  # memory bandwidth (bytes/s), efficiency included
    dispatch: float  # seconds per operator
    random: float  # initial weights drawn per second on the host
    memory_gb: float  # memory of the device (GB), for the "fits" check; 0 = not checked
    measured: bool  # True: calibrated on this machine; False: datasheet x assumed efficiency
    overlap: bool = False  # the host dispatches while the device computes (a GPU), or in turn (a CPU)
    efficiency: float | None = None  # the factor applied to the datasheet peaks (GPUs)
    source: str = ""
    build: float = 0.0  # seconds to build one network's modules on the host, its weights aside
    metric: float = 0.0  # seconds per output pixel of a spectral metric computed on the host


def _gpu(name: str, description: str, *, fp32_tflops: float, tf32_tflops: float | None, fp64_tflops: float,
         bandwidth_gbs: float, memory_gb: float, source: str) -> Device:
    eff = EFFICIENCY[name]
    return Device(
        name=name, description=description, fp32=fp32_tflops * 1e12 * eff,
        conv=(tf32_tflops or fp32_tflops) * 1e12 * eff, fp64=fp64_tflops * 1e12 * eff,
        bandwidth=bandwidth_gbs * 1e9 * eff, dispatch=DISPATCH_SECONDS[name], random=HOST_RANDOM_PER_SECOND,
        memory_gb=memory_gb, measured=False, overlap=True, efficiency=eff, source=source,
        build=HOST_BUILD_SECONDS, metric=HOST_METRIC_SECONDS_PER_PIXEL,
    )


def gpu_devices() -> dict[str, Device]:
    """The GPUs of the plan, from their vendors' datasheets, times :data:`EFFICIENCY`."""
    return {
        # NVIDIA T4 datasheet: FP32 8.1 TFLOPS, 16 GB GDDR6, 320+ GB/s; no TF32. FP64 is 1/32 of
        # FP32 on Turing (compute capability 7.5), not on the datasheet.
        "t4": _gpu("t4", "NVIDIA T4 (Colab's free GPU)", fp32_tflops=8.1, tf32_tflops=None, fp64_tflops=8.1 / 32,
                   bandwidth_gbs=320, memory_gb=16, source="NVIDIA T4 datasheet"),
        # NVIDIA A100 datasheet (40 GB SXM, Colab's A100): FP32 19.5 TFLOPS, TF32 Tensor Core
        # 156 TFLOPS (312 with sparsity, not used here), FP64 9.7 TFLOPS, 1,555 GB/s.
        "a100": _gpu("a100", "NVIDIA A100 40 GB", fp32_tflops=19.5, tf32_tflops=156, fp64_tflops=9.7,
                     bandwidth_gbs=1555, memory_gb=40, source="NVIDIA A100 datasheet"),
        # NVIDIA H100 datasheet (SXM): FP32 67 TFLOPS, TF32 Tensor Core 989 TFLOPS with sparsity,
        # so 494.5 dense, FP64 34 TFLOPS, 80 GB HBM3 at 3.35 TB/s.
        "h100": _gpu("h100", "NVIDIA H100 SXM", fp32_tflops=67, tf32_tflops=494.5, fp64_tflops=34,
                     bandwidth_gbs=3350, memory_gb=80, source="NVIDIA H100 datasheet"),
    }


DEVICES = ("cpu", "t4", "a100", "h100")

# --------------------------------------------------------------------------------------------
# Counting a network on the meta device
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetCount:
    """One forward pass of one network, counted on the meta device."""

    conv_macs: int  # multiply-adds of Conv1d / Conv2d layers
    linear_macs: int  # multiply-adds of Linear layers
    activations: int  # output elements of every leaf module, summed
    calls: int  # leaf-module calls
    params: int  # trainable parameters
    param_tensors: int  # trainable parameter tensors (one optimiser update each)


# Leaf modules whose output has their input's shape (any other module runs as it is).
_SAME_SHAPE = (nn.modules.batchnorm._BatchNorm, nn.LeakyReLU, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity)


class _Resize(nn.Module):
    """The shape of ``nn.Upsample``'s output without computing it (for counting on the meta device)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.dim() - 2
        scale = self.scale if isinstance(self.scale, tuple) else (self.scale,) * n
        return x.new_empty(*x.shape[:2], *(int(s * f) for s, f in zip(x.shape[2:], scale, strict=True)))


def count_net(build: Callable[[], nn.Module], input_shape: tuple[int, ...],
              forward: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> NetCount:
    """Build a network on the ``meta`` device and count one forward pass of an input of ``input_shape``.

    Args:
        build: returns the network (called under ``torch.device("meta")``: no weights are drawn).
        input_shape: the input's shape, batch dimension included, e.g. ``(1, 3, 64, 64)``.
        forward: how to call it (default ``net(x)``).

    Returns:
        A :class:`NetCount`; FLOPs of the pass are ``2 * (conv_macs + linear_macs)``.
    """
    with torch.device("meta"):
        net = build()
    params = [p for p in net.parameters() if p.requires_grad]
    n_params, n_tensors = sum(p.numel() for p in params), len(params)
    # Layers without multiply-adds (batch norm, activations, upsampling) only shape their output,
    # and their meta kernels are slow (Python decompositions): stand-ins that make the same shape
    # take their places, each still a leaf module, so each still counts as a call.
    for mod in list(net.modules()):
        for child_name, child in list(mod.named_children()):
            if type(child) is nn.Upsample and child.size is None:
                setattr(mod, child_name, _Resize(child.scale_factor))
            elif isinstance(child, _SAME_SHAPE):
                setattr(mod, child_name, nn.Identity())
    counts = {"conv": 0, "linear": 0, "act": 0, "calls": 0}

    def hook(mod: nn.Module, inputs, out) -> None:
        counts["calls"] += 1
        if isinstance(out, torch.Tensor):
            counts["act"] += out.numel()
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            taps = math.prod(mod.kernel_size)
            counts["conv"] += out.numel() * (mod.in_channels // mod.groups) * taps
        elif isinstance(mod, nn.Linear):
            counts["linear"] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        x = torch.empty(input_shape, device="meta")
        with torch.no_grad():
            (forward or (lambda n, t: n(t)))(net, x)
    finally:
        for h in handles:
            h.remove()
    return NetCount(counts["conv"], counts["linear"], counts["act"], counts["calls"], n_params, n_tensors)


def _relunet_forward(net: nn.Module, x: torch.Tensor):
    return net.net(x)  # (N, 2) coordinates -> (N, C)


@functools.cache
def _count(kind: str, shape: tuple[int, ...], options: tuple[tuple[str, Any], ...]) -> NetCount:
    """:func:`count_net` of one of the book's builders (``kind``) with keyword ``options``, cached."""
    from . import models as M

    kw = dict(options)
    builders = {"skip": M.build_skip, "dip-linear": M.build_dip_linear, "relunet": M.build_relunet,
                "conv1d": M.build_conv1d, "fc1d": M.build_fc1d, "decoder": M.build_decoder}
    forward = _relunet_forward if kind == "relunet" else None
    return count_net(lambda: builders[kind](**kw), shape, forward)


def net_count(kind: str, input_shape: tuple[int, ...], **options) -> NetCount:
    """Count a network of the book: ``kind`` is skip, dip-linear, relunet, conv1d, fc1d or decoder
    (the ``dipnb.models.build_*`` builders, given ``options``), fed an input of ``input_shape``."""
    return _count(kind, tuple(input_shape), tuple(sorted(options.items())))


# --------------------------------------------------------------------------------------------
# Work
# --------------------------------------------------------------------------------------------

ACT_TOUCHES = 6  # memory touches of each layer output per training step (see the module docstring)
PARAM_TOUCHES = 10  # memory touches of each parameter per training step with Adam
BYTES = 4  # float32


@dataclass
class Work:
    """What a computation costs. Sums over steps and runs, except ``peak_bytes`` (the largest)."""

    runs: int = 0  # distinct computations (cache entries)
    fits: int = 0  # networks trained
    conv_flops: float = 0.0
    linear_flops: float = 0.0
    fp64_flops: float = 0.0
    bytes: float = 0.0  # memory traffic
    operators: float = 0.0  # dispatched operators
    random: float = 0.0  # initial weights drawn on the host
    builds: float = 0.0  # networks built on the host
    metric_pixels: float = 0.0  # output pixels passed to spectral metrics on the host (per metric)
    steps: float = 0.0  # optimisation steps (iterations; runs fitted side by side share one)
    syncs: float = 0.0  # steps at which the host waits for the device (records and snapshots)
    peak_bytes: float = 0.0  # memory held at once by the largest computation

    def __add__(self, other: Work) -> Work:
        out = Work(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Work)})
        out.peak_bytes = max(self.peak_bytes, other.peak_bytes)
        return out

    def scaled(self, k: float) -> Work:
        """``k`` times the work (same peak memory: the copies run one after another)."""
        out = Work(**{f.name: getattr(self, f.name) * k for f in fields(Work)})
        out.peak_bytes = self.peak_bytes
        return out

    @property
    def flops(self) -> float:
        return self.conv_flops + self.linear_flops + self.fp64_flops


def train_step(net: NetCount, *, optimizer: bool = True) -> Work:
    """One training step of one network: forward, backward, optimiser update."""
    return Work(
        conv_flops=3 * 2 * net.conv_macs, linear_flops=3 * 2 * net.linear_macs,
        bytes=BYTES * (ACT_TOUCHES * net.activations + PARAM_TOUCHES * net.params),
        operators=3 * net.calls + (net.param_tensors if optimizer else 0),
    )


def forward_pass(net: NetCount) -> Work:
    """One forward pass without gradients."""
    return Work(conv_flops=2 * net.conv_macs, linear_flops=2 * net.linear_macs,
                bytes=BYTES * (2 * net.activations + net.params), operators=net.calls)


def fit_memory(net: NetCount, runs: int = 1) -> float:
    """Bytes held while ``runs`` copies of ``net`` are fitted side by side with Adam."""
    return runs * BYTES * (4 * net.params + net.activations)


def records(iterations: int, record_every: int, snapshot_every: int = 0) -> int:
    """How many steps of a fit record (or snapshot) the output: each one waits for the device."""
    its = set(range(0, iterations, record_every)) | {iterations - 1}
    if snapshot_every:
        its |= set(range(0, iterations, snapshot_every))
    return len(its)


def fit_work(net: NetCount, iterations: int, runs: int = 1, syncs: int | None = None) -> Work:
    """``runs`` networks fitted side by side for ``iterations`` steps (weights drawn once each).

    ``syncs``: steps that record the output (default: every step).
    """
    w = train_step(net).scaled(iterations * runs)
    w.fits, w.builds, w.random, w.peak_bytes = runs, runs, runs * net.params, fit_memory(net, runs)
    w.steps, w.syncs = iterations, iterations if syncs is None else syncs
    return w


def jacobian_work(net: NetCount, n_outputs: int, chunk: int = 256) -> Work:
    """The tangent kernel ``J J^T`` of ``net``: one forward pass, then one backward pass per output
    (2 forward passes' worth of FLOPs: gradients of the inputs and of the weights), batched
    ``chunk`` outputs at a time, and a float64 Gram matrix (``2 N^2 P`` FLOPs)."""
    chunks = math.ceil(n_outputs / chunk)
    backward = Work(conv_flops=2 * 2.0 * net.conv_macs * n_outputs, linear_flops=2 * 2.0 * net.linear_macs * n_outputs,
                    bytes=BYTES * n_outputs * (4 * net.activations + 2 * net.params), operators=2 * net.calls * chunks)
    w = forward_pass(net) + backward
    w.fp64_flops = 2.0 * n_outputs**2 * net.params
    w.bytes += BYTES * 3 * n_outputs * net.params  # the Jacobian written, read in float64 blocks
    w.peak_bytes = BYTES * (n_outputs * net.params + min(chunk, n_outputs) * net.activations + net.params)
    return w


# --------------------------------------------------------------------------------------------
# Leaf computations: what one experiment config costs by itself (its sub-runs excluded)
# --------------------------------------------------------------------------------------------


def _image_shape(image: str, downsample: int, multiple: int = 1, gray: bool = False) -> tuple[int, int, int]:
    """``(C, H, W)`` of a registry image after downsampling and cropping, from the registry alone."""
    from . import data as D

    info = D.image_info(image)
    c = 1 if gray or info.mode == "L" else 3
    h, w = info.height // downsample, info.width // downsample
    return c, h - h % multiple, w - w % multiple


def _skip_net(c_in: int, c_out: int, h: int, w: int, **kw) -> NetCount:
    return net_count("skip", (1, c_in, h, w), in_channels=c_in, out_channels=c_out, **kw)


def _leaf_denoising(cfg) -> Work:
    from .experiments.denoising import DEFAULT_DEPTH, DEFAULT_WIDTH

    width = cfg.width or DEFAULT_WIDTH[cfg.model]
    depth = cfg.depth or DEFAULT_DEPTH[cfg.model]
    mult = 2**depth if cfg.model == "dip" else 2 ** DEFAULT_DEPTH["dip"]
    c, h, w = _image_shape(cfg.image, cfg.downsample, mult)
    n_rec = records(cfg.iterations, cfg.record_every, cfg.snapshot_every)
    if cfg.model == "dip":
        return fit_work(_skip_net(c, c, h, w, width=width, depth=depth), cfg.iterations, syncs=n_rec)
    if cfg.model == "linear":
        net = net_count("dip-linear", (1, c, h, w), shape=(c, h, w), width=width, depth=depth)
        return fit_work(net, cfg.iterations, syncs=n_rec)
    # ReLUNet: a minibatch of pixels per step, the whole image at every record and snapshot
    batch = net_count("relunet", (cfg.batch_pixels, 2), out_channels=c, width=width, depth=depth)
    whole = net_count("relunet", (h * w, 2), out_channels=c, width=width, depth=depth)
    out = fit_work(batch, cfg.iterations, syncs=n_rec) + forward_pass(whole).scaled(n_rec)
    out.peak_bytes = fit_memory(batch) + BYTES * whole.activations
    return out


def _leaf_trajectories(cfg) -> Work:
    from .experiments.trajectories import SYNTHETIC_SIZE, _synthetic_area

    if _synthetic_area(cfg.image) is not None:
        c, h, w = 1, SYNTHETIC_SIZE // cfg.downsample, SYNTHETIC_SIZE // cfg.downsample
    else:
        c, h, w = _image_shape(cfg.image, cfg.downsample)
    if cfg.crop:
        h = w = cfg.crop[2]
    m = 2**cfg.depth
    h, w = h - h % m, w - w % m
    net = _skip_net(c, c, h, w, width=cfg.width, depth=cfg.depth, upsample_mode=cfg.upsample)
    out = fit_work(net, cfg.iterations, runs=2, syncs=records(cfg.iterations, cfg.record_every, cfg.snapshot_every))
    out.metric_pixels = 2 * records(cfg.iterations, cfg.record_every) * c * h * w  # band errors of both runs
    return out


def _leaf_lowfreq(cfg) -> Work:
    c, h, w = _image_shape(cfg.image, cfg.downsample, 2**cfg.depth)
    return fit_work(_skip_net(c, c, h, w, width=cfg.width, depth=cfg.depth), cfg.iterations,
                    syncs=records(cfg.iterations, cfg.record_every, cfg.snapshot_every))


def _leaf_stopping(cfg) -> Work:
    from .experiments.stopping import downsample_factor

    c, h, w = _image_shape(cfg.image, downsample_factor(cfg), 2**cfg.depth)
    return fit_work(_skip_net(c, c, h, w, width=cfg.width, depth=cfg.depth), cfg.iterations, runs=2,
                    syncs=records(cfg.iterations, cfg.record_every))


def _net_1d(model: str, *, length: int, width: int, depth: int, scales: int, **conv) -> NetCount:
    from .models import resolve_scales

    if model == "conv":
        s = resolve_scales(depth, length, scales)
        return net_count("conv1d", (1, 1, length), width=width, depth=depth, scales=s, **conv)
    return net_count("fc1d", (1, 1, length), length=length, width=width, depth=depth)


def _leaf_decoupling(cfg) -> Work:
    net = _net_1d(cfg.model, length=cfg.length, width=cfg.width, depth=cfg.depth, scales=cfg.scales,
                  batch_norm=cfg.batch_norm)
    return fit_work(net, cfg.iterations)


def _leaf_upsampling(cfg) -> Work:
    c, h, w = _image_shape(cfg.image, cfg.downsample, gray=cfg.gray)
    extra = {"kernel_stride": cfg.kernel_stride} if getattr(cfg, "kernel_stride", 0) else {}
    net = net_count("decoder", (1, 32, h // cfg.stride, w // cfg.stride), out_channels=c, width=cfg.width,
                    stride=cfg.stride, upsample_mode=cfg.mode, **extra)
    out = fit_work(net, cfg.iterations, syncs=records(cfg.iterations, cfg.record_every, cfg.snapshot_every))
    # band errors (2 FFTs) and high-frequency energy (1 FFT) at every record
    out.metric_pixels = 1.5 * records(cfg.iterations, cfg.record_every) * c * h * w
    return out


def _leaf_gp_samples(cfg) -> Work:
    net = _skip_net(cfg.in_channels, 3, cfg.size, cfg.size, width=cfg.width, depth=cfg.depth,
                    upsample_mode=cfg.upsample_mode, skip_channels=cfg.skip_channels)
    w = forward_pass(net).scaled(cfg.samples)
    w.builds, w.random = cfg.samples, cfg.samples * net.params
    w.steps, w.syncs = cfg.samples, math.ceil(cfg.samples / 16)  # outputs copied to the host by chunks
    w.peak_bytes = BYTES * (net.params + net.activations)  # one network at a time, no gradients: a bound
    return w


def _leaf_gp_kernel(cfg) -> Work:
    dec = cfg.decoder()
    lengths = [dec.input_length * (2**i if dec.upsample_mode != "none" else 1) for i in range(dec.stages + 1)]
    k = dec.kernel_size
    macs = dec.width * dec.in_channels * k * lengths[0]
    macs += sum(dec.width * dec.width * k * n for n in lengths[1:])
    macs += dec.width * lengths[-1]  # the 1x1 output convolution
    params = dec.width * dec.in_channels * k + dec.stages * dec.width * dec.width * k + dec.width
    params += dec.width * (dec.stages + 1) + 1  # biases
    acts = dec.width * sum(lengths) + lengths[-1]
    chunk = min(250, cfg.samples)
    return Work(linear_flops=2.0 * macs * cfg.samples, bytes=BYTES * cfg.samples * (3 * acts + params),
                operators=3 * (dec.stages + 2) * math.ceil(cfg.samples / 250), random=cfg.samples * params,
                builds=math.ceil(cfg.samples / 250),  # 250 decoders a module
                peak_bytes=BYTES * chunk * (params + 3 * acts))


def _leaf_kernel_spectrum(cfg) -> Work:
    net = _net_1d(cfg.model, length=cfg.length, width=cfg.width, depth=cfg.depth, scales=cfg.scales,
                  **({"upsample_mode": cfg.upsample_mode} if cfg.model == "conv" else {}))
    w = jacobian_work(net, cfg.length)
    w.builds, w.random = 1, net.params
    return w


def _leaf_kernel_view(cfg) -> Work:
    """The kernel view's own fits: gradient descent with three kernel probes, and Adam."""
    net = _net_1d(cfg.model, length=cfg.length, width=cfg.width, depth=cfg.depth, scales=cfg.scales,
                  **({"upsample_mode": cfg.upsample_mode} if cfg.model == "conv" else {}))
    w = fit_work(net, cfg.adam_iterations)
    if cfg.optimizer == "gd":
        T = cfg.gd_iterations
        probes = len({max(1, T // 100), max(1, T // 10), T})
        w = w + fit_work(net, T) + jacobian_work(net, cfg.length).scaled(probes)
    return w


LEAVES: dict[str, Callable[[Any], Work]] = {
    "denoising": _leaf_denoising,
    "trajectories": _leaf_trajectories,
    "lowfreq-noise": _leaf_lowfreq,
    "stopping": _leaf_stopping,
    "decoupling-1d": _leaf_decoupling,
    "upsampling": _leaf_upsampling,
    "gp-prior-samples": _leaf_gp_samples,
    "gp-prior-kernel": _leaf_gp_kernel,
    "kernel-spectrum": _leaf_kernel_spectrum,
    "kernel-view": _leaf_kernel_view,
}

# --------------------------------------------------------------------------------------------
# Sub-runs: the `ctx.run` calls of the experiments that compose others
# --------------------------------------------------------------------------------------------

Call = tuple[str, dict]


def _subruns(name: str, cfg) -> tuple[list[Call], bool]:
    """The sub-runs an experiment asks the cache for (its config's ``subruns()``, the list its
    compute function hands the engine), and whether it computes anything itself."""
    calls = [(n, dict(o)) for n, o in cfg.subruns()] if hasattr(cfg, "subruns") else []
    return calls, not calls or name == "kernel-view"  # kernel-view fits beside its one sub-run


# --------------------------------------------------------------------------------------------
# Chapters: the dipnb.run calls of each page
# --------------------------------------------------------------------------------------------

# Values that a chapter page picks by profile in its own code (kept in step with the pages).
_WIDE = {"quick": 1024, "paper": 4096, "colab": 4096}  # decoupling-1d: the wide fully connected net
_BARBARA = {"quick": {"crop": (128, 320, 128)}, "paper": {}, "colab": {"crop": (128, 320, 128)}}  # trajectories
_SPECTRUM_WIDTHS = {"quick": (32, 64, 128), "paper": (64, 128, 256), "colab": (64, 128, 256)}  # kernel-view


def _cfg(name: str, profile: str, **overrides):
    from .experiments import make_config

    return make_config(name, profile, **overrides)[0]


def _quickstart(p: str) -> list[Call]:
    return [("denoising", {"iterations": 400, "snapshot_every": 20})]


def _gp_prior(p: str) -> list[Call]:
    cfg = _cfg("gp-prior", p)
    calls: list[Call] = [("gp-prior", {})]
    calls.append(("gp-prior-samples", dict(size=cfg.size, depth=cfg.depth, width=128,
                                            upsample_mode=cfg.upsample_mode, samples=16)))
    calls.append(("gp-prior-kernel", dict(upsample_mode="none", width=64, samples=500)))
    calls += [("gp-prior-samples", dict(depth=d, upsample_mode=m, skip_channels=0, size=cfg.size,
                                        width=cfg.width, samples=8))
              for m in ("nearest", "bilinear") for d in (2, 3, 4, 5)]
    return calls


def _trajectories(p: str) -> list[Call]:
    return [("trajectories", {}), ("trajectories", {"image": "barbara", **_BARBARA[p]}), ("trajectories-area", {})]


def _lowfreq(p: str) -> list[Call]:
    calls: list[Call] = [("lowfreq-noise", {"image": i, "noise": n}) for i in ("barbara", "baboon")
                         for n in ("lowfreq", "white")]
    calls += [("lowfreq-noise", dict(image="baboon", max_cycles=float(k), width=32, iterations=150, downsample=8))
              for k in (2, 4, 8, 16, 32)]
    # the page's own image: kodim02 at 64x96 written to a file (the same size here)
    calls += [("lowfreq-noise", dict(image="kodim02", noise=n, downsample=8, width=32, iterations=150))
              for n in ("lowfreq", "white")]
    return calls


def _decoupling(p: str) -> list[Call]:
    calls: list[Call] = [("decoupling-1d", {"model": "conv"}), ("decoupling-1d", {"model": "linear"}),
                         ("decoupling-1d", {"model": "linear", "width": _WIDE[p]}),
                         ("decoupling-1d", {"model": "linear", "depth": 24})]
    calls += [("decoupling-1d", {"model": m, "seed": s}) for m in ("conv", "linear") for s in (0, 1, 2)]
    calls.append(("decoupling-1d", {"model": "conv", "scales": 0}))
    calls += [("capacity", {"model": m, "vary": "depth", "runs": 1}) for m in ("conv", "linear")]
    calls += [("decoupling-1d", {"model": "conv", "width": 64, "batch_norm": bn}) for bn in (True, False)]
    calls += [("decoupling-1d", {"model": "conv", "width": 64, "k2": k}) for k in (10, 25, 50, 100)]
    return calls


def _denoising(p: str) -> list[Call]:
    calls: list[Call] = [("denoising-table", {})]
    # the page's own photo: kodim03 at 64x96 written to a file (the same size here)
    calls.append(("denoising", dict(image="kodim03", model="dip", width=64, downsample=8, iterations=200,
                                    record_every=2)))
    calls += [("denoising", dict(image="house", model="linear", width=2048, downsample=8, lr=lr, iterations=40,
                                 record_every=1)) for lr in (1e-3, 1e-4)]
    return calls


def _upsampling(p: str) -> list[Call]:
    from .experiments import names

    calls = [("upsampling", {})] + [("upsampling", {"mode": m, "stride": s})
                                    for m in ("bilinear", "nearest") for s in (2, 4, 8, 16, 32)]
    if "upsampling-control" in names():  # the kernel-only control, where the package has it
        calls.append(("upsampling-control", {}))
    return calls


def _capacity(p: str) -> list[Call]:
    calls: list[Call] = [("capacity", {"model": m, "vary": v})
                         for m, v in (("conv", "depth"), ("conv", "width"), ("linear", "depth"), ("linear", "width"))]
    calls += [("decoupling-1d", dict(model="conv", width=w, lr=lr, iterations=200))
              for w in (128, 256) for lr in (1e-3, 3e-4)]
    return calls


def _kernel_view(p: str) -> list[Call]:
    calls: list[Call] = [("kernel-view", {}), ("kernel-view", {"model": "linear"})]
    calls += [("kernel-spectrum", {"width": w}) for w in _SPECTRUM_WIDTHS[p]]
    calls += [("kernel-spectrum", {"upsample_mode": m, "scales": s})
              for m, s in (("nearest", 0), ("nearest", 1), ("nearest", 3), ("nearest", -1),
                           ("bilinear", 1), ("bilinear", 3), ("bilinear", -1))]
    calls.append(("kernel-view", {"upsample_mode": "bilinear"}))
    return calls


def _stopping(p: str) -> list[Call]:
    cfg = _cfg("stopping-benchmark", p)
    return [("stopping", {"image": "house", "seed": 0}), ("stopping-benchmark", {}),
            ("stopping-benchmark", {"tune_images": cfg.score_images, "score_images": cfg.tune_images})]


# chapter -> its page's runs, in the order of the README's chapter table
CHAPTERS: dict[str, Callable[[str], list[Call]]] = {
    "quickstart": _quickstart,
    "gp-prior": _gp_prior,
    "trajectories": _trajectories,
    "lowfreq-noise": _lowfreq,
    "decoupling-1d": _decoupling,
    "denoising": _denoising,
    "upsampling": _upsampling,
    "capacity": _capacity,
    "kernel-view": _kernel_view,
    "stopping": _stopping,
}


def _key(name: str, cfg) -> str:
    return name + json.dumps(asdict(cfg), sort_keys=True, default=str)


def chapter_work(chapter: str, profile: str) -> tuple[Work, list[dict]]:
    """Everything a chapter computes from a cold cache in ``profile``, each distinct config once.

    Returns:
        ``(total, computations)``: the summed :class:`Work` and one dict per distinct
        computation (``experiment``, ``config``, ``work``).
    """
    if chapter not in CHAPTERS:
        raise ConfigError(f"unknown chapter {chapter!r}: allowed are {', '.join(CHAPTERS)}")
    seen: dict[str, dict] = {}
    total = Work()

    def visit(name: str, overrides: dict) -> None:
        nonlocal total
        cfg = _cfg(name, profile, **overrides)
        key = _key(name, cfg)
        if key in seen:
            return
        seen[key] = {}
        subs, own = _subruns(name, cfg)
        for sub_name, sub_overrides in subs:
            visit(sub_name, sub_overrides)
        w = LEAVES[name](cfg) if own else Work()
        w.runs = 1
        seen[key] = {"experiment": name, "config": asdict(cfg), "work": w}
        total = total + w

    for name, overrides in CHAPTERS[chapter](profile):
        visit(name, overrides)
    return total, list(seen.values())


# --------------------------------------------------------------------------------------------
# The CPU probe and the estimate
# --------------------------------------------------------------------------------------------


def _probe_fit(width: int, size: int, steps: int) -> tuple[float, Work]:
    """Seconds per step of a DIP fit (median of ``steps`` after 3 warm-up steps) and its counted work.

    The fit is the engine's own (:func:`dipnb.fit.fit`, recording every 10 steps), so the rate it
    gives is the engine's, as ``benchmarks/step.py`` measures it."""
    import statistics

    from . import data as D
    from . import models as M
    from .fit import FitConfig, fit

    target = D.lowfreq_noise((3, size, size), max_cycles=4, std=0.2, seed=0) + 0.5
    z = D.noise_like((1, 3, size, size), seed=1)
    stamps: list[float] = []
    fit(M.build_skip(seed=0, width=width), z, target, FitConfig(iterations=steps + 4, record_every=10),
        progress=False, device="cpu", callbacks=[lambda it: stamps.append(time.perf_counter())])
    dt = [b - a for a, b in zip(stamps[3:-1], stamps[4:], strict=True)]
    return statistics.median(dt), train_step(_skip_net(3, 3, size, size, width=width))


def probe_cpu() -> Device:
    """Measure this machine's CPU for the cost model: a few seconds.

    - memory bandwidth: a copy of 64 MB, best of 5 (bytes read + written per second);
    - building networks: a 4-channel and a 128-channel DIP skip net, best of 3 each, solved for the
      seconds per network and the weights drawn per second;
    - spectral metrics: the band errors of a 256x256 output (:func:`dipnb.spectral.band_errors`,
      32 bands), best of 3, per pixel;
    - arithmetic rate and seconds per operator: the median step of two DIP fits, a 128-channel
      net on 64x64 (mostly arithmetic) and a 4-channel one (mostly dispatch), solved for
      the two unknowns with the bandwidth term taken from the copy.

    Returns:
        A measured :class:`Device` (convolutions and fully connected layers at the same rate;
        float64 at half of it).
    """
    n = 16 * 2**20  # 64 MB of float32
    a, b = torch.rand(n), torch.empty(n)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t0)
    bandwidth = 2 * BYTES * n / best
    del a, b
    from . import models as M

    built = {}
    for width in (4, 128):
        best = math.inf
        for seed in range(3):
            t0 = time.perf_counter()
            net = M.build_skip(seed=seed, width=width)
            best = min(best, time.perf_counter() - t0)
        built[width] = (best, sum(p.numel() for p in net.parameters()))
    (t4, p4), (t128, p128) = built[4], built[128]
    random = (p128 - p4) / max(t128 - t4, 1e-9)
    build = max(t4 - p4 / random, 0.0)
    from . import spectral

    out, ref = torch.rand(1, 256, 256), torch.rand(1, 256, 256)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        spectral.band_errors(out, ref, 32)
        best = min(best, time.perf_counter() - t0)
    metric = best / out.numel()
    t_big, w_big = _probe_fit(128, 64, 6)
    t_small, w_small = _probe_fit(4, 64, 12)
    # t = flops / rate + bytes / bandwidth + operators * dispatch, for both probes
    y_big, y_small = t_big - w_big.bytes / bandwidth, t_small - w_small.bytes / bandwidth
    det = w_big.flops * w_small.operators - w_small.flops * w_big.operators
    inv_rate = (y_big * w_small.operators - y_small * w_big.operators) / det
    dispatch = (w_big.flops * y_small - w_small.flops * y_big) / det
    if inv_rate <= 0 or dispatch <= 0:  # a disturbed probe: fall back to one term each
        dispatch = max(y_small, 1e-9) / w_small.operators
        inv_rate = max(y_big - w_big.operators * dispatch, 1e-3 * y_big) / w_big.flops
    rate = 1.0 / inv_rate
    from .runtime import cpu_name

    name = cpu_name()
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    busy = (f"; BUSY: the load average {load:.1f} exceeds the {cpus} CPUs, so other processes slow the probe "
            "and these minutes are longer than on an idle machine") if load > cpus else ""
    return Device(
        name="cpu", description=f"{name}, {torch.get_num_threads()} threads (measured)", fp32=rate, conv=rate,
        fp64=rate / 2, bandwidth=bandwidth, dispatch=dispatch, random=random, memory_gb=0.0, measured=True,
        build=build, metric=metric,
        source=f"probe: {t_big * 1e3:.1f} ms/step (128 ch, 64x64), {t_small * 1e3:.2f} ms/step (4 ch, 64x64); "
               f"load average {load:.2f}{busy}",
    )


def estimate_seconds(work: Work, device: Device) -> dict[str, float]:
    """Seconds of one computation: each term of the cost model (see the module docstring) and ``total``.

    On a CPU the terms add up. On a GPU the host dispatches operators while the device works,
    so the computation takes the longer of the two, plus the shorter one on the steps that wait for
    the device (records and snapshots), plus the host building the networks.
    ``scalable`` is the part of ``total`` that scales as ``1 / efficiency`` (device-bound work).
    """
    terms = {
        "arithmetic": work.conv_flops / device.conv + work.linear_flops / device.fp32 + work.fp64_flops / device.fp64,
        "memory": work.bytes / device.bandwidth,
        "dispatch": work.operators * device.dispatch,
        "host": work.builds * device.build + work.random / device.random + work.metric_pixels * device.metric,
    }
    busy = terms["arithmetic"] + terms["memory"]
    if device.overlap:
        # a step that records the output waits for the device: there the two add up
        waits = min(1.0, work.syncs / work.steps) if work.steps else 1.0
        slow, fast = max(busy, terms["dispatch"]), min(busy, terms["dispatch"])
        terms["scalable"] = busy if busy >= terms["dispatch"] else waits * busy
        terms["total"] = slow + waits * fast + terms["host"]
    else:
        terms["scalable"] = busy
        terms["total"] = busy + terms["dispatch"] + terms["host"]
    return terms


def implied_efficiency(estimate: Mapping[str, Any], measured_minutes: float) -> float:
    """The GPU efficiency factor that would have predicted ``measured_minutes`` for one chapter.

    Args:
        estimate: one chapter's entry of ``plan(...)`` (or of ``plan --json``) on a GPU device:
            it holds the efficiency used and the seconds of each term.
        measured_minutes: the chapter's wall time on that GPU, from a cold cache.

    Returns:
        The factor for :data:`EFFICIENCY`: the device-bound seconds (``seconds["scalable"]``)
        scale as ``1 / efficiency``; the rest (dispatch-bound runs, building networks) does not.
        An approximation: it assumes no run changes from device-bound to dispatch-bound.

    Raises:
        ConfigError: if the measured time is not above the part that does not scale.
    """
    s = estimate["seconds"]
    scalable = s["scalable"]
    fixed = estimate["minutes"] * 60 - scalable
    left = measured_minutes * 60 - fixed
    if left <= 0 or scalable <= 0:
        raise ConfigError(
            f"measured {measured_minutes} min is not above the estimate's dispatch and host time "
            f"({fixed / 60:.2f} min): the efficiency cannot be inferred from it"
        )
    return float(estimate["efficiency"]) * scalable / left


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


def _check(profile: str | None, device: str, chapters: Iterable[str] | None) -> tuple[str, list[str]]:
    from .experiments.engine import PROFILES, resolve_profile

    if profile not in (*PROFILES, "auto", None):
        raise ConfigError(f"unknown profile {profile!r}: allowed are {', '.join(PROFILES)}, auto")
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: allowed are {', '.join(DEVICES)}")
    chapters = list(chapters or CHAPTERS)
    for c in chapters:
        if c not in CHAPTERS:
            raise ConfigError(f"unknown chapter {c!r}: allowed are {', '.join(CHAPTERS)}")
    return resolve_profile(profile)[0], chapters


def plan(profile: str | None = None, device: str = "cpu", chapters: Iterable[str] | None = None,
         calibration: Device | None = None) -> dict:
    """The time plan of ``chapters`` (default: all) in ``profile`` on ``device``.

    Args:
        profile: quick, paper, colab, or auto / None (:func:`dipnb.experiments.resolve_profile`).
        device: cpu (measured by :func:`probe_cpu` unless ``calibration`` is given), t4, a100 or h100.
        calibration: the :class:`Device` to use instead (e.g. a probe made earlier).

    Returns:
        A JSON-ready dict: ``profile``, ``device`` (the rates used and where they come from),
        ``estimate`` (True unless the device was measured), and ``chapters``, one entry per chapter
        with ``runs``, ``fits``, ``gflop``, ``peak_memory_gb``, ``minutes``, ``seconds`` (each
        term of the cost model), ``efficiency`` and ``measured_minutes`` (None: to be filled in
        by whoever times the chapter, for :func:`implied_efficiency`).

    Raises:
        ConfigError: an unknown profile, device or chapter (before anything is counted).
    """
    profile, chapters = _check(profile, device, chapters)
    dev = calibration or (probe_cpu() if device == "cpu" else gpu_devices()[device])
    rows = []
    for ch in chapters:
        work, computations = chapter_work(ch, profile)
        secs: dict[str, float] = {}
        for c in computations:  # per computation: on a GPU each one is device- or host-bound
            for k, v in estimate_seconds(c["work"], dev).items():
                secs[k] = secs.get(k, 0.0) + v
        peak_gb = work.peak_bytes / 1e9
        rows.append({
            "chapter": ch,
            "runs": work.runs,
            "fits": work.fits,
            "gflop": work.flops / 1e9,
            "peak_memory_gb": peak_gb,
            "fits_in_memory": None if not dev.memory_gb else peak_gb < dev.memory_gb,
            "minutes": secs["total"] / 60,
            "seconds": {k: v for k, v in secs.items() if k != "total"},
            "efficiency": dev.efficiency,
            "measured_minutes": None,
        })
    d = asdict(dev)
    return {
        "profile": profile,
        "device": d,
        "estimate": not dev.measured,
        "chapters": rows,
        "total_minutes": sum(r["minutes"] for r in rows),
    }


def format_table(result: Mapping[str, Any]) -> str:
    """The plan as a text table, one line per chapter, and a line saying what the numbers are."""
    dev = result["device"]
    lines = [f"{'chapter':<15}{'runs':>6}{'fits':>6}{'GFLOP':>12}{'peak GB':>9}{'minutes':>9}"]
    for r in result["chapters"]:
        flag = "" if r["fits_in_memory"] in (None, True) else "  (does not fit in memory)"
        lines.append(f"{r['chapter']:<15}{r['runs']:>6}{r['fits']:>6}{r['gflop']:>12,.0f}{r['peak_memory_gb']:>9.2f}"
                     f"{r['minutes']:>9.1f}{flag}")
    lines.append(f"{'total':<15}{'':>6}{'':>6}{sum(r['gflop'] for r in result['chapters']):>12,.0f}{'':>9}"
                 f"{result['total_minutes']:>9.1f}")
    if result["estimate"]:
        how = (f"ESTIMATE, not measured: {dev['description']} at {dev['efficiency']:.0%} of its datasheet peaks "
               f"({dev['source']}), {dev['dispatch'] * 1e6:.0f} us per operator")
    else:
        how = (f"calibrated on {dev['description']}: {dev['conv'] / 1e9:.0f} GFLOP/s, "
               f"{dev['bandwidth'] / 1e9:.1f} GB/s, {dev['dispatch'] * 1e6:.1f} us per operator; {dev['source']}")
    lines.append(f"profile {result['profile']}, cold cache; {how}")
    return "\n".join(lines)
