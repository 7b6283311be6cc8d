"""Shared fixtures for the dipnb tests (deepinv-style: a device, a seeded generator, odd sizes).

- Matplotlib runs on the non-interactive Agg backend.
- Test images are read through the loader's real, sha256-checked path from ``DIPNB_IMAGES``;
  when it is unset, it points at the shared folder beside the checkout (``../shared/images``).
  CI passes its own. Images are never copied into the repository.
- Every test gets its own empty result cache (``DIPNB_CACHE``) and download cache
  (``DIPNB_DATA_CACHE``) under ``tmp_path``, so no test sees another's results.
- The ``quick`` profile, no progress bars, and the CPU (``DIPNB_DEVICE``; set
  ``DIPNB_TEST_DEVICE=cuda`` to run the tests on a GPU), whatever the caller's environment says.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
_SHARED_IMAGES = REPO.parent / "shared" / "images"
if not os.environ.get("DIPNB_IMAGES") and _SHARED_IMAGES.is_dir():
    os.environ["DIPNB_IMAGES"] = str(_SHARED_IMAGES)


def _images_available() -> bool:
    folder = os.environ.get("DIPNB_IMAGES")
    return bool(folder) and (Path(folder) / "house.png").is_file()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """A private result cache and download cache per test; quick profile; no progress bars."""
    monkeypatch.setenv("DIPNB_CACHE", str(tmp_path / "results"))
    monkeypatch.setenv("DIPNB_DATA_CACHE", str(tmp_path / "downloads"))
    monkeypatch.setenv("DIPNB_PROFILE", "quick")
    monkeypatch.setenv("DIPNB_PROGRESS", "0")
    # Composites run their sub-runs here, one after another, unless a test asks for workers.
    monkeypatch.setenv("DIPNB_WORKERS", "1")
    # The CPU, so that bitwise reproducibility holds on a GPU machine too (DIPNB_TEST_DEVICE overrides).
    monkeypatch.setenv("DIPNB_DEVICE", os.environ.get("DIPNB_TEST_DEVICE", "cpu"))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # a test that fixes the thread count must not leak it
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def images() -> Path:
    """The local folder of test images; skips the test when there is none (no downloads here)."""
    if not _images_available():
        pytest.skip("test images not found: set DIPNB_IMAGES to their folder")
    return Path(os.environ["DIPNB_IMAGES"])


@pytest.fixture
def odd_size() -> tuple[int, int]:
    """An odd (H, W): catches transposed height/width and off-by-one errors (deepinv's 37x31)."""
    return 37, 31


@pytest.fixture
def device() -> torch.device:
    """The device the tests compute on (the CPU unless DIPNB_TEST_DEVICE says otherwise)."""
    return torch.device(os.environ.get("DIPNB_TEST_DEVICE", "cpu"))


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded torch generator: pass it to ``torch.randn(..., generator=rng)``."""
    return torch.Generator(device="cpu").manual_seed(0)


@pytest.fixture
def np_rng() -> np.random.Generator:
    """A seeded numpy generator."""
    return np.random.default_rng(0)


@pytest.fixture
def one_thread():
    """Fix torch to one thread: float reductions then run in one order, so fits are bitwise
    reproducible (the autouse fixture restores the caller's count afterwards)."""
    torch.set_num_threads(1)
    yield


# A denoising run small enough for a unit test: 32x32 house, a 2-scale DIP of 8 channels.
TINY_DENOISING = dict(
    image="house", model="dip", width=8, depth=2, downsample=8, iterations=30, record_every=5
)


@pytest.fixture
def tiny_denoising(images) -> dict:
    """Overrides that make the ``denoising`` experiment run in well under a second."""
    return dict(TINY_DENOISING)
