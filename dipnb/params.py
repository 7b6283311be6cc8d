"""Config fields that declare the values they allow, checked in one place.

Every experiment's config is a frozen dataclass built on :class:`Config`. A field states its
type and, through :func:`param`, its constraint::

    @dataclass(frozen=True)
    class MyConfig(Config):
        model: str = param("conv", one_of=("conv", "linear"))  # the architecture
        width: int = param(64, ge=1)  # channels per layer
        sigma: float = param(25.0, ge=0)  # noise std, in units of 1/255
        modes: tuple[str, ...] = param(("nearest",), one_of=MODES, min_len=1, distinct=True)

        def check(self):  # only what relates several fields
            if self.width > 4 * self.length:
                raise ConfigError("...")

Building a config checks every field's type and constraint (:func:`validate`), then runs the
config's :meth:`Config.check`. A bad value raises one :class:`~dipnb.errors.ConfigError` that names
the field, what it allows and what it got, before anything is computed. The engine converts a
value to its field's declared type first (:func:`convert`), so ``25`` and ``25.0`` for a float
field are one value and one cache key.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = [
    "Config", "Constraint", "param", "validate", "matches", "convert", "convert_all", "describe", "describe_bounds",
    "type_name",
]


@dataclass(frozen=True)
class Constraint:
    """What a field allows, beyond its type. For a tuple field, the bounds, ``one_of`` and ``check``
    hold for each element, and ``min_len`` and ``distinct`` for the tuple.

    ``check`` is a function of the value that raises :class:`ConfigError` (a test image's name or
    path, say); ``note`` is added to the message (what 0 or -1 means, a unit).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    one_of: tuple | None = None
    min_len: int = 0
    distinct: bool = False
    check: Callable[[Any], None] | None = None
    note: str = ""


def param(default: Any = dataclasses.MISSING, *, cache: bool = True, **constraint) -> Any:
    """A dataclass field with ``default`` (none: the field must be given) and a
    :class:`Constraint` (keywords as its fields).

    ``cache=False`` leaves the field out of the cache key (it changes what is done with a result,
    not the result). Returns a :func:`dataclasses.field`.
    """
    if "one_of" in constraint:
        constraint["one_of"] = tuple(constraint["one_of"])
    meta: dict[str, Any] = {"constraint": Constraint(**constraint)}
    if not cache:
        meta["cache"] = False
    if isinstance(default, (list, dict, set)):
        raise TypeError("a param's default must be immutable: use a tuple")
    return dataclasses.field(default=default, metadata=meta)


class Config:
    """Base of the experiments' configs: building one validates it (see the module's docstring)."""

    def __post_init__(self) -> None:
        validate(self)
        self.check()

    def check(self) -> None:
        """Rules that relate several fields; raises :class:`ConfigError`. Runs after every field
        has passed its own constraint. A config may also fill in here a field left at a value that
        means "derive it" (so the stored config, and its cache key, name every size)."""


def type_name(tp) -> str:
    """How a field type is written in messages and in ``dipnb list``: ``int``, ``tuple[str, ...]``."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def validate(cfg) -> None:
    """Check every field of the dataclass ``cfg`` against its declared type and constraint.

    Raises:
        ConfigError: the first field that fails, with what it allows and what it got.
    """
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        tp = hints[f.name]
        if not matches(value, tp):
            raise ConfigError(f"parameter {f.name}={value!r} has the wrong type: it must be {type_name(tp)}")
        c = f.metadata.get("constraint")
        if c is not None:
            _check(f.name, value, tp, c)


def _check(name: str, value, tp, c: Constraint) -> None:
    note = f" ({c.note})" if c.note else ""
    if typing.get_origin(tp) is tuple:
        if len(value) < c.min_len:
            raise ConfigError(f"{name} must list at least {c.min_len} value{'s' * (c.min_len > 1)}"
                              f"{note}, got {value!r}")
        if c.distinct and len(set(value)) != len(value):
            raise ConfigError(f"{name} must not repeat a value, got {value!r}")
        for v in value:
            _check_one(name, v, c, note, element=True)
    else:
        _check_one(name, value, c, note, element=False)


def _check_one(name: str, value, c: Constraint, note: str, element: bool) -> None:
    if c.one_of is not None and value not in c.one_of:
        which = f"{value!r} in {name}" if element else f"{name} {value!r}"
        raise ConfigError(f"{which} is not allowed: use one of {', '.join(map(str, c.one_of))}{note}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        bounds = describe_bounds(c)
        if (isinstance(value, float) and not math.isfinite(value)) or not _in_bounds(value, c):
            kind = "an integer" if isinstance(value, int) else "a number"
            which = f"each of {name}" if element else name
            raise ConfigError(f"{which} must be {kind}{' ' + bounds if bounds else ''}{note}, got {value!r}")
    if c.check is not None:
        c.check(value)


def _in_bounds(v, c: Constraint) -> bool:
    return ((c.ge is None or v >= c.ge) and (c.gt is None or v > c.gt)
            and (c.le is None or v <= c.le) and (c.lt is None or v < c.lt))


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def describe_bounds(c: Constraint) -> str:
    """``">= 1"``, ``"in (0, 0.5]"``, or ``""`` when the constraint has no bound."""
    lo = ("[", c.ge) if c.ge is not None else ("(", c.gt) if c.gt is not None else None
    hi = ("]", c.le) if c.le is not None else (")", c.lt) if c.lt is not None else None
    if lo and hi:
        return f"in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"
    return ""


def describe(field: dataclasses.Field) -> str:
    """What a field allows, in words, for ``dipnb list``: ``">= 1"``, ``"one of conv, linear"``;
    ``""`` for a field that declares nothing beyond its type."""
    c = field.metadata.get("constraint")
    if c is None:
        return ""
    parts = []
    if c.one_of is not None:
        parts.append("one of " + ", ".join(map(str, c.one_of)))
    if b := describe_bounds(c):
        parts.append(b)
    if c.min_len:
        parts.append(f"at least {c.min_len} long")
    if c.distinct:
        parts.append("no repeats")
    if c.note:
        parts.append(c.note)
    return "; ".join(parts)


def matches(value, tp) -> bool:
    """Whether ``value`` is of the field type ``tp`` (``bool`` is never a number; an int is a
    float's value)."""
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def convert(value, tp):
    """``value`` as the field type ``tp``, where the conversion is exact in meaning.

    An int (or numpy integer) for a float field becomes a float, a numpy scalar its Python
    value, a list a tuple, element by element. ``bool`` is never taken for a number, and a
    float is never made an int: such values are returned as they are, for :func:`validate`
    to refuse.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if any(type(value) is a for a in args):
            return value
        for a in args:
            if a is not type(None):
                v = convert(value, a)
                if matches(v, a):
                    return v
        return value
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        value = value.item()
    elif isinstance(value, np.bool_) and tp is bool:
        value = bool(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(convert(v, a) for v, a in zip(value, args, strict=True))
        return tuple(value)
    return value


def convert_all(cls: type, values: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``{name: convert(value, declared type)}`` for the fields of ``cls``."""
    hints = _hints(cls)
    return {k: convert(v, hints[k]) for k, v in values}
