"""Where and how computation runs: device choice and CPU tuning."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

__all__ = ["pick_device", "tune_cpu_allocator", "describe_device", "cpu_name"]

_ALLOCATOR_TUNED = False


def pick_device(preference: str | None = None) -> torch.device:
    """Choose the device to compute on.

    Args:
        preference: ``"auto"`` (default; also read from ``DIPNB_DEVICE``), ``"cuda"``, ``"mps"``
            or ``"cpu"``.

    Returns:
        ``cuda`` when a CUDA GPU is present, else ``mps`` on Apple silicon, else ``cpu``
        (for ``"auto"``); otherwise the device asked for.
    """
    from .errors import ConfigError

    pref = (preference or os.environ.get("DIPNB_DEVICE") or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref not in ("cuda", "mps", "cpu"):
        raise ConfigError(f"unknown device {preference!r}: allowed are auto, cuda, mps, cpu")
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available: use auto or cpu")
    return torch.device(pref)


def describe_device(device: torch.device) -> str:
    """A one-line human description of ``device`` (name and thread count)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def cpu_name() -> str:
    """The CPU's model name, as benchmarks and the time plan print it beside their figures.

    Returns:
        The ``model name`` line of ``/proc/cpuinfo`` (Linux), else ``platform.processor()``,
        else the architecture (``x86_64``, ``arm64``).
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def tune_cpu_allocator() -> bool:
    """Stop glibc from handing freed tensor memory back to the OS after every step.

    Each training step frees and reallocates the same large activation buffers. With glibc's
    defaults, blocks above the mmap threshold are unmapped on free and faulted in again on the
    next step (tens of thousands of page faults a step); raising the thresholds once keeps them
    mapped. Has no effect outside glibc. Safe to call more than once.

    Returns:
        True if the thresholds were set (now or earlier), False where not supported.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("DIPNB_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    # glibc caps the mmap threshold at 32 MiB on 64-bit systems; the trim threshold has no cap.
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1
    ok &= mallopt(m_trim_threshold, 1 << 30) == 1
    ok &= mallopt(m_top_pad, 64 << 20) == 1
    _ALLOCATOR_TUNED = bool(ok)
    return _ALLOCATOR_TUNED
