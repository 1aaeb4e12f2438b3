"""Evaluation (private): a model's mean loss and accuracy on a data set held on its device.

The Trainer evaluates after every epoch (and once before the first); a loss is a sample-weighted
mean (:mod:`fmclassify.training` says why). Under torchrun each process evaluates its rows of
the set, and the sums are over all of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmclassify.data import iter_batches
from fmclassify.distributed import Shard
from fmclassify.recipes import autocast

__all__ = ["evaluate"]


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
