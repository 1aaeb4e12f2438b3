"""The callback protocol: the four moments of a run that other code may watch.

:class:`~fmclassify.Trainer` calls, in order::

    on_fit_start(run)                      once, after the epoch-0 evaluation
    on_after_backward(run)                 every training step, gradients filled, before the step
    on_epoch_end(run, record)              after each epoch's evaluation
    on_fit_end(run, history)               once, whatever ended the run

Each hook receives a :class:`RunContext`, the small face of the run that callbacks may see: the
model, the History so far, the step and epoch counters, and :meth:`RunContext.request_stop`.
A callback never reaches into the Trainer, and never stops a run by raising.

This module sits below the callbacks it serves (convergence, gradients) and the Trainer, so
those can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fmclassify.history import EpochRecord, History, Status

if TYPE_CHECKING:
    import torch

__all__ = ["Callback", "CallbackBase", "RunContext"]


@dataclass
class RunContext:
    """What a callback may see of a running fit.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (its gradients are filled during ``on_after_backward``).
    history : History
        The records so far; ``history.metadata`` describes the run.
    epochs : int
        The epoch budget.
    epoch : int
        The epoch in progress (1-based; 0 before training).
    step : int
        Training steps taken so far (0-based index of the step in progress during
        ``on_after_backward``).
    """

    model: torch.nn.Module
    history: History
    epochs: int
    epoch: int = 0
    step: int = 0
    stop_requested: bool = False
    stop_status: Status = "stopped"
    stop_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def request_stop(self, reason: str, *, status: Status = "stopped") -> None:
        """Ask the trainer to end the run after the current epoch.

        Parameters
        ----------
        reason : str
            A readable sentence stored as the History's ``reason``.
        status : str, default "stopped"
            The History's final status, e.g. ``"converged"``.
        """
        if not self.stop_requested:
            self.stop_requested = True
            self.stop_status = status
            self.stop_reason = reason


@runtime_checkable
class Callback(Protocol):
    """Anything with the four hooks can watch a run; see the module documentation."""

    def on_fit_start(self, run: RunContext) -> None:
        """Called once before the first training epoch."""

    def on_after_backward(self, run: RunContext) -> None:
        """Called after each backward pass, before the optimizer step."""

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Called after each epoch's evaluation with that epoch's record."""

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Called once when the run ends, whatever ended it."""


class CallbackBase:
    """A callback whose hooks do nothing; subclass it and override the ones you need.

    Set ``needs_gradients = False`` in a subclass that does not use ``on_after_backward``; the
    trainer then skips that hook and may use its faster fused step.
    """

    needs_gradients: bool = True

    def on_fit_start(self, run: RunContext) -> None:
        """Called once before the first training epoch."""

    def on_after_backward(self, run: RunContext) -> None:
        """Called after each backward pass, before the optimizer step."""

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Called after each epoch's evaluation with that epoch's record."""

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Called once when the run ends, whatever ended it."""
