"""Which step trains a run, epoch by epoch (private), and how its History names it.

:func:`~fmclassify.steps.choose_step` picks a run's fastest step once, when the Trainer is
made. While a callback reads gradients (a GradientTracer's first steps) the run trains on
autograd instead: :class:`StepChooser` says which of the two trains now, at each epoch's start
(and on a GPU after each step of an epoch that began on autograd). :func:`step_description` is
what ``history.metadata["step"]`` says of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fmclassify.callbacks import Callback
from fmclassify.steps import Step, StepChoice, needs_autograd

__all__ = ["StepChooser", "step_description"]


class StepChooser:
    """Which step trains now: ``chosen``, or ``autograd`` while a callback reads gradients."""

    def __init__(self, chosen: Step, autograd: Step, callbacks: Sequence[Callback]) -> None:
        self.chosen, self.autograd, self.callbacks = chosen, autograd, callbacks

    def __call__(self) -> Step:
        """The step to train on now."""
        if any(needs_autograd(cb) for cb in self.callbacks):
            return self.autograd
        return self.chosen


def step_description(choice: StepChoice, callbacks: Sequence[Callback],
                     together: int | None) -> str:
    """The metadata's ``"step"``: ``choice`` and why, or a group of ``together`` runs as one."""
    watched = any(needs_autograd(cb) for cb in callbacks)
    step = choice.describe(watched=watched)
    if together is not None:
        step = f"together ({together} runs as one batched model)" + (
            " (autograd in epochs where a callback reads gradients)" if watched else "")
    return step
