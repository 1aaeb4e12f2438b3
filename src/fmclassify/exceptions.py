"""The errors fmclassify raises.

Every error a user can trigger is a :class:`FmClassifyError`, so one ``except`` clause catches
them all. Where it helps, a subclass also derives from the built-in error a Python user would
expect (``ValueError`` for a bad argument, ``LookupError`` for an unknown name), so existing
``except ValueError`` code keeps working. Messages say what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorruptDataError",
    "DataError",
    "DataNotFoundError",
    "FmClassifyError",
    "ParameterCountError",
    "UnknownDatasetError",
    "UnknownModelError",
]


class FmClassifyError(Exception):
    """Base class of every error fmclassify raises on purpose."""


class ConfigError(FmClassifyError, ValueError):
    """A configuration value is out of range or inconsistent (lr <= 0, epochs < 1, ...)."""


class UnknownModelError(FmClassifyError, LookupError):
    """No model is registered under the requested name; the message lists close matches."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(FmClassifyError, LookupError):
    """The requested data set name is not one fmclassify knows."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DataError(FmClassifyError):
    """Data is missing, corrupt, or does not fit the model."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No copy of the data set was found in any of the places searched, and none was fetched."""


class CorruptDataError(DataError):
    """A data file exists but is truncated or malformed; the message names the file."""


class ParameterCountError(FmClassifyError):
    """An analytic parameter rule disagrees with what PyTorch allocated, or cannot be applied."""


class CheckpointError(FmClassifyError):
    """A checkpoint is unreadable or belongs to another model or configuration."""
