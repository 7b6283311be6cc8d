"""Signals to fit: test images by name, noise models, and synthetic 1D and 2D signals.

Images are arrays of shape ``(C, H, W)``, float32, intensities in [0, 1]. Test images are
downloaded from the URLs listed in ``images.csv`` (shipped with the package) and checked
against their sha256 before use. Set ``DIPNB_IMAGES`` to a folder that already holds the
files (``baboon.png`` ...) to read them from there instead; they are checked all the same.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError

__all__ = [
    "ImageInfo",
    "image_names",
    "image_info",
    "load_image",
    "downsample",
    "crop_to_multiple",
    "add_gaussian_noise",
    "lowfreq_noise",
    "two_sines",
    "synthetic_triangle",
    "noise_like",
    "input_noise",
    "INPUT_SEED_OFFSET",
    "IMAGE_SUFFIXES",
    "is_image_path",
    "check_image",
    "coordinate_grid",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# The fixed input z of a run with seed s is drawn from seed s + INPUT_SEED_OFFSET, so it never
# shares a stream with the weights (seeded from s, s + 1, ...) or the noise added to an image.
INPUT_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class ImageInfo:
    """One test image of the registry."""

    name: str  # e.g. "baboon"
    width: int  # pixels
    height: int  # pixels
    mode: str  # "RGB" or "L" (grayscale)
    sha256: str
    url: str


def _registry() -> dict[str, ImageInfo]:
    text = resources.files("dipnb").joinpath("images.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {
        r["name"]: ImageInfo(
            r["name"], int(r["width"]), int(r["height"]), r["mode"], r["sha256"], r["url"]
        )
        for r in rows
    }


_IMAGES = _registry()


def image_names() -> list[str]:
    """The names of the test images, as accepted by :func:`load_image`."""
    return sorted(_IMAGES)


def image_info(name: str) -> ImageInfo:
    """Registry entry of a test image; :class:`DataError` naming the allowed names if unknown."""
    key = name.removesuffix(".png")
    if key not in _IMAGES:
        raise DataError(f"unknown image {name!r}: allowed are {', '.join(image_names())}, or a path to an image file")
    return _IMAGES[key]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_dir() -> Path:
    import pooch

    return Path(os.environ.get("DIPNB_DATA_CACHE") or pooch.os_cache("dipnb") / "images")


def is_image_path(image: str | os.PathLike) -> bool:
    """Whether ``image`` means a file rather than a test image's name: a path object, or a string
    with a directory separator or an image suffix (``.png``, ``.jpg`` ...; see ``IMAGE_SUFFIXES``).
    The one rule of the package; test image names have neither."""
    if isinstance(image, os.PathLike):
        return True
    seps = [os.path.sep] + ([os.path.altsep] if os.path.altsep else [])
    return any(sep in image for sep in seps) or image.lower().endswith(IMAGE_SUFFIXES)


def check_image(image: str, *, also: str = "") -> None:
    """Raise :class:`ConfigError` unless ``image`` is a test image's name or an existing image file.

    ``also`` names what else the caller accepts, for the message (e.g. ``"synthetic-A"``); the
    caller checks those itself before calling this.
    """
    if image in image_names():
        return
    if is_image_path(image):
        if not os.path.isfile(image):
            raise ConfigError(f"image file {image!r} does not exist")
        return
    extra = f", {also}" if also else ""
    raise ConfigError(f"unknown image {image!r}: allowed are {', '.join(image_names())}{extra}, "
                      "or a path to an image file")


def image_path(name: str) -> Path:
    """Local path of a verified copy of test image ``name``.

    Reads from ``DIPNB_IMAGES`` when that is set (no download), else downloads into the
    cache (``DIPNB_DATA_CACHE``, default the user's cache folder) with pooch. Either way the
    file's sha256 must match the registry.

    Raises:
        DataError: unknown name, missing local file, or checksum mismatch.
    """
    info = image_info(name)
    local = os.environ.get("DIPNB_IMAGES")
    fname = f"{info.name}.png"
    if local:
        path = Path(local) / fname
        if not path.is_file():
            raise DataError(
                f"image {fname} is missing from DIPNB_IMAGES={local}: put the file there "
                "or unset DIPNB_IMAGES to download it"
            )
        digest = _sha256(path)
        if digest != info.sha256:
            raise DataError(
                f"image {path} is corrupt: sha256 {digest[:12]}... does not match the "
                f"registry's {info.sha256[:12]}..."
            )
        return path
    import pooch

    try:
        return Path(
            pooch.retrieve(
                info.url, known_hash=f"sha256:{info.sha256}", fname=fname,
                path=_cache_dir(), progressbar=False,
            )
        )
    except ValueError as e:  # pooch raises ValueError on a hash mismatch
        raise DataError(f"download of {fname} failed its sha256 check: {e}") from e
    except Exception as e:  # network errors of every kind
        raise DataError(
            f"could not download {fname} from {info.url} ({type(e).__name__}: {e}); "
            "set DIPNB_IMAGES to a folder holding the test images"
        ) from e


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def crop_to_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    """Centre-crop ``(C, H, W)`` so that H and W are multiples of ``multiple``."""
    if multiple <= 0:
        raise ConfigError(f"multiple must be a positive integer, got {multiple}")
    _, h, w = img.shape
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise ConfigError(f"image of size {h}x{w} is smaller than {multiple} pixels")
    top, left = (h - nh) // 2, (w - nw) // 2
    return img[:, top : top + nh, left : left + nw]


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Shrink ``(C, H, W)`` by an integer factor, averaging each ``factor x factor`` block.

    The image is first centre-cropped to a multiple of ``factor``. Block averaging is an
    anti-aliasing filter, so content above the new Nyquist frequency is attenuated, not folded.

    Returns:
        ``(C, H // factor, W // factor)`` float32 in [0, 1].
    """
    if not isinstance(factor, (int, np.integer)) or factor <= 0:
        raise ConfigError(f"downsample factor must be a positive integer, got {factor!r}")
    if factor == 1:
        return img
    img = crop_to_multiple(img, factor)
    c, h, w = img.shape
    out = img.reshape(c, h // factor, factor, w // factor, factor).mean(axis=(2, 4))
    return out.astype(np.float32)


def load_image(
    name: str | os.PathLike, *, downsample_factor: int = 1, gray: bool = False, size_multiple: int = 1
) -> np.ndarray:
    """Load a test image by name, or any image file by path.

    Args:
        name: a registry name (see :func:`image_names`) or a path to a PNG/JPEG file.
        downsample_factor: integer block-average downsampling (4 in the paper's denoising).
        gray: average the colour channels into one.
        size_multiple: centre-crop the result so H and W are multiples of this (so a network
            that halves the size ``d`` times can use ``2**d``).

    Returns:
        ``(C, H, W)`` float32 in [0, 1], C = 1 (grayscale) or 3 (RGB).
    """
    p = Path(os.fspath(name))
    if is_image_path(name):
        if not p.is_file():
            raise DataError(f"image file {p} does not exist")
        img = _read_png(p)
    else:
        img = _read_png(image_path(str(name)))
    img = downsample(img, downsample_factor)
    if gray and img.shape[0] == 3:
        img = img.mean(axis=0, keepdims=True)
    if size_multiple > 1:
        img = crop_to_multiple(img, size_multiple)
    return np.ascontiguousarray(img, dtype=np.float32)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def noise_like(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The fixed network input ``z``: white Gaussian noise N(0, 1) of the given shape.

    Returns:
        float32 tensor of ``shape`` (add the batch dimension yourself), drawn from a generator
        seeded with ``seed`` so that the same seed gives the same input on every machine.
    """
    return torch.randn(shape, generator=_generator(seed))


def input_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The fixed input ``z`` of the run seeded with ``seed``: :func:`noise_like` drawn from
    ``seed + INPUT_SEED_OFFSET`` (the package's one seed rule for z).

    Returns:
        float32 tensor of ``shape``, N(0, 1).
    """
    return noise_like(shape, seed=seed + INPUT_SEED_OFFSET)


def add_gaussian_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``clip(img + N(0, sigma^2), 0, 1)``, the paper's denoising corruption.

    Args:
        img: ``(C, H, W)`` in [0, 1].
        sigma: noise standard deviation in intensity units of [0, 1] (the paper's 25/255).
        seed: seeds the noise.

    Returns:
        ``(C, H, W)`` float32 in [0, 1].
    """
    if not np.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma}")
    noise = torch.randn(img.shape, generator=_generator(seed)).numpy() * sigma
    return np.clip(img + noise, 0.0, 1.0).astype(np.float32)


def lowfreq_noise(
    shape: tuple[int, int, int], *, max_cycles: float = 4.0, std: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Gaussian noise that contains only low spatial frequencies.

    White Gaussian noise is low-passed with an ideal radial filter that keeps frequencies of
    at most ``max_cycles`` cycles per image (in either direction), then each channel is shifted
    to zero mean and scaled to standard deviation ``std``.

    Returns:
        ``(C, H, W)`` float32 noise (add it to an image and clip to [0, 1]).
    """
    if max_cycles <= 0:
        raise ConfigError(f"max_cycles must be > 0, got {max_cycles}")
    if std < 0:
        raise ConfigError(f"std must be >= 0, got {std}")
    c, h, w = shape
    white = torch.randn(shape, generator=_generator(seed), dtype=torch.float64)
    spec = torch.fft.fft2(white)
    fy = torch.fft.fftfreq(h, d=1.0 / h).abs()[:, None]  # cycles per image
    fx = torch.fft.fftfreq(w, d=1.0 / w).abs()[None, :]
    mask = (fy**2 + fx**2) <= max_cycles**2
    low = torch.fft.ifft2(spec * mask).real
    low = low - low.mean(dim=(1, 2), keepdim=True)
    low = low / low.std(dim=(1, 2), keepdim=True).clamp_min(1e-12) * std
    return low.numpy().astype(np.float32)


def two_sines(length: int, k1: float, k2: float) -> np.ndarray:
    """``sin(2 pi k1 t) + sin(2 pi k2 t)`` on ``t = n / length``, n = 0 .. length-1.

    ``k1`` and ``k2`` are in cycles per signal (the paper's 5 and 50).

    Returns:
        ``(1, length)`` float32.
    """
    if length <= 0:
        raise ConfigError(f"length must be a positive integer, got {length}")
    for k in (k1, k2):
        if not 0 < k < length / 2:
            raise ConfigError(
                f"frequency {k} must lie in (0, {length / 2}) cycles for a signal of length {length}"
            )
    t = np.arange(length) / length
    return (np.sin(2 * np.pi * k1 * t) + np.sin(2 * np.pi * k2 * t))[None].astype(np.float32)


def synthetic_triangle(size: int = 256, area: float = 0.5, *, period: int = 2, contrast: float = 0.5) -> np.ndarray:
    """A smooth triangle with a high-frequency pattern over a fraction of its area.

    The triangle is a smooth intensity ramp (low frequencies only, apart from its edges). A
    checkerboard of the given period (2 pixels: the Nyquist frequency) is laid over the part
    of the triangle below a horizontal line placed so that the pattern covers ``area`` of the
    triangle. This is our own version of the paper's ``triangle-A.png`` (Fig. 1 f-h).

    Returns:
        ``(1, size, size)`` float32 in [0, 1].
    """
    if not 0.0 <= area <= 1.0:
        raise ConfigError(f"area must lie in [0, 1], got {area}")
    if size < 8:
        raise ConfigError(f"size must be >= 8 pixels, got {size}")
    if period < 2:
        raise ConfigError(f"period must be >= 2 pixels, got {period}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    top, bottom = 0.1 * size, 0.9 * size
    # An isosceles triangle with apex at the top centre.
    half_width = (yy - top) / (bottom - top) * 0.4 * size
    inside = (yy >= top) & (yy <= bottom) & (np.abs(xx - size / 2) <= half_width)
    base = np.where(inside, 0.35 + 0.3 * (yy - top) / (bottom - top), 0.1)
    # Pattern over the bottom part of the triangle covering `area` of it: the area above a
    # line at height y grows as (y - top)^2, so the line sits at top + (1 - area)^0.5 * h.
    cut = top + np.sqrt(1.0 - area) * (bottom - top)
    checker = (((xx // (period // 2)) + (yy // (period // 2))) % 2) * 2 - 1
    pattern = inside & (yy >= cut)
    img = base + np.where(pattern, contrast / 2 * checker, 0.0)
    return np.clip(img, 0, 1)[None].astype(np.float32)


def coordinate_grid(height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (row, col) scaled to [0, 1], the input of a coordinate network.

    Returns:
        ``(1, 2, H, W)`` float32: channel 0 the row, channel 1 the column.
    """
    ys = torch.linspace(0, 1, height)
    xs = torch.linspace(0, 1, width)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # (2, H, W)
    return grid[None]
