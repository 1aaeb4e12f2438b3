"""The Trainer's state in a checkpoint (private): what it saves, and how a run resumes from it.

:mod:`fmclassify.checkpoint` writes and reads the file; here is what the Trainer puts in it
after every finished epoch (model, optimizer, schedule, EMA, random states, callbacks, History)
and how a resumed run takes it back: the finished epochs, the step counter, and the epoch to
go on from, or none when the saved run had already ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fmclassify.callbacks import Callback, RunContext
from fmclassify.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["TrainerState", "restore_state", "save_state"]


@dataclass
class TrainerState:
    """What a checkpoint holds of a run besides its History and step counter."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any  # a torch learning-rate scheduler, or None
    ema: Any  # a torch.optim.swa_utils.AveragedModel, or None
    generator: torch.Generator  # shuffling and augmentation
    callbacks: list[Callback]


def save_state(path: Path, run: RunContext, state: TrainerState) -> None:
    """Write ``run``'s checkpoint to ``path`` (atomically, by :func:`save_checkpoint`)."""
    save_checkpoint(path, model=state.model, optimizer=state.optimizer, history=run.history,
                    generator=state.generator, step=run.step, callbacks=state.callbacks,
                    extra=_extra_states(state))


def _extra_states(state: TrainerState) -> dict[str, Any]:
    return {"schedule": state.schedule.state_dict() if state.schedule is not None else None,
            "ema": state.ema.state_dict() if state.ema is not None else None}


def restore_state(path: Path, run: RunContext, state: TrainerState) -> int | None:
    """Load the checkpoint into model, optimizer, schedule, EMA, RNGs, callbacks and ``run``.

    Returns the first epoch to train, or None when the saved run had ended (converged,
    stopped, diverged): resuming it changes nothing.
    """
    saved, step, extra = load_checkpoint(
        path, model=state.model, optimizer=state.optimizer, metadata=run.history.metadata,
        generator=state.generator, callbacks=state.callbacks)
    if state.schedule is not None and extra.get("schedule") is not None:
        state.schedule.load_state_dict(extra["schedule"])
    if state.ema is not None and extra.get("ema") is not None:
        state.ema.load_state_dict(extra["ema"])
    history = run.history
    history.records.extend(saved.records)
    history.metadata.update({k: v for k, v in saved.metadata.items()
                             if k not in history.metadata})
    run.step = step
    if saved.status in ("converged", "stopped", "diverged"):
        history.status, history.reason = saved.status, saved.reason
        history.diverged_epoch = saved.diverged_epoch
        history.convergence = saved.convergence  # the typed verdict, not only its metadata
        return None  # that run had ended; resuming it changes nothing
    return saved.epochs_trained + 1
