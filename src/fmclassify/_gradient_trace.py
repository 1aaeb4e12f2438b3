"""The whole-model trace of :class:`fmclassify.GradientTracer`: its sums, and how they are read.

Private to :mod:`fmclassify.gradients`, whose module documentation states the statistics. At
each recorded step, :func:`reduce_gradient` turns each trainable tensor's gradient into one sum
on the device (sum g, sum |g| or sum g**2, by the statistic), a row of the tracer's buffer.
The rows are read back to the host once; :func:`read_trace` then pools each row over the
tensors that had a gradient at that step and finishes the pooled sum into the statistic (and,
per tensor, into that tensor's own). :func:`skipped_counts` says how often each tensor was
left out, :func:`check_state` checks a saved trace against the tracer about to load it, and
:func:`json_floats` writes non-finite values as None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fmclassify.exceptions import ConfigError

__all__ = ["STATE_KEYS", "check_state", "json_floats", "read_trace", "reduce_gradient",
           "skipped_counts"]

#: The keys every GradientTracer state holds (``"per_layer"`` and ``"flow"`` came later).
STATE_KEYS = ("statistic", "steps", "recorded", "names", "numels", "frozen", "present", "rows")


def reduce_gradient(grad: torch.Tensor, statistic: str, dtype: torch.dtype) -> torch.Tensor:
    """Return the per-tensor sum ``statistic`` pools: sum g, sum |g| or sum g**2."""
    if statistic == "mean":
        return grad.sum(dtype=dtype)
    order = 1 if statistic == "mean_abs" else 2
    norm: torch.Tensor = torch.linalg.vector_norm(grad, ord=order, dtype=dtype)
    return norm if order == 1 else norm.square()


def read_trace(
    rows: Sequence[Sequence[float]],
    present: Sequence[tuple[int, ...] | None],
    numels: Sequence[int],
    statistic: str,
    names: Sequence[str] | None,
) -> tuple[list[float], dict[str, list[float]]]:
    """The statistic per step, and per tensor per step, from the rows of per-tensor sums.

    Parameters
    ----------
    rows : sequence of sequence of float
        One row per recorded step, one sum per trainable tensor (:func:`reduce_gradient`).
    present : sequence of tuple of int or None
        Per step, the tensors that had a gradient (None: all of them).
    numels : sequence of int
        The tensors' sizes (the N of the means).
    statistic : {"mean", "mean_abs", "l2_norm"}
        The statistic the sums are of.
    names : sequence of str or None
        The tensors' names, for the per-tensor values; None (no per-layer values) gives ``{}``.

    Returns
    -------
    tuple of (list of float, dict of str to list of float)
        The whole-model statistic per step; per tensor, its own (NaN where it had no grad).
    """
    values = [
        _pool(row, step, numels, statistic) for row, step in zip(rows, present, strict=True)
    ]
    per_layer: dict[str, list[float]] = {}
    for i, name in enumerate(names or ()):
        per_layer[name] = [
            _finish(statistic, row[i], numels[i]) if step is None or i in step else math.nan
            for row, step in zip(rows, present, strict=True)
        ]
    return values, per_layer


def skipped_counts(
    names: Sequence[str],
    frozen: Sequence[str],
    present: Sequence[tuple[int, ...] | None],
    recorded: int,
) -> dict[str, int]:
    """Parameter name -> recorded steps it contributed nothing to (frozen, or no grad)."""
    skipped = {name: recorded for name in frozen}
    for step in present:
        if step is None:
            continue
        for i, name in enumerate(names):
            if i not in step:
                skipped[name] = skipped.get(name, 0) + 1
    return skipped


def check_state(state: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Raise ConfigError unless ``state`` is a trace of a tracer built with ``config``.

    ``config`` is the loading tracer's :meth:`~fmclassify.GradientTracer.config`; its
    ``statistic``, ``steps`` and ``per_layer`` must match the state's (a state written before
    ``per_layer`` existed is one without it).
    """
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ConfigError(
            f"GradientTracer state is missing {', '.join(missing)}; "
            "pass a dict written by GradientTracer.state_dict()"
        )
    theirs = {**state, "per_layer": bool(state.get("per_layer", False))}
    for key in ("statistic", "steps", "per_layer"):
        if theirs[key] != config[key]:
            raise ConfigError(
                f"GradientTracer state has {key}={theirs[key]!r} but this tracer has "
                f"{key}={config[key]!r}; build the tracer with the same settings"
            )


def json_floats(values: Any) -> Any:
    """``values`` (a float, or lists and dicts of them) with every non-finite float as None."""
    if isinstance(values, Mapping):
        return {key: json_floats(v) for key, v in values.items()}
    if isinstance(values, list):
        return [json_floats(v) for v in values]
    return values if math.isfinite(values) else None


def _pool(
    row: Sequence[float], present: tuple[int, ...] | None, numels: Sequence[int], statistic: str
) -> float:
    idx = range(len(row)) if present is None else present
    return _finish(statistic, sum(row[i] for i in idx), sum(numels[i] for i in idx))


def _finish(statistic: str, total: float, count: int) -> float:
    """Turn a pooled sum over ``count`` entries into the statistic."""
    if statistic == "l2_norm":
        return math.sqrt(total) if total >= 0 else math.nan
    return total / count if count else math.nan
