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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
    optimizer : torch.optim.Optimizer or None
        The run's optimizer; ``optimizer.param_groups[0]["lr"]`` is the learning rate of the
        step in progress (a schedule changes it per step). ``None`` outside a Trainer.

    Examples
    --------
    >>> import torch, fmclassify as fmc
    >>> run = fmc.RunContext(model=torch.nn.Linear(2, 2), history=fmc.History(), epochs=3)
    >>> run.request_stop("enough", status="converged")
    >>> run.stop_requested, run.stop_status
    (True, 'converged')
    """

    model: torch.nn.Module
    history: History
    epochs: int
    epoch: int = 0
    step: int = 0
    optimizer: torch.optim.Optimizer | None = None
    stop_requested: bool = False
    stop_status: Status = "stopped"
    stop_reason: str = ""

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
    """Anything with the four hooks can watch a run; see the module documentation.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> isinstance(fmc.GradientTracer(), fmc.Callback)
    True
    """

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

    Set ``needs_gradients = False`` in a subclass that neither uses ``on_after_backward`` nor
    hooks into the model's own forward or backward pass; the trainer then skips that hook and
    may use a faster step than autograd (``Trainer(step="auto")``). Left ``True`` (the
    default, and what the trainer assumes of a callback without the attribute), every step
    runs through the model's modules and autograd.

    Examples
    --------
    A callback that stops a run once test accuracy passes 90 %:

    >>> import fmclassify as fmc
    >>> class StopAt90(fmc.CallbackBase):
    ...     needs_gradients = False
    ...     def on_epoch_end(self, run, record):
    ...         if record.test_accuracy >= 0.9:
    ...             run.request_stop("reached 90% test accuracy")
    >>> trainer = fmc.Trainer(fmc.build_model("base"), lr=0.1, epochs=50,
    ...                       callbacks=[StopAt90()])
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
