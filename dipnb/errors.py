"""Exceptions raised by dipnb, each with a message that names the bad value and what is allowed."""

from __future__ import annotations

__all__ = ["DipnbError", "ConfigError", "DataError", "FitDivergedError"]


class DipnbError(Exception):
    """Base class of every error dipnb raises on purpose."""


class ConfigError(DipnbError, ValueError):
    """A parameter is out of range, of the wrong type, or unknown."""


class DataError(DipnbError, ValueError):
    """An image is unknown, missing, unreadable or fails its checksum."""


class FitDivergedError(DipnbError, RuntimeError):
    """The loss became NaN or infinite. ``record`` holds what was recorded up to then."""

    def __init__(self, message: str, record=None):
        super().__init__(message)
        self.record = record
