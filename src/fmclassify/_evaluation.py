"""Evaluation (private): a model's mean loss and accuracy on a data set, and an epoch's record.

The Trainer evaluates after every epoch (and once before the first); a loss is a sample-weighted
mean (:mod:`fmclassify.training` says why). Under torchrun each process evaluates its rows of
the set, and the sums are over all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from fmclassify.data import iter_batches
from fmclassify.distributed import Shard
from fmclassify.history import EpochRecord
from fmclassify.recipes import autocast

__all__ = ["epoch_record", "evaluate"]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, precision: str,
             batch_size: int, shard: Shard, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy (a fraction) of ``model`` on images ``x``, labels ``y``.

    ``precision`` is the recipe's (forward passes under its autocast), ``batch_size`` the
    evaluation batch size (speed only), ``shard`` this process's part of the run, and ``device``
    where the sums are kept. The model is put in eval mode and its flag restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with autocast(precision, model)():
        for xb, yb in iter_batches(shard.rows(x), shard.rows(y), batch_size, shuffle=False):
            logits = model(xb).float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    loss_sum, correct = shard.sum(loss_sum), shard.sum(correct)
    loss = loss_sum.item() / len(y)
    # a non-finite loss is kept as inf (JSON writes it as null); accuracy stays meaningful
    return (loss if math.isfinite(loss) else float("inf")), correct.item() / len(y)


def epoch_record(epoch: int, train_loss: float | None, seconds: float, lr: float | None,
                 sets: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                 measure: Callable[..., tuple[float, float]], *, raw: bool) -> EpochRecord:
    """The epoch's record, with the loss and accuracy on each of ``sets`` (name -> images, labels).

    ``measure(x, y)`` evaluates the run's evaluated model (the EMA if set); with ``raw``,
    ``measure(x, y, raw=True)`` adds the raw (trained) model's metrics (``raw_*``).
    """
    metrics: dict[str, Any] = {}
    for name, data in sets.items():  # "test", and "val" with a split
        metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = measure(*data)
        if raw:
            metrics[f"raw_{name}_loss"], metrics[f"raw_{name}_accuracy"] = \
                measure(*data, raw=True)
    return EpochRecord(epoch, train_loss, seconds=seconds, lr=lr, **metrics)
