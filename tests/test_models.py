"""Shapes of every model at several sizes, reproducible builders, and bad sizes."""

from __future__ import annotations

import pytest
import torch

from dipnb import models as M
from dipnb.errors import ConfigError


def _params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


# --------------------------------------------------------------------------------------------
# SkipNet
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "channels, depth, width, skip, mode, factor, size",
    [
        (3, 5, 16, 4, "bilinear", 2, (64, 96)),  # the paper's layout, RGB, non-square
        (1, 5, 8, 4, "nearest", 2, (32, 64)),  # grayscale, nearest; 1x2 at the deepest scale
        (3, 1, 8, 4, "bilinear", 2, (38, 30)),  # one scale: any even size
        (1, 3, 8, 0, "bilinear", 2, (40, 24)),  # no skip branches
        (3, 2, 8, 2, "nearest", 3, (36, 27)),  # factor 3: multiples of 9
        (1, 2, 8, 4, "bilinear", 4, (48, 32)),  # factor 4: multiples of 16
    ],
)
def test_skipnet_shapes(rng, channels, depth, width, skip, mode, factor, size):
    net = M.build_skip(
        in_channels=channels, out_channels=channels, depth=depth, width=width,
        skip_channels=skip, upsample_mode=mode, upsample_factor=factor,
    )
    z = torch.randn(1, channels, *size, generator=rng)
    out = net(z).detach()
    assert out.shape == (1, channels, *size)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0, "sigmoid output must lie in [0, 1]"
    assert net.cfg.size_multiple == factor**depth


def test_skipnet_input_channels_differ_from_output(rng):
    net = M.build_skip(in_channels=32, out_channels=3, depth=2, width=8)
    assert net(torch.randn(1, 32, 16, 20, generator=rng)).shape == (1, 3, 16, 20)


def test_skipnet_batch_of_two(rng):
    net = M.build_skip(depth=2, width=8)
    assert net(torch.randn(2, 3, 12, 16, generator=rng)).shape == (2, 3, 12, 16)


@pytest.mark.parametrize("depth, size", [(5, (37, 31)), (5, (48, 64)), (2, (30, 30)), (3, (36, 32))])
def test_skipnet_size_the_depth_cannot_halve(rng, depth, size):
    net = M.build_skip(depth=depth, width=8)
    h, w = size
    with pytest.raises(ConfigError) as e:
        net(torch.randn(1, 3, h, w, generator=rng))
    msg = str(e.value)
    assert f"{h}x{w}" in msg, "the message names the bad size"
    assert f"multiples of {2**depth}" in msg, "the message says what is allowed"


def test_skipnet_one_pixel_at_the_deepest_scale(rng):
    """32x32 halves 5 times to 1x1, where BatchNorm cannot train: a ConfigError, not torch's."""
    net = M.build_skip(depth=5, width=8)
    with pytest.raises(ConfigError, match="32x32"):
        net(torch.randn(1, 3, 32, 32, generator=rng))
    nobn = M.build_skip(depth=5, width=8, batch_norm=False)
    assert nobn(torch.randn(1, 3, 32, 32, generator=rng)).shape == (1, 3, 32, 32)


def test_skipnet_check_input_runs_before_any_compute():
    net = M.build_skip(depth=5, width=8)
    with pytest.raises(ConfigError, match="37x31"):
        net.check_input(37, 31)
    net.check_input(64, 32)  # fine


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"upsample_factor": 0}, "upsample_factor"),
        ({"upsample_factor": -2}, "upsample_factor"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"skip_channels": -1}, "skip_channels"),
        ({"upsample_mode": "bicubic"}, "bicubic"),
        ({"width": 2.5}, "width"),
    ],
)
def test_skipnet_bad_config(kwargs, bad):
    with pytest.raises(ConfigError) as e:
        M.build_skip(**kwargs)
    msg = str(e.value)
    assert bad in msg and repr(next(iter(kwargs.values()))) in msg, "names the bad value"
    assert any(w in msg for w in ("must", "allowed", "use one of")), msg


