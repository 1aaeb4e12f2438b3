"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the model and optimizer states, the learning-rate schedule's and the weight
average's (EMA) states, the random states (the shuffling and augmentation generator and torch's
global generator, which drives dropout), the step counter, the callbacks' states and the
History so far. It is written atomically after every finished epoch, and it loads with
``torch.load(..., weights_only=True)``: it contains only tensors and plain Python data, so
loading one never runs code.

A checkpoint remembers the configuration that wrote it. Resuming with another model, learning
rate, batch size, recipe, seed or data is refused with a message naming both, since the
continued run would silently be a different experiment.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fmclassify._io import atomic_write_bytes
from fmclassify.exceptions import CheckpointError
from fmclassify.history import History

__all__ = ["CONFIG_KEYS", "load_checkpoint", "read_checkpoint_history", "save_checkpoint"]

_FORMAT = "fmclassify.checkpoint/1"

#: Metadata keys that must match for a checkpoint to be resumed.
CONFIG_KEYS = ("model", "parameters", "lr", "batch_size", "optimizer", "momentum", "nesterov",
               "weight_decay", "schedule", "warmup_epochs", "label_smoothing", "clip_grad_norm",
               "augment", "val_split", "precision", "ema", "seed", "shuffle", "dataset",
               "train_size", "val_size", "test_size", "data_checksum")


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    history: History,
    generator: torch.Generator,
    step: int,
    callbacks: Sequence[object] = (),
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path : path-like
        Where to write it.
    model, optimizer : torch objects
        Their ``state_dict()`` is saved.
    history : History
        The records so far.
    generator : torch.Generator
        The shuffling generator, saved at the epoch boundary.
    step : int
        Training steps taken so far.
    callbacks : sequence
        Callbacks with a ``state_dict()`` method have it saved, by position.
    extra : mapping, optional
        Further states by name (the Trainer's schedule and EMA), tensors and plain data only.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    payload = {
        "format": _FORMAT,
        "model": {k: _own(v) for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "history": history.to_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "step": step,
        "callbacks": [_callback_state(cb) for cb in callbacks],
        "extra": dict(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _own(tensor: Any) -> Any:
    """``tensor``, or a copy of it when it is a view of a larger storage.

    ``torch.save`` writes a view's whole storage, and runs trained together hold their
    weights as rows of one stack.
    """
    if isinstance(tensor, torch.Tensor) and (
            tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size()):
        return tensor.clone()
    return tensor


def _callback_state(callback: object) -> dict[str, Any] | None:
    state_dict = getattr(callback, "state_dict", None)
    return state_dict() if callable(state_dict) else None


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {os.fspath(path)!r} does not exist") from None
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} cannot be read ({type(exc).__name__}: "
            f"{first_line}); "
            "it is damaged or not an fmclassify checkpoint: delete it to start afresh"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(
            f"{os.fspath(path)!r} is not an fmclassify checkpoint (format {_FORMAT!r} expected)"
        )
    return payload


def read_checkpoint_history(path: str | os.PathLike[str]) -> History:
    """The History stored in a checkpoint, without touching any model.

    Raises
    ------
    CheckpointError
        If the file is missing, damaged, or not a checkpoint.
    """
    return History.from_dict(_read(path)["history"])


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    metadata: Mapping[str, Any],
    generator: torch.Generator,
    callbacks: Sequence[object] = (),
) -> tuple[History, int, dict[str, Any]]:
    """Restore a checkpoint into the given objects.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save_checkpoint`.
    model, optimizer, generator : torch objects
        Loaded in place.
    metadata : mapping
        The configuration of the run that resumes; the keys in :data:`CONFIG_KEYS` must match
        the checkpoint's.
    callbacks : sequence
        Callbacks with ``load_state_dict`` get their saved state back, by position.

    Returns
    -------
    (History, int, dict)
        The saved History, the number of training steps taken, and the ``extra`` states.

    Raises
    ------
    CheckpointError
        If the file is unreadable, or was written by another model or configuration.
    """
    payload = _read(path)
    saved = History.from_dict(payload["history"])
    diffs = [f"{k}: checkpoint {saved.metadata.get(k)!r}, this run {metadata.get(k)!r}"
             for k in CONFIG_KEYS if saved.metadata.get(k) != metadata.get(k)]
    if diffs:
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} belongs to another run ({'; '.join(diffs)}); "
            "resume with the same configuration, or delete it / choose another checkpoint path"
        )
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} does not fit this model: {exc}"
        ) from None
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    for callback, state in zip(callbacks, payload["callbacks"], strict=False):
        load = getattr(callback, "load_state_dict", None)
        if state is not None and callable(load):
            load(state)
    return saved, int(payload["step"]), dict(payload.get("extra", {}))
