"""A run's data (private): the rows it trains on, where they live, how a batch reaches the step.

A validation split, when the recipe asks for one, is held out of the training set. The data is
moved to the training device once, as one float tensor (:mod:`fmclassify.training` says why); a
model with convolutions trains channels-last on the CPU, and its data is laid out so too. On its
way to the step each batch gets the run's augmentation, that layout and, under torchrun, only
this process's rows of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fmclassify.data import ImageDataset
from fmclassify.distributed import Shard
from fmclassify.recipes import BatchAugment, Recipe, black_value, split_validation

__all__ = ["Prepare", "batch_preparer", "hold_out", "memory_format", "on_device"]

#: A batch's way to the step: (images, labels) in, what the step trains on out.
Prepare = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def memory_format(model: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """The layout of ``model`` and its data on ``device``: channels-last for conv nets on a CPU."""
    # Convolutions on the CPU run markedly faster on channels-last (NHWC) tensors
    # (benchmarks/cnn_speed.py); the weights and data are laid out so once, when the Trainer
    # is made and when fit places the data.
    return (torch.channels_last if device.type == "cpu"
            and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
            else torch.contiguous_format)


def hold_out(train: ImageDataset, val_split: float | int | None,
             seed: int) -> tuple[ImageDataset, ImageDataset | None]:
    """The rows of ``train`` a run trains on, and the validation split held out of them if any."""
    if val_split is None:
        return train, None
    return split_validation(train, val_split, seed)


def on_device(ds: ImageDataset, device: torch.device,
              fmt: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """``ds``'s images (floats, laid out as ``fmt``) and labels, on ``device``."""
    x = ds.float_images().to(device).contiguous(memory_format=fmt)
    return x, ds.labels.to(device)


def batch_preparer(recipe: Recipe, train: ImageDataset, fmt: torch.memory_format,
                   generator: torch.Generator, shard: Shard) -> tuple[Prepare, bool]:
    """A batch's way to the step, and whether that way changes nothing.

    The way: ``recipe``'s augmentation (drawn from ``generator``), the layout ``fmt`` for a
    conv model on the CPU, this rank's rows under torchrun.
    """
    aug = None
    if recipe.augment:
        aug = BatchAugment(recipe.augment, black=black_value(train))

    def prepare(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if aug is not None:
            xb = aug(xb, generator)
        if fmt is torch.channels_last:  # index_select (shuffling) gives NCHW batches
            xb = xb.contiguous(memory_format=fmt)
        return shard.split(xb, yb)  # this rank's rows of it

    plain = aug is None and fmt is not torch.channels_last and shard.world == 1
    return prepare, plain