def test_skipnet_layout_matches_reference_setup():
    """Per scale: strided 3x3 down, 3x3, up, concat with a 1x1 skip, BN, 3x3, 1x1; sigmoid out."""
    net = M.build_skip(depth=5, width=128, skip_channels=4)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # per scale: 2 down + 1 skip + 2 merge convs; plus the head
    assert len(convs) == 5 * 5 + 1
    strided = [c for c in convs if c.stride == (2, 2)]
    assert len(strided) == 5 and all(c.kernel_size == (3, 3) for c in strided)
    skips = [c for c in convs if c.out_channels == 4]
    assert len(skips) == 5 and all(c.kernel_size == (1, 1) for c in skips)
    ups = [m for m in net.modules() if isinstance(m, torch.nn.Upsample)]
    assert len(ups) == 5 and all(u.mode == "bilinear" for u in ups)
    acts = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert all(a.negative_slope == 0.2 for a in acts)
    # 128 channels at every scale: ~2.2M parameters (the paper's DIP is ~2-3M)
    assert 1.5e6 < M.count_parameters(net) < 3e6


# --------------------------------------------------------------------------------------------
# Fully connected encoder-decoder (DIP-Linear 2D, FC twin 1D)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, width", [((3, 37, 31), 32), ((1, 16, 16), 128), ((3, 8, 8), 2048)])
def test_dip_linear_shapes(rng, shape, width):
    net = M.build_dip_linear(shape=shape, width=width)
    out = net(torch.randn(1, *shape, generator=rng)).detach()
    assert out.shape == (1, *shape)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5 and linears[0].out_features == width


@pytest.mark.parametrize("length, channels", [(37, 1), (256, 1), (64, 2)])
def test_fc1d_shapes(rng, length, channels):
    net = M.build_fc1d(length=length, channels=channels, width=32)
    z = torch.randn(1, channels, length, generator=rng)
    out = net(z)
    assert out.shape == (1, channels, length)
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Linear)]) == 10
    assert not isinstance(net.net[-1], torch.nn.Sigmoid) and not net.cfg.sigmoid, "1D output is linear"


def test_fc_wrong_input_size(rng):
    net = M.build_fc1d(length=32, width=8)
    with pytest.raises(ConfigError, match="in_features=32"):
        net(torch.randn(1, 1, 33, generator=rng))


@pytest.mark.parametrize("kwargs", [{"length": 0}, {"length": 16, "width": 0}, {"length": 16, "depth": 1}])
def test_fc1d_bad_config(kwargs):
    with pytest.raises(ConfigError, match="must"):
        M.build_fc1d(**kwargs)


def test_dip_linear_width_zero():
    with pytest.raises(ConfigError, match="width"):
        M.build_dip_linear(shape=(1, 8, 8), width=0)


# --------------------------------------------------------------------------------------------
# ConvAE1d
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, length",
    [
        ({}, 256),  # the paper's 10 layers x 256 channels, 5 halvings
        ({"width": 16, "depth": 4}, 64),
        ({"width": 16, "depth": 10, "scales": 0}, 37),  # no halving: any length
        ({"width": 16, "depth": 6, "scales": 2}, 36),
        ({"width": 16, "depth": 5, "upsample_mode": "bilinear"}, 32),  # odd depth: 2 down, 3 up
        ({"width": 8, "channels": 2, "batch_norm": False}, 64),
    ],
)
def test_conv1d_shapes(rng, kwargs, length):
    net = M.build_conv1d(**kwargs)
    c = kwargs.get("channels", 1)
    out = net(torch.randn(1, c, length, generator=rng))
    assert out.shape == (1, c, length)
    n_conv = sum(isinstance(m, torch.nn.Conv1d) for m in net.modules())
    assert n_conv == net.cfg.depth + 1, "depth convs plus the 1x1 output conv"


def test_conv1d_default_is_the_papers():
    net = M.build_conv1d()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 11 and all(c.out_channels == 256 for c in convs[:-1])
    assert net.cfg.n_scales == 5


def test_conv1d_length_the_scales_cannot_halve(rng):
    net = M.build_conv1d(width=8, depth=6)  # 3 halvings: multiples of 8
    with pytest.raises(ConfigError) as e:
        net(torch.randn(1, 1, 37, generator=rng))
    assert "37" in str(e.value) and "multiple of 8" in str(e.value)


