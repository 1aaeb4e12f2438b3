"""The step strategies the Trainer's loop calls: autograd for any model, faster ones behind it.

A step takes one training batch (a :class:`~fmclassify._batching.Batch`: its rows of the
training set) through forward, loss, backward and the optimizer's update, and adds the batch's
summed loss to the epoch's, a 0-d tensor on the device that the loop reads every few dozen
steps (never ``.item()`` per step: a host sync per step stalls a GPU). The loop around it
(:meth:`fmclassify.Trainer.fit`) is the same for every step; only what happens inside one step
differs:

``"autograd"``
    ``loss.backward()`` and ``optimizer.step()``: any model, any recipe, callbacks see the
    gradients after backward (``on_after_backward``), before clipping and the update.
``"fused"``
    :class:`fmclassify._fused.FusedMLP`: a plain MLP trained with plain SGD at a constant rate,
    forward, backward and update written out as a few matrix products. Equal to autograd
    within float rounding; measured against it in ``benchmarks/step_speed.py``. The weights
    are copied in at the start of an epoch and written back at its end, so the model is exact
    at every epoch boundary (evaluation, callbacks, checkpoints).
``"graph"``
    :class:`~fmclassify._graph.GraphStep`, CUDA only: the batch's gather, forward, backward,
    clipping, the SGD update and the loss sum captured once as a CUDA graph and replayed for
    every batch, so a step costs two launches instead of dozens (at the course's batch of 64
    a GPU step is all launch overhead). The same kernels as autograd.
``"compiled"``
    autograd through ``torch.compile(model)``: the first steps pay the compilation.
``"auto"`` (the Trainer's default)
    The first of the faster steps that :data:`FASTER` lists for the device and whose
    ``why_not_*`` function finds nothing against the run (on CUDA ``"graph"``, then
    ``"fused"``; on the CPU ``"fused"``), else ``"autograd"``, with the reasons recorded
    (:func:`choose_step`). Chosen per epoch, so an epoch in which a callback reads gradients
    (a :class:`~fmclassify.GradientTracer` still recording) runs through autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from fmclassify._batching import Batch
from fmclassify._fused import FusedMLP
from fmclassify._graph import GraphStep
from fmclassify.callbacks import Callback, RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.recipes import Recipe, autocast

__all__ = ["FASTER", "STEPS", "AutogradStep", "Batch", "EpochLoss", "FusedStep", "GraphStep",
           "Step", "StepChoice", "choose_step", "make_step", "needs_autograd", "why_not_fused",
           "why_not_graph"]

#: The values of ``Trainer(step=...)``.
STEPS = ("auto", "autograd", "fused", "graph", "compiled")


class Step(Protocol):
    """What the loop calls: one training step per batch, and the two epoch boundaries."""

    name: str

    def begin_epoch(self, loss_sum: torch.Tensor) -> None:
        """Called before the step's first batch of an epoch, with the epoch's loss so far.

        ``loss_sum`` is zero at the epoch's start, the previous step's sum when the loop
        changes step within an epoch (on a GPU, once a callback stops reading gradients).
        """

    def __call__(self, batch: Batch) -> None:
        """Train on one batch, adding its summed loss (before the update) to the epoch's."""

    def loss_sum(self) -> torch.Tensor:
        """The epoch's training loss so far, summed over samples (a 0-d device tensor)."""

    def end_epoch(self) -> None:
        """Called after the epoch's last batch (also when it ended early): the model is exact."""


class EpochLoss:
    """The epoch's summed training loss, kept on the device: the part every step shares."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._device = next(model.parameters()).device
        self._sum = torch.zeros((), device=self._device)

    def begin_epoch(self, loss_sum: torch.Tensor) -> None:
        """Start the epoch's sum at ``loss_sum`` (zero at an epoch's start)."""
        self._sum = loss_sum.clone()

    def loss_sum(self) -> torch.Tensor:
        """The epoch's training loss so far, summed over samples."""
        return self._sum


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


def why_not_graph(model: torch.nn.Module, recipe: Recipe) -> str | None:
    """The reason the CUDA-graph step cannot train ``model`` with ``recipe``, or None if it can.

    A captured graph replays fixed kernels on fixed memory: the model must be on a CUDA
    device, and the update must be one the graph can hold: SGD (momentum, Nesterov and weight
    decay included), at a constant rate or under a named schedule (which changes only the
    rate, refilled into the graph every step; a callable schedule may change more).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> why_not_graph(fmc.build_model("base"), Recipe())
    'it needs a CUDA device (the model is on cpu)'
    """
    device = next(model.parameters()).device
    if device.type != "cuda":
        return f"it needs a CUDA device (the model is on {device.type})"
    if recipe.optimizer != "sgd":
        return f"the optimizer is {_name(recipe.optimizer)}, not SGD"
    if callable(recipe.schedule):
        return "a callable schedule may change more than the learning rate every step"
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks:
            return "the model has module hooks (Python code in the step)"
    return None


