"""Tests of dipnb.params: declared field constraints, checked when a config is built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

import dipnb.experiments as E
from dipnb.errors import ConfigError
from dipnb.params import Config, convert, describe, param


@dataclass(frozen=True)
class Toy(Config):
    model: str = param("conv", one_of=("conv", "linear"))  # the architecture
    width: int = param(4, ge=1)  # channels
    rate: float = param(0.1, gt=0, le=0.5, note="a fraction")  # a rate
    sizes: tuple[int, ...] = param((2, 4), ge=2, min_len=2, distinct=True)  # sizes
    modes: tuple[str, ...] = param(("a",), one_of=("a", "b"))  # modes
    free: int = 3  # no constraint beyond the type
    tag: str = param("", cache=False)  # not part of a cache key

    def check(self):
        if self.width > 100 and self.model == "linear":
            raise ConfigError("linear nets here are narrow: width <= 100")


def test_valid_config_builds():
    assert Toy().width == 4
    assert Toy(model="linear", width=100, rate=0.5, sizes=(2, 3)).rate == 0.5


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(model="mlp"), "model 'mlp' is not allowed: use one of conv, linear"),
        (dict(width=0), "width must be an integer >= 1, got 0"),
        (dict(rate=0.0), r"rate must be a number in \(0, 0.5\] \(a fraction\), got 0.0"),
        (dict(rate=float("nan")), "rate must be a number in"),
        (dict(sizes=(2,)), "sizes must list at least 2 values"),
        (dict(sizes=(2, 2)), r"sizes must not repeat a value, got \(2, 2\)"),
        (dict(sizes=(2, 1)), "each of sizes must be an integer >= 2, got 1"),
        (dict(modes=("a", "c")), "'c' in modes is not allowed: use one of a, b"),
        (dict(width=True), "parameter width=True has the wrong type: it must be int"),
        (dict(width=2.0), "parameter width=2.0 has the wrong type: it must be int"),
        (dict(free="x"), "parameter free='x' has the wrong type: it must be int"),
        (dict(sizes=[2, 4]), "parameter sizes=.* has the wrong type"),
        (dict(model="linear", width=101), "narrow"),  # the config's own cross-field rule
    ],
)
def test_bad_values_raise_one_line_naming_the_field(kw, message):
    with pytest.raises(ConfigError, match=message) as e:
        Toy(**kw)
    assert "\n" not in str(e.value)


def test_an_int_is_a_floats_value_and_convert_makes_it_one():
    assert Toy(rate=0.5).rate == 0.5
    v = convert(25, float)
    assert v == 25.0 and type(v) is float
    assert convert([2, 4], tuple[int, ...]) == (2, 4)
    assert convert(True, float) is True, "a bool is never taken for a number"
    assert convert(2.0, int) == 2.0 and type(convert(2.0, int)) is float, "a float is never made an int"


def test_describe_says_what_a_field_allows():
    f = {x.name: x for x in dataclasses.fields(Toy)}
    assert describe(f["model"]) == "one of conv, linear"
    assert describe(f["rate"]) == "in (0, 0.5]; a fraction"
    assert describe(f["sizes"]) == ">= 2; at least 2 long; no repeats"
    assert describe(f["free"]) == ""
    assert f["tag"].metadata["cache"] is False


def test_every_experiment_config_is_checked_in_one_place():
    """Each experiment's config builds on Config, declares per-field rules with param, and keeps
    only cross-field rules in check(): none overrides __post_init__."""
    for name in E.names():
        cls = E.get(name).config
        assert issubclass(cls, Config), name
        assert cls.__post_init__ is Config.__post_init__, f"{name}: {cls.__name__} overrides __post_init__"


def test_the_engine_refuses_a_bad_value_before_running(images):
    with pytest.raises(ConfigError, match="sigma must be a number >= 0"):
        E.make_config("denoising", "quick", sigma=-1)
    with pytest.raises(ConfigError, match="wrong type: it must be float"):
        E.make_config("denoising", "quick", sigma="loud")
