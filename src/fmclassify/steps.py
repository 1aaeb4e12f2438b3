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
``"graph"``
    :class:`GraphStep`, CUDA only: forward, backward, clipping and the SGD update captured
    once as a CUDA graph (:class:`torch.cuda.CUDAGraph`) and replayed for every batch, so a
    step costs one launch instead of dozens (at the course's batch of 64 a GPU step is all
    launch overhead). The same kernels as autograd, on the same weights and optimizer state.
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

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from fmclassify._fused import FusedMLP
from fmclassify.callbacks import Callback, RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.recipes import Recipe

__all__ = ["FASTER", "STEPS", "AutogradStep", "FusedStep", "GraphStep", "Step", "StepChoice",
           "Together", "choose_step", "needs_autograd", "why_not_fused", "why_not_graph",
           "why_not_together"]

#: The values of ``Trainer(step=...)``.
STEPS = ("auto", "autograd", "fused", "graph", "compiled")


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


def why_not_graph(model: torch.nn.Module, recipe: Recipe) -> str | None:
    """The reason the CUDA-graph step cannot train ``model`` with ``recipe``, or None if it can.

    A captured graph replays fixed kernels on fixed memory: the model must be on a CUDA
    device, and the update must be one the graph can hold, plain SGD (momentum, Nesterov and
    weight decay included) at a learning rate that stays constant (no schedule: the graph
    bakes the rate into its update kernels).

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
    if recipe.schedule is not None or recipe.warmup_epochs:
        return "a schedule changes the learning rate every step"
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks:
            return "the model has module hooks (Python code in the step)"
    return None


#: The faster steps ``"auto"`` tries, in order, per device type, each with the function that
#: says why it cannot train a run (None when it can). A new step is one entry here, one in
#: :data:`STEPS` and one in :func:`make_step`.
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
              recipe: Recipe, run: RunContext, callbacks: Sequence[Callback], *,
              forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Step:
    """The step object called ``name`` (a :class:`StepChoice`'s), for one run.

    ``forward`` is what computes the logits for autograd (DistributedDataParallel's wrapper
    under torchrun); ``"compiled"`` compiles it.
    """
    if name == "fused":
        return FusedStep(model, optimizer)
    if name == "graph":
        return GraphStep(model, optimizer, recipe)
    if name == "compiled":
        return AutogradStep(model, optimizer, recipe, run, callbacks, name="compiled",
                            forward=torch.compile(forward if forward is not None else model))
    return AutogradStep(model, optimizer, recipe, run, callbacks, forward=forward)


def _name(value: object) -> str:
    return repr(value) if isinstance(value, str) else getattr(value, "__name__", "a callable")


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


class GraphStep:
    """Forward, backward, clipping and the SGD update as one replayed CUDA graph.

    The first :attr:`WARMUP` steps run eagerly on a side stream (real training steps: they
    create the optimizer's momentum buffers and warm cuBLAS, as a capture requires); the next
    full batch is captured into a :class:`torch.cuda.CUDAGraph` and every later batch of that
    size is copied into the graph's input buffers and replayed: one launch per step. A batch
    of another size (the epoch's last, smaller one) takes an eager step on the same
    gradients, weights and optimizer state. Nothing is read back to the host.

    The replayed kernels are those an autograd step launches, so a model without dropout
    trains to within float rounding of ``step="autograd"`` (``tests/test_gpu.py``); dropout
    masks come from the graph's own Philox offsets, reproducible for a seed but not the
    masks an eager run draws.

    Parameters
    ----------
    model : torch.nn.Module
        On a CUDA device; :func:`why_not_graph` returns None for it.
    optimizer : torch.optim.Optimizer
        SGD at a constant learning rate.
    recipe : Recipe
        Its ``label_smoothing``, ``clip_grad_norm`` and ``precision`` apply here.

    Notes
    -----
    The loss returned is the graph's output buffer: read it (or add it to a sum, as the
    Trainer's loop does) before the next call overwrites it.
    """

    name = "graph"
    #: Eager steps before the capture.
    WARMUP = 3

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 recipe: Recipe) -> None:
        self._model = model
        self._opt = optimizer
        self._smoothing = recipe.label_smoothing
        self._clip = recipe.clip_grad_norm
        self._params = [p for p in model.parameters() if p.requires_grad]
        # The autocast cache keeps casts across calls, which a capture forbids.
        self._autocast = autocast(recipe.precision, model, cache=False)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._x = self._y = self._loss = torch.empty(0)
        self._grads: list[torch.Tensor | None] = []
        self._eager = 0
        self._side = torch.cuda.Stream(device=self._params[0].device)

    def begin_epoch(self) -> None:
        """Nothing to do: the graph, once captured, serves every epoch."""

    def end_epoch(self) -> None:
        """Nothing to do: the graph updates the model's own parameters."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Train on one batch; return its mean loss before the update (a device tensor)."""
        if self._graph is not None and x.shape == self._x.shape:
            self._x.copy_(x)
            self._y.copy_(y)
            self._graph.replay()
            return self._loss
        if self._graph is None and self._eager >= self.WARMUP:
            return self._capture(x, y)
        return self._eager_step(x, y)

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            loss = F.cross_entropy(self._model(x), y, label_smoothing=self._smoothing)
        loss.backward()  # type: ignore[no-untyped-call]
        if self._clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self._clip)
        self._opt.step()
        return loss.detach()

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A plain step: on a side stream before the capture, on the graph's gradients after."""
        self._eager += 1
        if self._graph is not None:  # accumulate into the graph's gradient buffers, zeroed
            for p, g in zip(self._params, self._grads, strict=True):
                p.grad = g
                if g is not None:
                    g.zero_()
            return self._forward_backward(x, y)
        self._opt.zero_grad(set_to_none=True)
        here = torch.cuda.current_stream()
        self._side.wait_stream(here)
        with torch.cuda.stream(self._side):
            loss = self._forward_backward(x, y)
        here.wait_stream(self._side)
        for t in (x, y):  # made on this stream, read on the side one: keep them until it has
            t.record_stream(self._side)
        loss.record_stream(here)
        return loss

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Record the step on this batch's shapes, then replay it once to train on the batch."""
        self._x, self._y = x.clone(), y.clone()
        self._opt.zero_grad(set_to_none=True)  # the capture allocates the gradients it owns
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._loss = self._forward_backward(self._x, self._y)
        self._grads = [p.grad for p in self._params]
        self._graph = graph
        graph.replay()  # the capture only recorded the kernels
        return self._loss


def why_not_together(models: Sequence[torch.nn.Module], recipes: Sequence[Recipe]) -> str | None:
    """The reason these runs cannot train as one batched model, or None if they can.

    Runs train together through :class:`~fmclassify._fused.FusedMLP`'s K-model engine: plain
    MLPs of one shape, each with plain SGD at a constant rate of its own (learning rates and
    seeds may differ).
    """
    if not models:
        return "there are no runs"
    for model, recipe in zip(models, recipes, strict=True):
        reason = why_not_fused(model, recipe)
        if reason is not None:
            return reason
    shapes = {tuple(tuple(p.shape) for p in m.parameters()) for m in models}
    if len(shapes) > 1:
        return "the models differ in their layer sizes"
    if len({next(m.parameters()).device for m in models}) > 1:
        return "the models are on different devices"
    return None


class Together:
    """One step for several runs: their models trained as one batched model.

    Each run's epoch loop (:meth:`fmclassify.Trainer.fit`'s) holds a :meth:`member` as its
    step and asks its driver (:func:`fmclassify.training.fit_together`) for each batch; the
    driver hands the batches of every run waiting on this group to :meth:`step` at once. The
    engine is built from the models at the first step of an epoch (so a run that ended,
    diverged or converged, drops out, and each run's learning rate is read then) and writes
    the weights back at the epoch's end, as :class:`FusedStep` does for one run.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        One per run, accepted by :func:`why_not_together`.
    optimizers : sequence of torch.optim.Optimizer
        Each run's SGD; its learning rate is read at every epoch start.
    """

    name = "together"

    def __init__(self, models: Sequence[torch.nn.Module],
                 optimizers: Sequence[torch.optim.Optimizer]) -> None:
        self._models = list(models)
        self._opts = list(optimizers)
        self._engine: FusedMLP | None = None
        self._runs: tuple[int, ...] = ()

    def member(self, k: int) -> Step:
        """The step object run ``k``'s loop holds."""
        return _Member(self, k)

    def step(self, batches: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """One step of every run in ``batches`` (run index -> its batch); their losses, in order.

        The batches must have one shape: the runs share a batch size and a training set size.
        """
        runs = tuple(batches)
        if self._engine is None or runs != self._runs:
            self.write_back()
            self._engine = FusedMLP([self._models[k] for k in runs],
                                    [self._opts[k].param_groups[0]["lr"] for k in runs])
            self._runs = runs
        x = torch.stack([b[0] for b in batches.values()])  # (K, B, C, H, W)
        y = torch.stack([b[1] for b in batches.values()])  # (K, B)
        return list(self._engine.step(x, y).unbind())

    def write_back(self) -> None:
        """Copy the trained weights into the models, and rebuild the engine at the next step."""
        if self._engine is not None:
            self._engine.write_back()
            self._engine = None


class _Member:
    """Run k's view of a :class:`Together`: the loop's step, computed by the group."""

    name = "together"

    def __init__(self, group: Together, k: int) -> None:
        self.group, self.k = group, k

    def begin_epoch(self) -> None:
        """Make the group build its engine afresh at its next step (weights, rates)."""
        self.group.write_back()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One run alone: a group of one."""
        return self.group.step({self.k: (x, y)})[0]

    def end_epoch(self) -> None:
        """The models hold the epoch's weights from here on."""
        self.group.write_back()


def autocast(precision: str, model: torch.nn.Module, *, cache: bool = True
             ) -> Callable[[], Any]:
    """A factory of the forward pass's autocast context: bfloat16 for ``"bf16"``, else none.

    The one place bf16 autocast is set up: the Trainer's steps and evaluation and
    :func:`~fmclassify.lr_find` use it. ``cache=False`` for a CUDA graph capture.
    """
    if precision != "bf16":
        return contextlib.nullcontext
    device = next(model.parameters()).device.type

    def context() -> Any:
        return torch.autocast(device_type=device, dtype=torch.bfloat16, cache_enabled=cache)

    return context
