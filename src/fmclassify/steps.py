"""The step strategies the Trainer's loop calls: autograd for any model, faster ones behind it.

A step takes one training batch through forward, loss, backward and the optimizer's update,
and returns the batch's mean loss as a 0-d tensor on the device (never ``.item()``: a host sync
per step stalls a GPU). The loop around it (:meth:`fmclassify.Trainer.fit`) is the same for
every step; only what happens inside one step differs:

``"autograd"``
    ``loss.backward()`` and ``optimizer.step()``: any model, any recipe, callbacks see the
    gradients after backward (``on_after_backward``), before clipping and the update.
``"fused"``
    :class:`fmclassify._fused.FusedMLP`: a plain MLP trained with plain SGD at a constant rate,
    forward, backward and update written out as a few matrix products. Equal to autograd
    within float rounding; measured against it in ``benchmarks/step_speed.py``. The weights
    are copied in at the start of an epoch and written back at its end, so the model is exact
    at every epoch boundary (evaluation, callbacks, checkpoints).
``"compiled"``
    autograd through ``torch.compile(model)``: the first steps pay the compilation.
``"auto"`` (the Trainer's default)
    ``"fused"`` where :func:`why_not_fused` finds nothing against it, else ``"autograd"``;
    chosen per epoch, so an epoch in which a callback reads gradients (a
    :class:`~fmclassify.GradientTracer` still recording) runs through autograd.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from fmclassify._fused import FusedMLP
from fmclassify.callbacks import Callback, RunContext
from fmclassify.recipes import Recipe

__all__ = ["STEPS", "AutogradStep", "FusedStep", "Step", "needs_autograd", "why_not_fused"]

#: The values of ``Trainer(step=...)``.
STEPS = ("auto", "autograd", "fused", "compiled")


class Step(Protocol):
    """What the loop calls: one training step per batch, and the two epoch boundaries."""

    name: str

    def begin_epoch(self) -> None:
        """Called before the epoch's first batch."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Train on one batch; return its mean loss before the update (a 0-d device tensor)."""

    def end_epoch(self) -> None:
        """Called after the epoch's last batch (also when it ended early): the model is exact."""


def needs_autograd(callback: Callback) -> bool:
    """Whether ``callback`` needs the model's own passes now (``needs_gradients``, default True)."""
    return bool(getattr(callback, "needs_gradients", True))


def why_not_fused(model: torch.nn.Module, recipe: Recipe) -> str | None:
    """The reason the fused MLP step cannot train ``model`` with ``recipe``, or None if it can.

    Callbacks are judged per epoch by the Trainer (:func:`needs_autograd`).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> why_not_fused(fmc.build_model("base"), Recipe()) is None
    True
    >>> why_not_fused(fmc.build_model("deeper"), Recipe())
    'has Conv2d'
    >>> why_not_fused(fmc.build_model("base"), Recipe(momentum=0.9))
    'the recipe is not plain SGD at a constant rate'
    """
    reason = FusedMLP.supports(model)
    if reason is not None:
        return reason
    if not recipe.is_plain_sgd:
        return "the recipe is not plain SGD at a constant rate"
    return None


class AutogradStep:
    """A step through the model's modules and autograd; see the module documentation.

    Parameters
    ----------
    model : torch.nn.Module
        The model (or a compiled forward of it, ``forward``).
    optimizer : torch.optim.Optimizer
        Updates the model's parameters.
    recipe : Recipe
        Its ``label_smoothing``, ``clip_grad_norm`` and ``precision`` apply here.
    run : RunContext
        Handed to the callbacks' ``on_after_backward``.
    callbacks : sequence of Callback
        Those for which :func:`needs_autograd` holds get ``on_after_backward`` every step.
    forward : callable, optional
        What computes the logits; default ``model`` (``torch.compile(model)`` for
        ``"compiled"``).
    name : str, default "autograd"
        For the History's metadata.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe,
                 run: RunContext, callbacks: Sequence[Callback], *,
                 forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 name: str = "autograd") -> None:
        self.name = name
        self._forward = forward if forward is not None else model
        self._opt = optimizer
        self._run = run
        self._callbacks = list(callbacks)
        self._watchers: list[Callback] = []
        self._smoothing = recipe.label_smoothing
        self._clip = recipe.clip_grad_norm
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._autocast = autocast(recipe.precision, model)

    def begin_epoch(self) -> None:
        """Pick the callbacks that watch gradients in this epoch."""
        self._watchers = [cb for cb in self._callbacks if needs_autograd(cb)]

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, backward, callbacks, clipping, update; the loss before the update."""
        with self._autocast():
            loss = F.cross_entropy(self._forward(x), y, label_smoothing=self._smoothing)
        self._opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        for cb in self._watchers:
            cb.on_after_backward(self._run)  # raw gradients, before clipping and the step
        if self._clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self._clip)
        self._opt.step()
        return loss.detach()

    def end_epoch(self) -> None:
        """Nothing to do: autograd updates the model's own parameters."""


class FusedStep:
    """The fused MLP step (:class:`~fmclassify._fused.FusedMLP`); see the module documentation.

    Parameters
    ----------
    model : torch.nn.Module
        A model for which :func:`why_not_fused` returns None.
    optimizer : torch.optim.Optimizer
        Plain SGD; its learning rate is read at every epoch start.
    """

    name = "fused"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._model = model
        self._opt = optimizer
        self._engine: FusedMLP | None = None

    def begin_epoch(self) -> None:
        """Copy the weights into the engine."""
        self._engine = FusedMLP([self._model], [self._opt.param_groups[0]["lr"]])

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, backward and SGD update in one call; the loss before the update."""
        if self._engine is None:  # pragma: no cover - the loop calls begin_epoch first
            raise RuntimeError("FusedStep called outside an epoch; call begin_epoch() first")
        return self._engine.step(x, y)[0]

    def end_epoch(self) -> None:
        """Write the trained weights back into the model (also after a divergence)."""
        if self._engine is not None:
            self._engine.write_back()
            self._engine = None


def autocast(precision: str, model: torch.nn.Module) -> Callable[[], Any]:
    """A factory of the forward pass's autocast context: bfloat16 for ``"bf16"``, else none."""
    if precision != "bf16":
        return contextlib.nullcontext
    device = next(model.parameters()).device.type

    def context() -> Any:
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    return context
