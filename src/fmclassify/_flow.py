r"""Per-tensor gradient flow: five statistics per trainable tensor and step, on the device.

:class:`LayerFlow` is the store behind ``GradientTracer(per_layer=True)``. For each recorded
step and each trainable parameter tensor :math:`w` with gradient :math:`g` (:math:`n` entries),
taken after ``loss.backward()`` and before ``optimizer.step()``:

``"mean"``
    :math:`\frac{1}{n}\sum_i g_i`
``"mean_abs"``
    :math:`\frac{1}{n}\sum_i |g_i|`
``"norm"``
    :math:`\|g\|_2`
``"weight_norm"``
    :math:`\|w\|_2`, the weights the step is about to change
``"update_ratio"``
    :math:`\eta\,\|g\|_2 / \|w\|_2`, with :math:`\eta` the learning rate of the tensor's
    parameter group at that step: the relative size of a plain SGD step. Momentum, Adam and
    weight decay change the actual update; the ratio stays the gradient's push relative to the
    weight. NaN where :math:`\|w\|_2 = 0` (a tensor that starts at zero, such as batch
    norm's shift, at its first step).

The per-tensor sums go into one (steps, tensors, 4) tensor allocated on the model's device once
per fit (sum g, sum \|g\|, \|g\|, \|w\|); the learning rates are Python floats read from the
optimizer, so a step costs no host synchronisation. Everything is read back in one transfer.
The signed sum is accumulated in float64 (it cancels); the three sizes in the parameters' own
precision (float32: about 1e-6 relative), which costs a third as much on the CPU.
A tensor without a gradient at a step gets NaN there (``None`` in JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fmclassify._checks import check_choice
from fmclassify.exceptions import ConfigError

__all__ = ["FLOW_STATISTICS", "LayerFlow", "select_statistic"]

#: The statistics of one tensor at one step, in the order :meth:`LayerFlow.read` returns them.
FLOW_STATISTICS = ("mean", "mean_abs", "norm", "weight_norm", "update_ratio")


class LayerFlow:
    """Per-tensor gradient statistics of up to ``steps`` steps (see the module documentation).

    Parameters
    ----------
    steps : int
        Rows to allocate.
    names : sequence of str
        The trainable tensors' names, in model order.
    numels : sequence of int
        Their sizes (the n of the means).
    device, dtype
        Where and in which precision the sums are kept.
    """

    def __init__(
        self,
        steps: int,
        names: Sequence[str],
        numels: Sequence[int],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.names, self.numels = list(names), list(numels)
        shape = (steps, len(self.names), 4)
        self.sums = torch.full(shape, math.nan, dtype=dtype, device=device)
        self.lrs: list[list[float] | None] = []  # per step: per tensor, or None (no lr known)
        self._groups: tuple[int, int, list[int]] | None = None  # optimizer id, groups, index

    def learning_rates(
        self, optimizer: Any, params: Sequence[torch.Tensor], fallback: float | None
    ) -> list[float] | None:
        """The learning rate of each tensor at this step (0 for a tensor not optimized).

        Read from each tensor's parameter group of ``optimizer`` as Python floats (no device
        work, no sync; only a learning rate held as a GPU tensor waits for the device);
        ``fallback`` for every tensor when there is no optimizer, and None when neither.
        """
        if optimizer is None:
            return None if fallback is None else [fallback] * len(params)
        groups = optimizer.param_groups
        if self._groups is None or self._groups[:2] != (id(optimizer), len(groups)):
            index = {id(p): g for g, group in enumerate(groups) for p in group["params"]}
            self._groups = (id(optimizer), len(groups), [index.get(id(p), -1) for p in params])
        rates = [float(group["lr"]) for group in groups]
        return [rates[g] if g >= 0 else 0.0 for g in self._groups[2]]

    def record(
        self,
        step: int,
        params: Sequence[torch.Tensor],
        present: Sequence[int],
        lrs: list[float] | None,
    ) -> torch.Tensor | None:
        """Reduce step ``step``'s gradients into its row; return the signed sums (sum g).

        ``present`` indexes the tensors of ``params`` that have a gradient (the others keep
        NaN; ``None`` is returned when there are none); ``lrs`` holds one learning rate per
        tensor, or is ``None`` when the run gave none.
        """
        del self.lrs[step:]
        self.lrs.append(lrs)
        if not present:
            return None
        row, dtype = self.sums[step], self.sums.dtype
        grads = [params[i].grad for i in present]
        # The signed sum cancels, so it is accumulated in float64 (as the whole-model mean);
        # sizes do not cancel, and float32 keeps them to ~1e-6 at a fraction of the cost.
        signed = torch.stack([g.sum(dtype=dtype).to(row.device) for g in grads if g is not None])
        pairs = [(g, params[i].detach()) for i, g in zip(present, grads, strict=True)]
        sizes = torch.stack([_sizes(g, w).to(row.device) for g, w in pairs if g is not None])
        sizes = sizes.to(dtype)
        stats = torch.cat((signed[:, None], sizes), dim=1)  # (len(present), 4)
        if len(present) == len(self.names):
            row.copy_(stats)
        else:
            row[list(present)] = stats
        return signed

    def moved(self, recorded: int, device: torch.device, dtype: torch.dtype) -> LayerFlow:
        """A twin on ``device`` holding the first ``recorded`` rows (a resumed run's)."""
        twin = LayerFlow(self.sums.shape[0], self.names, self.numels, device=device, dtype=dtype)
        twin.sums[:recorded] = self.sums[:recorded].to(device=device, dtype=dtype)
        twin.lrs = list(self.lrs[:recorded])
        return twin

    def read(self, recorded: int) -> dict[str, dict[str, list[float]]]:
        """Tensor name -> statistic -> one float per recorded step (the one host transfer).

        ``"update_ratio"`` is left out when a step had no learning rate to use.
        """
        sums = self.sums[:recorded].to("cpu", torch.float64)  # (T, P, 4)
        numels = torch.tensor(self.numels, dtype=torch.float64)
        columns = [sums[..., 0] / numels, sums[..., 1] / numels, sums[..., 2], sums[..., 3]]
        known = all(lr is not None for lr in self.lrs[:recorded])
        if known:
            lrs = torch.tensor(self.lrs[:recorded], dtype=torch.float64).reshape(sums.shape[:2])
            weight = sums[..., 3]  # NaN, not inf, for a tensor that is still all zeros
            columns.append(torch.where(weight > 0, lrs * sums[..., 2] / weight,
                                       torch.full_like(weight, math.nan)))
        table = torch.stack(columns, dim=-1).permute(1, 2, 0).tolist()  # (P, stats, T)
        return {
            name: dict(zip(FLOW_STATISTICS, per_stat, strict=False))
            for name, per_stat in zip(self.names, table, strict=True)
        }

    def state_dict(self, recorded: int) -> dict[str, Any]:
        """The first ``recorded`` rows as plain, JSON-ready data (non-finite sums as None)."""
        rows = self.sums[:recorded].to("cpu", torch.float64).tolist()
        return {
            "sums": [[[_finite_or_none(v) for v in cell] for cell in row] for row in rows],
            "lrs": [None if lr is None else list(lr) for lr in self.lrs[:recorded]],
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], steps: int, names: Sequence[str], numels: Sequence[int]
    ) -> LayerFlow:
        """Rebuild a store written by :meth:`state_dict` (on the CPU; see :meth:`moved`)."""
        flow = cls(steps, names, numels)
        rows = state["sums"]
        if rows:
            flow.sums[: len(rows)] = torch.tensor(
                [[[math.nan if v is None else v for v in cell] for cell in row] for row in rows],
                dtype=torch.float64,
            )
        flow.lrs = [None if lr is None else [float(v) for v in lr] for lr in state["lrs"]]
        return flow


def select_statistic(
    flow: Mapping[str, Mapping[str, list[float]]], stat: str
) -> dict[str, list[float]]:
    """Tensor name -> the values of ``stat``, from what :meth:`LayerFlow.read` returned.

    Raises
    ------
    ConfigError
        If ``stat`` is unknown, or is ``"update_ratio"`` and no learning rate was known.
    """
    check_choice("flow statistic", stat, FLOW_STATISTICS)
    if any(stat not in stats for stats in flow.values()):
        raise ConfigError(
            "update_ratio needs the learning rate, and this run had none: the RunContext "
            "had no optimizer; pass GradientTracer(..., per_layer=True, lr=...)"
        )
    return {name: list(stats[stat]) for name, stats in flow.items()}


def _sizes(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(sum |g|, ||g||_2, ||w||_2), accumulated in float32 or the tensors' own wider dtype.

    A gradient has its parameter's dtype, so the three stack.
    """
    wide = torch.float32 if grad.dtype in (torch.float16, torch.bfloat16) else None  # 3 digits
    norm = torch.linalg.vector_norm
    return torch.stack(
        (grad.abs().sum(dtype=wide), norm(grad, dtype=wide), norm(weight, dtype=wide))
    )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