def test_conv1d_one_sample_at_the_deepest_scale(rng):
    net = M.build_conv1d(width=8)  # 5 halvings: 32 -> 1, where BatchNorm cannot train
    with pytest.raises(ConfigError, match="length 32"):
        net(torch.randn(1, 1, 32, generator=rng))


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"width": 0}, "width"),
        ({"depth": 1}, "depth"),
        ({"scales": 6}, "scales"),
        ({"upsample_mode": "linear"}, "called bilinear"),
        ({"kernel_size": 2}, "kernel_size"),
    ],
)
def test_conv1d_bad_config(kwargs, bad):
    with pytest.raises(ConfigError, match=bad):
        M.build_conv1d(**kwargs)


# --------------------------------------------------------------------------------------------
# ReLUNet
# --------------------------------------------------------------------------------------------


def test_relunet_forward_and_forward_at(rng):
    from dipnb.data import coordinate_grid

    net = M.build_relunet(width=32, depth=4, out_channels=3)
    coords = coordinate_grid(37, 31)
    out = net(coords).detach()
    assert out.shape == (1, 3, 37, 31)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    idx = torch.randint(37 * 31, (50,), generator=rng)
    part = net.forward_at(coords, idx).detach()
    assert part.shape == (1, 3, 50)
    # forward_at agrees with the full forward at the same pixels
    torch.testing.assert_close(part, out.flatten(2)[..., idx])


def test_relunet_default_is_the_papers():
    net = M.build_relunet()
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 10 and linears[0].in_features == 2 and linears[0].out_features == 256


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"depth": 1}, {"out_channels": 0}])
def test_relunet_bad_config(kwargs):
    with pytest.raises(ConfigError, match="must"):
        M.build_relunet(**kwargs)


# --------------------------------------------------------------------------------------------
# UpsampleDecoder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_decoder_strides(rng, stride, mode):
    net = M.build_decoder(stride=stride, upsample_mode=mode, width=8, in_channels=4)
    h, w = 3, 2
    out = net(torch.randn(1, 4, h, w, generator=rng))
    assert out.shape == (1, 1, h * stride, w * stride)


def test_decoder_without_convs(rng):
    net = M.build_decoder(stride=4, convs_before=0, convs_after=0, in_channels=2, out_channels=3)
    assert net(torch.randn(1, 2, 5, 7, generator=rng)).shape == (1, 3, 20, 28)


@pytest.mark.parametrize("stride", [0, -1, 2.0])
def test_decoder_bad_stride(stride):
    with pytest.raises(ConfigError) as e:
        M.build_decoder(stride=stride)
    assert "stride" in str(e.value) and repr(stride) in str(e.value)


def test_decoder_bad_mode_and_width():
    with pytest.raises(ConfigError, match="area"):
        M.build_decoder(upsample_mode="area")
    with pytest.raises(ConfigError, match="width"):
        M.build_decoder(width=0)


# --------------------------------------------------------------------------------------------
# Builders: reproducible weights, global RNG untouched
# --------------------------------------------------------------------------------------------

BUILDERS = {
    "skip": lambda s: M.build_skip(seed=s, depth=2, width=8),
    "dip_linear": lambda s: M.build_dip_linear(shape=(1, 8, 8), width=16, seed=s),
    "conv1d": lambda s: M.build_conv1d(seed=s, width=8, depth=4),
    "fc1d": lambda s: M.build_fc1d(length=16, width=8, seed=s),
    "relunet": lambda s: M.build_relunet(seed=s, width=8, depth=3),
    "decoder": lambda s: M.build_decoder(seed=s, width=8),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builders_are_reproducible_and_leave_global_rng_alone(name):
    build = BUILDERS[name]
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a, b, c = build(7), build(7), build(8)
    assert torch.equal(torch.get_rng_state(), state), "a builder must not advance the global RNG"
    for x, y in zip(_params(a), _params(b), strict=True):
        assert torch.equal(x, y), "same seed, same weights"
    assert any(not torch.equal(x, y) for x, y in zip(_params(a), _params(c), strict=True)), (
        "another seed gives other weights"
    )


def test_seeded_restores_state():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with M.seeded(99):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)
