"""Test helpers shared by several test modules."""

from __future__ import annotations

import torch


def make_dataset(n: int = 256, *, size: int = 8, channels: int = 1, classes: int = 4,
                 seed: int = 0, split: str = "train"):
    """A learnable synthetic set: each class lights up its own block of pixels."""
    from fmclassify.data import ImageDataset

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.uint8)
    block = size // classes
    for c in range(classes):
        rows = labels == c
        images[rows, :, c * block:(c + 1) * block, :] += 150
    return ImageDataset(images=images, labels=labels.long(),
                        classes=tuple(f"c{i}" for i in range(classes)),
                        name="synthetic", split=split, checksum=f"synthetic-{seed}")
