"""Several runs' steps as one (private): the engine behind :func:`fmclassify.fit_together`.

Each run keeps its own Trainer and epoch loop (its batch order, schedule, divergence,
callbacks, evaluation, checkpoint); only the step is shared. Each run's loop holds a member of
a :class:`Together` group as its step, and the driver hands the group the batches of every run
waiting on it at once. The group trains them as one batched model:

* plain MLPs with plain SGD at a constant rate through :class:`~fmclassify._fused.FusedMLP`'s
  K-model engine (on the CPU one 2-D pass per model, so each run equals, bit for bit, the same
  run trained alone with the fused step);
* any other models of one architecture with SGD (momentum, weight decay, a schedule) through
  :class:`~fmclassify._stacked.StackedModels` (``torch.func.vmap`` over the runs).

The engine's weights (and momentum) go back into the models and their optimizers at every
epoch's end, where evaluation, callbacks and checkpoints read them; the engine is built again
when the runs that train change (one ended: diverged, converged, stopped) or a run's learning
rate did. On the CPU it is built afresh every epoch, as :class:`~fmclassify.steps.FusedStep`'s,
so a run equals the same run trained alone bit for bit. On a GPU it lasts, and its step, with
the gather of every run's rows from the shared training set and the runs' loss sums, is
captured once as a CUDA graph (as :class:`~fmclassify._graph.GraphStep` does for one run), so
K runs cost about the launches of one; each epoch the fused engine reads the models' weights
in place (:meth:`~fmclassify._fused.FusedMLP.read_weights`), and the stacked engine's models
are views of its stacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fmclassify._batching import Batch
from fmclassify._fused import FusedMLP
from fmclassify._stacked import StackedModels
from fmclassify.recipes import Recipe

__all__ = ["Together", "why_not_together"]

_DROPOUT = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
            torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)


def why_not_together(models: Sequence[torch.nn.Module], recipes: Sequence[Recipe]) -> str | None:
    """The reason these runs cannot train as one batched model, or None if they can.

    Plain MLPs with plain SGD train through the fused engine; other models of one architecture
    with SGD through the stacked one (:meth:`StackedModels.supports` says what it needs). Runs
    with an exponential moving average of the weights train alone.
    """
    if not models:
        return "there are no runs"
    if _fusable(models, recipes):
        return None
    if next(models[0].parameters()).device.type == "cuda" and any(
            isinstance(m, _DROPOUT) for m in models[0].modules()):
        # Measured on an H200: vmap's per-run dropout masks inside a captured graph made
        # all runs but the first non-finite within 32 steps; eagerly the stacked step is
        # launch-bound, slower than each run replaying its own graph.
        return "it has dropout, and on a GPU each such run trains faster alone (its own graph)"
    if len({next(m.parameters()).device for m in models}) > 1:
        return "the models are on different devices"
    return StackedModels.supports(models, recipes)


def _fusable(models: Sequence[torch.nn.Module], recipes: Sequence[Recipe]) -> bool:
    if any(FusedMLP.supports(m) is not None or not r.is_plain_sgd
           for m, r in zip(models, recipes, strict=True)):
        return False
    shapes = {tuple(tuple(p.shape) for p in m.parameters()) for m in models}
    return len(shapes) == 1 and len({next(m.parameters()).device for m in models}) == 1


class Together:
    """One step for several runs; each run's loop holds :meth:`member` ``k`` as its step.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        One per run, accepted (with ``recipes``) by :func:`why_not_together`.
    optimizers : sequence of torch.optim.Optimizer
        Each run's SGD: its learning rate is read at every epoch start (every step under a
        schedule), and its momentum buffers are the stacked engine's between epochs.
    recipes : sequence of Recipe
        Each run's recipe.
    """

    name = "together"

    def __init__(self, models: Sequence[torch.nn.Module],
                 optimizers: Sequence[torch.optim.Optimizer], recipes: Sequence[Recipe]) -> None:
        self._models, self._opts, self._recipes = list(models), list(optimizers), list(recipes)
        self._fused = _fusable(self._models, self._recipes)
        self._scheduled = any(r.schedule is not None or r.warmup_epochs for r in self._recipes)
        self.device = next(self._models[0].parameters()).device
        self._sums = torch.zeros(len(self._models), device=self.device)  # per run, this epoch
        self._engine: FusedMLP | StackedModels | None = None
        self._runs: tuple[int, ...] = ()
        self._graph: torch.cuda.CUDAGraph | None = None
        self._rows = torch.empty(0)
        self._inputs: tuple[torch.Tensor, ...] = ()  # what a replay reads
        self._warm, self._size, self._fresh, self._shared = False, 0, True, False
        self._dirty = False
        self._lrs: tuple[float, ...] = ()

    def member(self, k: int) -> _Member:
        """The step object run ``k``'s loop holds."""
        return _Member(self, k)

    def step(self, batches: dict[int, Batch]) -> None:
        """One step of every run in ``batches`` (run index -> its batch), adding to their sums.

        The batches must have one size: the runs share a batch size and a training set size.
        """
        runs = tuple(batches)
        if self._fresh:  # an epoch's first step: the runs and their rates of now
            self._fresh = False
            lrs = tuple(self._opts[k].param_groups[0]["lr"] for k in runs)
            if self._engine is not None and (runs != self._runs or (
                    self._fused and lrs != self._lrs) or self.device.type != "cuda"):
                self._drop()
            elif isinstance(self._engine, FusedMLP):
                self._engine.read_weights()
            elif self._engine is not None:  # the stack's rates, read as the fused engine's
                self._engine.set_lrs(list(lrs))
        if self._engine is None or runs != self._runs:
            self._build(runs)
        if self._scheduled:
            self._engine.set_lrs([self._opts[k].param_groups[0]["lr"] for k in runs])  # type: ignore[union-attr]
        self._dirty = True  # the engine's weights move: write them back at the epoch's end
        first = next(iter(batches.values()))
        on_gpu = self.device.type == "cuda"
        # Runs that share the training set and need nothing done to a batch: the graph
        # gathers their rows itself. Else their prepared batches are copied into it.
        shared = on_gpu and all(b.plain and b.images is first.images
                                and b.labels is first.labels for b in batches.values())
        if shared and self._graph is not None and self._shared and (
                len(first.index) == self._size):  # the common case: two launches
            torch.stack([b.index for b in batches.values()], out=self._inputs[0])
            self._graph.replay()
            return
        inputs = ((torch.stack([b.index for b in batches.values()]),) if shared else
                  tuple(torch.stack(t) for t in zip(*(b.tensors() for b in batches.values()),
                                                    strict=True)))
        size = inputs[0].shape[1]  # B of (K, B) indices or (K, B, C, H, W) images
        if not on_gpu:
            self._run(first, shared, inputs)
        elif self._graph is not None and self._shared == shared and size == self._size:
            for buffer, value in zip(self._inputs, inputs, strict=True):
                buffer.copy_(value)
            self._graph.replay()
        elif self._graph is None and self._warm and size == self._size:
            self._capture(first, shared, inputs)
        else:
            self._eager(first, shared, inputs)

    def loss_sum(self, k: int) -> torch.Tensor:
        """Run ``k``'s training loss this epoch so far, summed over samples."""
        return self._sums[k]

    def begin_epoch(self, k: int, loss_sum: torch.Tensor) -> None:
        """Run ``k`` starts an epoch (or joins mid-epoch) at ``loss_sum``.

        The group checks its engine (the runs, their rates, their weights) at its next step.
        """
        self._sums[k].copy_(loss_sum)
        self._fresh = True

    def write_back(self) -> None:
        """Put the engine's weights (and momentum) into the models and their optimizers."""
        if self._engine is None or not self._dirty:
            return  # once per epoch, not once per run
        self._dirty = False
        self._engine.write_back()
        if isinstance(self._engine, StackedModels):
            for i, k in enumerate(self._runs):
                params = list(self._models[k].parameters())
                for p, buf in zip(params, self._engine.momentum_state(i), strict=True):
                    if buf is not None:
                        self._opts[k].state[p]["momentum_buffer"] = buf

    def _drop(self) -> None:
        self.write_back()
        if isinstance(self._engine, StackedModels):  # the models own their tensors again,
            for k in self._runs:                     # not rows of a stack that pins them all
                for t in (*self._models[k].parameters(), *self._models[k].buffers()):
                    t.data = t.data.clone()
        self._engine, self._graph, self._warm = None, None, False

    def close(self) -> None:
        """The runs ended: weights back into the models, each model's tensors its own."""
        self._drop()

    # -- the pieces ------------------------------------------------------------------------

    def _build(self, runs: tuple[int, ...]) -> None:
        self._drop()
        models = [self._models[k] for k in runs]
        lrs = [self._opts[k].param_groups[0]["lr"] for k in runs]
        self._lrs = tuple(lrs)
        if self._fused:
            self._engine = FusedMLP(models, lrs)
        else:
            engine = StackedModels.from_recipes(models, lrs, [self._recipes[k] for k in runs])
            for i, k in enumerate(runs):
                state = self._opts[k].state
                engine.load_momentum(i, [state[p].get("momentum_buffer") if p in state else None
                                         for p in self._models[k].parameters()])
            self._engine = engine
        for k in runs:  # the engine steps for each run's optimizer; torch's schedulers warn
            self._opts[k]._opt_called = True  # type: ignore[attr-defined]  # unless it is set
        self._runs = runs
        self._rows = torch.tensor(runs, device=self.device)

    def _train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The engine's step on (K, B, ...) images and (K, B) labels; the sums of its runs."""
        losses = self._engine.step(x, y)  # type: ignore[union-attr]
        self._sums.index_add_(0, self._rows, losses * y.shape[1])

    def _run(self, first: Batch, shared: bool, inputs: tuple[torch.Tensor, ...]) -> None:
        """The step on ``inputs``: (K, B) indices into ``first``'s training set, or a batch."""
        if not shared:
            self._train(*inputs)
            return
        index = inputs[0]
        k, b = index.shape
        x = first.images.index_select(0, index.view(-1)).view(k, b, *first.images.shape[1:])
        self._train(x, first.labels.index_select(0, index.view(-1)).view(k, b))

    def _eager(self, first: Batch, shared: bool, inputs: tuple[torch.Tensor, ...]) -> None:
        """A step on a side stream (the warm-up a capture needs), or a batch of another size."""
        if self._graph is not None:
            self._run(first, shared, inputs)
            return
        here = torch.cuda.current_stream()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(here)
        with torch.cuda.stream(side):
            self._run(first, shared, inputs)
        here.wait_stream(side)
        for t in inputs:  # made on this stream, read on the side one: keep them until it has
            t.record_stream(side)
        self._warm, self._size = True, inputs[0].shape[1]

    def _capture(self, first: Batch, shared: bool, inputs: tuple[torch.Tensor, ...]) -> None:
        """Record the step for inputs like these, then replay it once to train on them."""
        self._inputs, self._shared = tuple(t.clone() for t in inputs), shared  # replays read
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._run(first, shared, self._inputs)
        self._graph = graph
        graph.replay()  # the capture only recorded the kernels


class _Member:
    """Run k's view of a :class:`Together`: the step its loop holds, computed by the group."""

    name = "together"

    def __init__(self, group: Together, k: int) -> None:
        self.group, self.k = group, k

    def begin_epoch(self, loss_sum: torch.Tensor) -> None:
        """Run k's sum starts at ``loss_sum``; the group checks its engine at its next step."""
        self.group.begin_epoch(self.k, loss_sum)

    def __call__(self, batch: Batch) -> None:
        """One run alone: a group of one."""
        self.group.step({self.k: batch})

    def loss_sum(self) -> torch.Tensor:
        """Run k's training loss this epoch so far, summed over samples."""
        return self.group.loss_sum(self.k)

    def end_epoch(self) -> None:
        """The models hold the epoch's weights from here on."""
        self.group.write_back()
