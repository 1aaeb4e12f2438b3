"""What a run records about itself (private): ``History.metadata``.

The configuration (model, learning rate, budget, recipe, seed), the data (name, sizes,
checksums), where and how it trained (device, threads, processes, which step) and the versions
of the library and its stack. :mod:`fmclassify.checkpoint` compares the configuration keys
(``CONFIG_KEYS``) before it lets a run resume.
"""

from __future__ import annotations

import platform
from typing import Any, Protocol

import torch

from fmclassify.data import ImageDataset
from fmclassify.recipes import Recipe

__all__ = ["Configured", "model_name", "run_metadata"]


class Configured(Protocol):
    """The public configuration of a run that its metadata records (a Trainer's)."""

    model: torch.nn.Module
    lr: float
    epochs: int
    batch_size: int
    recipe: Recipe
    seed: int
    shuffle: bool
    device: torch.device


def run_metadata(config: Configured, train: ImageDataset, test: ImageDataset, *, held: int,
                 world: int, step: str) -> dict[str, Any]:
    """The metadata of a run of ``config`` on ``train`` and ``test``.

    ``held`` images of ``train`` are held out for validation, ``world`` processes train the
    run, and ``step`` says which step trains it and why.
    """
    import torchvision

    from fmclassify._version import __version__

    return {
        "model": model_name(config.model),
        "lr": config.lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        **config.recipe.describe(),
        "seed": config.seed,
        "shuffle": config.shuffle,
        "parameters": sum(p.numel() for p in config.model.parameters() if p.requires_grad),
        "dataset": train.name,
        "num_classes": train.num_classes,
        "train_size": len(train) - held,
        "val_size": held,
        "test_size": len(test),
        "data_checksum": train.checksum + ("+" + test.checksum if test.checksum else ""),
        "device": str(config.device),
        "threads": torch.get_num_threads(),
        "world_size": world,
        "step": step,
        "versions": {"fmclassify": __version__, "torch": str(torch.__version__),
                     "torchvision": str(torchvision.__version__),
                     "python": platform.python_version()},
    }


def model_name(model: torch.nn.Module) -> str:
    """The name a run records for ``model``: its registered name, else its class's."""
    return str(getattr(model, "fmclassify_name", type(model).__name__))