#: The faster steps ``"auto"`` tries, in order, per device type, each with the function that
#: says why it cannot train a run (None when it can). A new step is one entry in
#: :data:`STEPS`, one in the table :func:`make_step` builds from, and, when ``"auto"`` may take
#: it, one here.
FASTER: dict[str, tuple[tuple[str, Callable[[torch.nn.Module, Recipe], str | None]], ...]] = {
    "cuda": (("graph", why_not_graph), ("fused", why_not_fused)),
    "cpu": (("fused", why_not_fused),),
}


@dataclass(frozen=True)
class StepChoice:
    """Which step trains a run, and why the faster ones could not (``History.metadata["step"]``).

    Attributes
    ----------
    name : str
        The step of epochs in which no callback reads gradients: one of :data:`STEPS` but
        ``"auto"``.
    reasons : tuple of (str, str)
        For ``step="auto"``, each faster step passed over and why.
    """

    name: str
    reasons: tuple[tuple[str, str], ...] = ()

    def describe(self, *, watched: bool = False) -> str:
        """One line for the metadata, e.g. ``"autograd (graph: ...; fused: has Conv2d)"``."""
        text = self.name
        if self.reasons:
            text += " (" + "; ".join(f"{k}: {why}" if len(self.reasons) > 1 else why
                                     for k, why in self.reasons) + ")"
        if watched and self.name not in ("autograd", "compiled"):
            text += " (autograd in epochs where a callback reads gradients)"
        return text


def choose_step(kind: str, model: torch.nn.Module, recipe: Recipe, *,
                world: int = 1) -> StepChoice:
    """The step that trains ``model`` with ``recipe``: ``kind``, or for ``"auto"`` the fastest.

    Parameters
    ----------
    kind : str
        One of :data:`STEPS`.
    model : torch.nn.Module
        On its training device.
    recipe : Recipe
        The run's recipe.
    world : int, default 1
        Processes that train the run together (torchrun): the faster steps train one process.

    Raises
    ------
    ConfigError
        For ``"fused"`` or ``"graph"`` asked of a run they cannot train, with the reason.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> choose_step("auto", fmc.build_model("deeper"), Recipe()).describe()
    'autograd (has Conv2d)'
    """
    device = next(model.parameters()).device.type
    faster = dict(FASTER.get(device, ())) | dict(FASTER["cuda"])  # every faster step's check

    def why_not(name: str) -> str | None:
        if world > 1:
            return f"it trains data-parallel over {world} processes"
        return faster[name](model, recipe)

    if kind in faster:
        reason = why_not(kind)
        if reason is not None:
            raise ConfigError(f"step={kind!r} cannot train this run: {reason}; use step='auto' "
                              "or 'autograd'")
        return StepChoice(kind)
    if kind != "auto":
        return StepChoice(kind)
    reasons = []
    for name, _ in FASTER.get(device, ()):
        reason = why_not(name)
        if reason is None:
            return StepChoice(name, tuple(reasons))
        reasons.append((name, reason))
    return StepChoice("autograd", tuple(reasons))


