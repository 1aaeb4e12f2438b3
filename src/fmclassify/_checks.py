"""One validation helper per kind of argument, one wording each (used by every entry point).

Every public function and class checks its arguments with these before it loads data or
trains, so a typo fails in a second with a message that names the argument, the value it got
and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from fmclassify.exceptions import ConfigError

__all__ = [
    "check_choice",
    "check_device",
    "check_fraction",
    "check_index",
    "check_int",
    "check_lr",
    "check_lrs",
    "check_nonnegative",
    "check_positive",
    "check_probability",
    "check_seed",
    "check_seeds",
    "check_values",
]


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` as an int, or ConfigError unless it is an integer >= ``minimum``.

    Examples
    --------
    >>> check_int("epochs", 3)
    3
    >>> check_int("epochs", 0)
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.ConfigError: epochs must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_index(name: str, value: object, size: int, *, what: str = "an integer") -> int:
    """An index into ``size`` items: an integer in ``range(size)``, e.g. the run ``k`` of K.

    Parameters
    ----------
    what : str, optional
        What the index counts, for the message (e.g. "a run index").

    Examples
    --------
    >>> check_index("k", 3, 3, what="a run index")
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.ConfigError: k must be a run index in range(3), got 3
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise ConfigError(f"{name} must be {what} in range({size}), got {value!r}")
    return value


def check_lr(value: object, name: str = "lr") -> float:
    """A learning rate: a finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}; the course uses 0.1")
    return float(value)  # type: ignore[arg-type]


def check_lrs(name: str, values: object) -> tuple[float, ...]:
    """A non-empty sequence of learning rates, each a finite number > 0.

    Examples
    --------
    >>> check_lrs("lrs", (0.1, 0.01))
    (0.1, 0.01)
    >>> check_lrs("lrs", (0.1, -1))
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.ConfigError: lrs must be positive learning rates, got [0.1, -1]
    """
    items = list(values) if isinstance(values, (list, tuple)) else None
    if not items or not all(_is_number(v) and math.isfinite(v) and v > 0  # type: ignore[operator]
                            for v in items):
        raise ConfigError(f"{name} must be positive learning rates, got "
                          f"{items if items is not None else values!r}")
    return tuple(float(v) for v in items)  # type: ignore[arg-type]


def check_positive(name: str, value: object) -> float:
    """A finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_nonnegative(name: str, value: object) -> float:
    """A finite number >= 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:  # type: ignore[arg-type]
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_probability(name: str, value: object, *, closed: bool = True) -> float:
    """A number in [0, 1) (``closed=True``: [0, 1]); e.g. label smoothing."""
    ok = _is_number(value) and 0 <= value <= 1 and (closed or value < 1)  # type: ignore[operator]
    if not ok:
        bound = "]" if closed else ")"
        raise ConfigError(f"{name} must be a number in [0, 1{bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_fraction(name: str, value: object) -> float:
    """A number strictly between 0 and 1, e.g. an EMA decay."""
    if not _is_number(value) or not 0 < value < 1:  # type: ignore[operator]
        raise ConfigError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_choice(name: str, value: object, allowed: Sequence[str], *,
                 also: str = "") -> str:
    """One of ``allowed`` (strings); the message suggests the closest name on a typo.

    Parameters
    ----------
    also : str, optional
        What else the argument accepts, for the message (e.g. "or a callable").
    """
    if isinstance(value, str) and value in allowed:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
    extra = f", {also}" if also else ""
    raise ConfigError(f"unknown {name} {value!r}; {hint}choose one of "
                      f"{', '.join(map(repr, allowed))}{extra}")


def check_values(name: str, values: Iterable[Any]) -> list[Any]:
    """A non-empty sequence (not a string), as a list."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{name} must be a sequence such as (0.1, 0.01), got {values!r}")
    out = list(values)
    if not out:
        raise ConfigError(f"{name} must not be empty")
    return out


def check_seeds(seeds: Iterable[Any]) -> tuple[int, ...]:
    """A non-empty sequence of distinct integer seeds."""
    out = check_values("seeds", seeds)
    for seed in out:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seeds must be integers, got {seed!r} in {out!r}")
    if len(set(out)) < len(out):
        raise ConfigError(f"seeds must be distinct, got {out!r}")
    return tuple(out)


def check_seed(value: object) -> int:
    """A seed: any integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"seed must be an integer, got {value!r}")
    return value


def check_device(device: object) -> torch.device:
    """``"auto"`` (CUDA when available, else the CPU), or a device that exists here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for CUDA, but no GPU is available; "
                          "use device='auto' or 'cpu'")
    return resolved
