"""Images by name (local folder and download, both sha256-checked), noise models, synthetic signals."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
import torch

from dipnb import data as D
from dipnb import spectral as S
from dipnb.errors import ConfigError, DataError

ISSUE_NAMES = [
    "baboon", "f16", "house", "peppers", "kodim01", "kodim02", "kodim03", "kodim12", "barbara",
    *[f"triangle-{a / 10:.1f}" for a in range(2, 11)],
]


# --------------------------------------------------------------------------------------------
# The registry and the local folder
# --------------------------------------------------------------------------------------------


def test_registry_has_every_image_of_the_issue():
    names = D.image_names()
    assert set(ISSUE_NAMES) <= set(names)
    info = D.image_info("house.png")
    assert info.name == "house" and len(info.sha256) == 64 and info.url.startswith("https://")


def test_every_registered_image_is_in_the_local_folder(images):
    for name in D.image_names():
        assert D.image_path(name).parent == images  # checks the sha256 too


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [
        ("house", {}, (3, 256, 256)),
        ("house", {"downsample_factor": 4}, (3, 64, 64)),
        ("house", {"downsample_factor": 3, "size_multiple": 32}, (3, 64, 64)),  # 85x85 -> 64x64
        ("house", {"gray": True, "downsample_factor": 8}, (1, 32, 32)),
        ("barbara", {"downsample_factor": 4}, (1, 128, 128)),
        ("triangle-0.2", {}, (1, 256, 256)),
        ("kodim01", {"downsample_factor": 8}, (3, 64, 96)),  # landscape: H < W
    ],
)
def test_load_image_shapes(images, name, kwargs, shape):
    img = D.load_image(name, **kwargs)
    assert img.shape == shape and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.max() > 0.5


def test_load_image_downsample_is_a_block_average(images):
    full = D.load_image("house")
    small = D.load_image("house", downsample_factor=4)
    np.testing.assert_allclose(small[:, 3, 5], full[:, 12:16, 20:24].mean(axis=(1, 2)), rtol=1e-6)


def test_load_image_by_path(tmp_path, odd_size):
    from PIL import Image

    h, w = odd_size
    arr = (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)
    path = tmp_path / "ramp.png"
    Image.fromarray(arr).save(path)
    img = D.load_image(path)
    assert img.shape == (1, h, w)
    np.testing.assert_allclose(img[0], arr / 255.0, atol=1e-7)
    with pytest.raises(DataError, match="does not exist"):
        D.load_image(tmp_path / "nope.png")


def test_unknown_image_name():
    with pytest.raises(DataError) as e:
        D.load_image("lena")
    msg = str(e.value)
    assert "'lena'" in msg and "baboon" in msg and "triangle-1.0" in msg, "names the value and the allowed ones"


def test_missing_local_image(tmp_path, monkeypatch):
    empty = tmp_path / "images"
    empty.mkdir()
    monkeypatch.setenv("DIPNB_IMAGES", str(empty))
    with pytest.raises(DataError) as e:
        D.load_image("house")
    assert "house.png" in str(e.value) and str(empty) in str(e.value)


def test_corrupt_local_image(images, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    blob = bytearray((images / "house.png").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one byte changed
    (folder / "house.png").write_bytes(bytes(blob))
    monkeypatch.setenv("DIPNB_IMAGES", str(folder))
    with pytest.raises(DataError) as e:
        D.load_image("house")
    assert "corrupt" in str(e.value) and "sha256" in str(e.value)


def test_unreadable_image_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="cannot read"):
        D.load_image(bad)


# --------------------------------------------------------------------------------------------
# Download (pooch) from a local HTTP server: no network
# --------------------------------------------------------------------------------------------


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A folder served over HTTP on localhost; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("DIPNB_IMAGES", raising=False)  # force the download path
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _serve_as(monkeypatch, name: str, url: str) -> None:
    info = D._IMAGES[name]
    monkeypatch.setitem(D._IMAGES, name, dataclasses.replace(info, url=url))


def test_download_checks_sha256(images, http_folder, monkeypatch, tmp_path):
    folder, base = http_folder
    shutil.copy(images / "house.png", folder / "house.png")
    _serve_as(monkeypatch, "house", f"{base}/house.png")
    img = D.load_image("house", downsample_factor=8)
    assert img.shape == (3, 32, 32)
    cached = tmp_path / "downloads" / "house.png"
    assert cached.is_file(), "downloaded into DIPNB_DATA_CACHE"
    (folder / "house.png").unlink()  # a second load uses the verified cached copy
    assert D.load_image("house", downsample_factor=8).shape == (3, 32, 32)


def test_download_sha256_mismatch(images, http_folder, monkeypatch, tmp_path):
    folder, base = http_folder
    blob = bytearray((images / "house.png").read_bytes())
    blob[100] ^= 0x01
    (folder / "house.png").write_bytes(bytes(blob))
    _serve_as(monkeypatch, "house", f"{base}/house.png")
    with pytest.raises(DataError) as e:
        D.load_image("house")
    assert "sha256" in str(e.value) and "house.png" in str(e.value)
    assert not (tmp_path / "downloads" / "house.png").exists(), "a bad download is not kept"


def test_download_failure_says_what_to_do(http_folder, monkeypatch):
    _, base = http_folder
    _serve_as(monkeypatch, "house", f"{base}/missing.png")  # 404
    with pytest.raises(DataError) as e:
        D.load_image("house")
    assert "DIPNB_IMAGES" in str(e.value) and "house.png" in str(e.value)


# --------------------------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------------------------


def test_downsample_and_crop(odd_size):
    h, w = odd_size
    img = np.arange(2 * h * w, dtype=np.float32).reshape(2, h, w)
    small = D.downsample(img, 3)  # crops to 36x30 first
    assert small.shape == (2, 12, 10)
    assert small[0, 0, 0] == pytest.approx(img[0, :3, :3].mean())
    assert D.downsample(img, 1) is img
    assert D.crop_to_multiple(img, 8).shape == (2, 32, 24)


@pytest.mark.parametrize("factor", [0, -2, 1.5])
def test_downsample_bad_factor(factor):
    with pytest.raises(ConfigError) as e:
        D.downsample(np.zeros((1, 8, 8), np.float32), factor)
    assert repr(factor) in str(e.value) and "positive integer" in str(e.value)


def test_crop_too_small():
    with pytest.raises(ConfigError, match="smaller than 32"):
        D.crop_to_multiple(np.zeros((1, 20, 40)), 32)


def test_load_image_bad_factor(images):
    with pytest.raises(ConfigError, match="factor"):
        D.load_image("house", downsample_factor=0)


# --------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------


def test_gaussian_noise(odd_size):
    h, w = odd_size
    img = np.full((3, h, w), 0.5, np.float32)
    a = D.add_gaussian_noise(img, 0.05, seed=1)
    b = D.add_gaussian_noise(img, 0.05, seed=1)
    c = D.add_gaussian_noise(img, 0.05, seed=2)
    assert a.shape == img.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a - img).std() == pytest.approx(0.05, rel=0.1)
    np.testing.assert_array_equal(D.add_gaussian_noise(img, 0.0, seed=1), img)


def test_gaussian_noise_is_clipped():
    img = np.zeros((1, 32, 32), np.float32)
    noisy = D.add_gaussian_noise(img, 25 / 255, seed=0)
    assert noisy.min() == 0.0 and noisy.max() <= 1.0
    assert (noisy == 0).mean() == pytest.approx(0.5, abs=0.1), "half the noise is clipped at 0"


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_gaussian_noise_bad_sigma(sigma):
    with pytest.raises(ConfigError) as e:
        D.add_gaussian_noise(np.zeros((1, 4, 4), np.float32), sigma, seed=0)
    assert str(sigma) in str(e.value) and ">= 0" in str(e.value)


def test_lowfreq_noise_has_only_low_frequencies(odd_size):
    h, w = odd_size
    n = D.lowfreq_noise((2, h, w), max_cycles=4, std=0.1, seed=3)
    assert n.shape == (2, h, w) and n.dtype == np.float32
    np.testing.assert_allclose(n.mean(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(n.std(axis=(1, 2), ddof=1), 0.1, rtol=1e-5)
    p = S.power_spectrum_2d(n)
    fy = np.fft.fftshift(np.fft.fftfreq(h, 1 / h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w, 1 / w))[None, :]
    high = fy**2 + fx**2 > 4**2
    assert p[high].sum() < 1e-10 * p.sum()
    np.testing.assert_array_equal(n, D.lowfreq_noise((2, h, w), max_cycles=4, std=0.1, seed=3))


def test_lowfreq_noise_bad_args():
    with pytest.raises(ConfigError, match="max_cycles"):
        D.lowfreq_noise((1, 8, 8), max_cycles=0)
    with pytest.raises(ConfigError, match="std"):
        D.lowfreq_noise((1, 8, 8), std=-1)


def test_noise_like_is_seeded_and_leaves_global_rng_alone(odd_size):
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, b = D.noise_like((1, 3, *odd_size), seed=4), D.noise_like((1, 3, *odd_size), seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (1, 3, *odd_size) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, D.noise_like((1, 3, *odd_size), seed=5))


# --------------------------------------------------------------------------------------------
# Synthetic signals
# --------------------------------------------------------------------------------------------


def test_two_sines():
    x = D.two_sines(256, 5, 50)
    assert x.shape == (1, 256) and x.dtype == np.float32
    assert S.amplitude_at(x, 5) == pytest.approx(1.0, rel=1e-5)
    assert S.amplitude_at(x, 50) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("length, k1, k2", [(0, 5, 50), (64, 5, 50), (256, 0, 50), (256, 5, 128)])
def test_two_sines_bad_args(length, k1, k2):
    with pytest.raises(ConfigError):
        D.two_sines(length, k1, k2)


def test_synthetic_triangle_pattern_area():
    def hf(img):
        return S.band_energy(img - img.mean(), 4)[-1]

    t0, t5, t10 = (D.synthetic_triangle(64, a) for a in (0.0, 0.5, 1.0))
    assert t0.shape == (1, 64, 64) and t0.dtype == np.float32
    assert 0.0 <= t10.min() and t10.max() <= 1.0
    assert hf(t0) < hf(t5) < hf(t10), "more patterned area, more high-frequency energy"


@pytest.mark.parametrize("kwargs, bad", [({"area": 1.5}, "area"), ({"size": 4}, "size"), ({"period": 1}, "period")])
def test_synthetic_triangle_bad_args(kwargs, bad):
    with pytest.raises(ConfigError, match=bad):
        D.synthetic_triangle(**kwargs)


def test_coordinate_grid(odd_size):
    h, w = odd_size
    g = D.coordinate_grid(h, w)
    assert g.shape == (1, 2, h, w)
    assert float(g[0, 0, -1, 0]) == 1.0 and float(g[0, 1, 0, -1]) == 1.0 and float(g.min()) == 0.0
    assert float(g[0, 0, 0, -1]) == 0.0, "channel 0 is the row"