def make_step(name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              recipe: Recipe, run: RunContext | None = None, callbacks: Sequence[Callback] = (),
              *, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Step:
    """The step object called ``name`` (a :class:`StepChoice`'s), for one run.

    Parameters
    ----------
    name : str
        One of :data:`STEPS` but ``"auto"`` (:func:`choose_step` turns ``"auto"`` into one).
    model, optimizer, recipe
        What the step trains, with what, under which recipe.
    run : RunContext, optional
        Handed to the callbacks' ``on_after_backward``; needed only with ``callbacks``
        (:func:`fmclassify.lr_find` has neither).
    callbacks : sequence of Callback, default ()
        The run's callbacks (autograd steps call those that read gradients).
    forward : callable, optional
        What computes the logits for autograd (DistributedDataParallel's wrapper under
        torchrun); ``"compiled"`` compiles it.

    Raises
    ------
    ConfigError
        ``name`` is not a step this table builds, or an autograd step gets callbacks
        without a ``run``.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> model = fmc.build_model("base")
    >>> make_step("autograd", model, torch.optim.SGD(model.parameters(), lr=0.1), Recipe()).name
    'autograd'
    """
    maker = _MAKERS.get(name)
    if maker is None:
        raise ConfigError(f"unknown step {name!r}; make_step builds {', '.join(_MAKERS)} "
                          "(choose_step() turns 'auto' into one of them)")
    return maker(_Parts(model, optimizer, recipe, run, callbacks, forward))


@dataclass(frozen=True)
class _Parts:
    """What :func:`make_step` was given: each maker takes the parts its step needs."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    run: RunContext | None
    callbacks: Sequence[Callback]
    forward: Callable[[torch.Tensor], torch.Tensor] | None

    def autograd(self, name: str, forward: Callable[[torch.Tensor], torch.Tensor] | None
                 ) -> AutogradStep:
        """An autograd step called ``name`` whose logits ``forward`` computes."""
        return AutogradStep(self.model, self.optimizer, self.recipe, self.run, self.callbacks,
                            name=name, forward=forward)


#: The one table from a step's name to what builds it: every name of :data:`STEPS` but
#: ``"auto"``, which :func:`choose_step` resolves to one of these. The fused and graph steps
#: train the model's own layers, so they take no ``forward`` (nor callbacks: in an epoch where
#: one reads gradients the Trainer runs autograd).
_MAKERS: dict[str, Callable[[_Parts], Step]] = {
    "autograd": lambda p: p.autograd("autograd", p.forward),
    "fused": lambda p: FusedStep(p.model, p.optimizer),
    "graph": lambda p: GraphStep(p.model, p.optimizer, p.recipe),
    "compiled": lambda p: p.autograd("compiled", torch.compile(p.model if p.forward is None
                                                                else p.forward)),
}


def _name(value: object) -> str:
    return repr(value) if isinstance(value, str) else getattr(value, "__name__", "a callable")


class AutogradStep(EpochLoss):
    """A step through the model's modules and autograd; see the module documentation.

    Parameters
    ----------
    model : torch.nn.Module
        The model (or a compiled forward of it, ``forward``).
    optimizer : torch.optim.Optimizer
        Updates the model's parameters.
    recipe : Recipe
        Its ``label_smoothing``, ``clip_grad_norm`` and ``precision`` apply here.
    run : RunContext or None
        Handed to the callbacks' ``on_after_backward``; None when there are no callbacks.
    callbacks : sequence of Callback
        Those for which :func:`needs_autograd` holds get ``on_after_backward`` every step.
    forward : callable, optional
        What computes the logits; default ``model`` (``torch.compile(model)`` for
        ``"compiled"``).
    name : str, default "autograd"
        For the History's metadata.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe,
                 run: RunContext | None, callbacks: Sequence[Callback], *,
                 forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 name: str = "autograd") -> None:
        if callbacks and run is None:
            raise ConfigError("AutogradStep got callbacks but no run; pass the RunContext "
                              "their on_after_backward(run) receives")
        super().__init__(model)
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

    def begin_epoch(self, loss_sum: torch.Tensor) -> None:
        """Pick the callbacks that watch gradients in this epoch; the sum starts there."""
        super().begin_epoch(loss_sum)
        self._watchers = [cb for cb in self._callbacks if needs_autograd(cb)]

    def __call__(self, batch: Batch) -> None:
        """Forward, backward, callbacks, clipping, update."""
        x, y = batch.tensors()
        with self._autocast():
            loss = F.cross_entropy(self._forward(x), y, label_smoothing=self._smoothing)
        self._opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if self._run is not None:  # None only without callbacks (checked in __init__)
            for cb in self._watchers:
                cb.on_after_backward(self._run)  # raw gradients, before clipping and the step
        if self._clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self._clip)
        self._opt.step()
        self._sum += loss.detach() * y.shape[0]  # on the device: no sync per step

    def end_epoch(self) -> None:
        """Nothing to do: autograd updates the model's own parameters."""


class FusedStep(EpochLoss):
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
        super().__init__(model)
        self._model = model
        self._opt = optimizer
        self._engine: FusedMLP | None = None

    def begin_epoch(self, loss_sum: torch.Tensor) -> None:
        """Copy the weights into the engine; the loss sum starts at ``loss_sum``."""
        super().begin_epoch(loss_sum)
        self._engine = FusedMLP([self._model], [self._opt.param_groups[0]["lr"]])

    def __call__(self, batch: Batch) -> None:
        """Forward, backward and SGD update in one call."""
        if self._engine is None:  # pragma: no cover - the loop calls begin_epoch first
            raise RuntimeError("FusedStep called outside an epoch; call begin_epoch() first")
        x, y = batch.tensors()
        self._sum += self._engine.step(x, y)[0] * y.shape[0]

    def end_epoch(self) -> None:
        """Write the trained weights back into the model (also after a divergence)."""
        if self._engine is not None:
            self._engine.write_back()
            self._engine = None
