"""What a Trainer checks before it trains (private): its callbacks, and the data against the model.

Each refuses bad input before any work starts, with a message that says how to fix it:
:func:`check_callbacks` when the Trainer is made, :func:`check_start` when ``fit`` starts (a
Trainer fits once; a checkpoint is resumed, not overwritten), :func:`check_data_fits` when
``fit`` (or a sweep, before it hands out its runs) gets the data. :func:`check_data_fits` is a
public name of :mod:`fmclassify.training`, which re-exports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from fmclassify._run_metadata import model_name
from fmclassify.callbacks import Callback
from fmclassify.data import ImageDataset
from fmclassify.exceptions import ConfigError, DataError

__all__ = ["check_callbacks", "check_data_fits", "check_start"]


def check_callbacks(callbacks: Iterable[Callback]) -> list[Callback]:
    """``callbacks`` as a list, each checked for the four hooks of :class:`Callback`."""
    out = list(callbacks)
    for cb in out:
        if not isinstance(cb, Callback):
            raise ConfigError(
                f"callback {cb!r} lacks the hooks on_fit_start, on_after_backward, "
                "on_epoch_end, on_fit_end; subclass fmclassify.CallbackBase")
    return out


def check_data_fits(model: torch.nn.Module, train: ImageDataset, test: ImageDataset,
                    device: torch.device | str = "cpu") -> None:
    """Refuse data that does not fit the model, with one forward pass on two images.

    Raises
    ------
    DataError
        Not ImageDatasets, train and test shapes differ, the images do not fit the model, or
        its outputs do not match the classes; the message says how to build the model.
    """
    for label, ds in (("train", train), ("test", test)):
        if not isinstance(ds, ImageDataset):
            raise DataError(f"{label} must be an ImageDataset from fmclassify.load_dataset, "
                            f"got {type(ds).__name__}")
    if train.image_shape != test.image_shape:
        raise DataError(f"train images are {train.image_shape} but test images are "
                        f"{test.image_shape}; use the two splits of one data set")
    sample = train.float_images()[:2].to(device)
    name = model_name(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except RuntimeError as exc:
        c, h, w = train.image_shape
        raise DataError(
            f"images of shape {train.image_shape} do not fit model {name!r} ({exc}); build "
            f"the model for this data: build_model({name!r}, in_channels={c}, "
            f"image_size={h})" + ("" if h == w else " (the built-in models need square images)")
        ) from None
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] != train.num_classes:
        raise DataError(
            f"model {name!r} outputs shape {tuple(out.shape)} but {train.name or 'the data'} "
            f"has {train.num_classes} classes; build it with num_classes={train.num_classes}")


def check_start(fitted: bool, checkpoint: Path | None, resume: bool) -> None:
    """Refuse a second fit of one Trainer (``fitted``), and a fresh run over a checkpoint.

    Raises
    ------
    ConfigError
        Saying how to start a new run or resume the old one.
    """
    if fitted:
        raise ConfigError(
            "this Trainer already ran fit(); create a new Trainer for a new run, or resume "
            "from its checkpoint with Trainer(..., checkpoint=PATH).fit(..., resume=True)")
    if checkpoint is not None and checkpoint.exists() and not resume:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} already exists; pass resume=True to "
            "continue that run, or delete the file (or choose another path) to start afresh")
