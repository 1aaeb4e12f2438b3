"""The CUDA-graph step (private): a training step replayed as one captured graph.

At the course's batch of 64 a GPU step is all launch overhead: a few dozen tiny kernels, each
launched from Python, and no work to hide them behind. :class:`GraphStep` records the whole
step once with :class:`torch.cuda.CUDAGraph` and replays it:

* **the batch's gather** from the training set on the device (the batch's row indices are
  copied into the graph's index buffer: one small copy), when the batch is plain (no
  augmentation, one process); else the prepared batch is copied into the graph's input
  buffers;
* forward, loss, backward, gradient clipping and the SGD update (momentum, Nesterov and
  weight decay included), the kernels autograd launches, on the model's own parameters,
  gradients and momentum buffers. ``torch.optim.SGD`` would bake the learning rate into
  its kernels as a number, so the graph's update is :func:`sgd_update`, SGD's formulas on a
  rate held in a device tensor, refilled from the optimizer's every step under a schedule
  and every epoch otherwise (one small kernel, no copy from the host);
* the epoch's loss sum, accumulated on the device, so the loop reads it only at its
  divergence checks.

So a step costs two launches. Nothing in a replayed step reads a value back to the host.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fmclassify._batching import Batch
from fmclassify.exceptions import ConfigError
from fmclassify.recipes import Recipe, autocast

__all__ = ["GraphStep", "sgd_update"]


class GraphStep:
    """Gather, forward, backward, clipping, SGD update and loss sum as one replayed CUDA graph.

    The first :attr:`WARMUP` steps run eagerly on a side stream (real training steps: they
    create the optimizer's momentum buffers and warm cuBLAS, as a capture requires); the next
    full batch is captured and every later batch of that size replays it. A batch of another
    size (the epoch's last, smaller one) takes an eager step on the graph's own gradients,
    weights and optimizer state.

    The replayed kernels are those an autograd step launches, so a model without dropout
    trains to within float rounding of ``step="autograd"`` (``tests/test_gpu.py``); dropout
    masks come from the graph's own Philox offsets, reproducible for a seed but not the
    masks an eager run draws.

    Parameters
    ----------
    model : torch.nn.Module
        On a CUDA device; :func:`fmclassify.steps.why_not_graph` returns None for it.
    optimizer : torch.optim.Optimizer
        SGD; its learning rate is read every step under a schedule, else every epoch.
    recipe : Recipe
        Its ``label_smoothing``, ``clip_grad_norm`` and ``precision`` apply here.
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
        device = self._params[0].device
        group = optimizer.param_groups[0]
        self._scheduled = recipe.schedule is not None or recipe.warmup_epochs > 0
        self._lr = torch.tensor(float(group["lr"]), device=device)  # refilled every step
        self._sgd = (float(group.get("momentum", 0.0)), bool(group.get("nesterov", False)),
                     float(group.get("weight_decay", 0.0)))
        # The autocast cache keeps casts across calls, which a capture forbids.
        self._autocast = autocast(recipe.precision, model, cache=False)
        self._sum = torch.zeros((), device=device)  # the graph adds to it: one tensor, always
        self._graph: torch.cuda.CUDAGraph | None = None
        self._warm = False  # the warm-up is over: the update is sgd_update from here on
        self._full = 0  # the size of a full batch, the one the graph is captured for
        self._inputs: tuple[torch.Tensor, ...] = ()  # what a replay reads: index, or x and y
        self._source: tuple[torch.Tensor, torch.Tensor] | None = None  # gathered from
        self._grads: list[torch.Tensor | None] = []
        self._eager = 0
        self._side = torch.cuda.Stream(device=device)

    def begin_epoch(self, loss_sum: torch.Tensor) -> None:
        """Start the epoch's loss sum at ``loss_sum``; read the epoch's learning rate.

        Both in place: the graph reads these tensors.
        """
        self._sum.copy_(loss_sum)
        self._lr.fill_(self._opt.param_groups[0]["lr"])

    def loss_sum(self) -> torch.Tensor:
        """The epoch's training loss so far, summed over samples."""
        return self._sum

    def end_epoch(self) -> None:
        """Nothing to do: the graph updates the model's own parameters."""

    def __call__(self, batch: Batch) -> None:
        """Train on one batch: replay the graph where it fits the batch, else an eager step."""
        if self._scheduled:  # this step's rate, for a replay (a fill: no host copy)
            self._lr.fill_(self._opt.param_groups[0]["lr"])
        self._full = max(self._full, len(batch.index))  # a full batch, not an epoch's last
        if self._graph is not None and self._fits(batch):
            if batch.plain:
                self._inputs[0].copy_(batch.index)
            else:
                for buffer, value in zip(self._inputs, batch.tensors(), strict=True):
                    buffer.copy_(value)
            self._graph.replay()
        elif (self._graph is None and self._eager >= self.WARMUP
              and len(batch.index) == self._full):  # never capture a smaller last batch
            self._capture(batch)
        else:
            self._eager_step(*batch.tensors())

    def _fits(self, batch: Batch) -> bool:
        """Whether the captured graph takes ``batch``: its kind, size and training set."""
        if batch.plain != (self._source is not None) or len(batch.index) != self._size:
            return False
        return self._source is None or (batch.images is self._source[0]
                                        and batch.labels is self._source[1])

    def _train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with self._autocast():
            loss = F.cross_entropy(self._model(x), y, label_smoothing=self._smoothing)
        loss.backward()  # type: ignore[no-untyped-call]
        if self._clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self._clip)
        if self._warm:  # the captured update, also in an eager step after the capture
            state = self._opt.state
            sgd_update(self._params, [state[p].get("momentum_buffer") for p in self._params],
                       self._lr, *self._sgd)
        else:  # the warm-up: SGD's own step, which makes the momentum buffers
            self._opt.step()
        self._sum += loss.detach() * y.shape[0]

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """A plain step: on a side stream before the capture, on the graph's gradients after."""
        self._eager += 1
        if self._graph is not None:  # accumulate into the graph's gradient buffers, zeroed
            for p, g in zip(self._params, self._grads, strict=True):
                p.grad = g
                if g is not None:
                    g.zero_()
            self._train(x, y)
            return
        self._opt.zero_grad(set_to_none=True)
        here = torch.cuda.current_stream()
        self._side.wait_stream(here)
        with torch.cuda.stream(self._side):
            self._train(x, y)
        here.wait_stream(self._side)
        for t in (x, y):  # made on this stream, read on the side one: keep them until it has
            t.record_stream(self._side)

    def _capture(self, batch: Batch) -> None:
        """Record the step for batches like ``batch``, then replay it once to train on it."""
        self._size = len(batch.index)
        if batch.plain:
            self._source = (batch.images, batch.labels)
            self._inputs = (batch.index.clone(),)
        else:
            self._inputs = tuple(t.clone() for t in batch.tensors())
        self._opt.zero_grad(set_to_none=True)  # the capture allocates the gradients it owns
        self._warm = True
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                if batch.plain:
                    index = self._inputs[0]
                    self._train(batch.images.index_select(0, index),
                                batch.labels.index_select(0, index))
                else:
                    self._train(*self._inputs)
        except RuntimeError as exc:  # e.g. a host read in the model's forward (.item())
            raise ConfigError(
                f"the model's step cannot be captured as a CUDA graph ({exc}); train it with "
                "step='autograd'") from exc
        self._grads = [p.grad for p in self._params]
        self._graph = graph
        graph.replay()  # the capture only recorded the kernels


def sgd_update(params: list[torch.Tensor], buffers: list[torch.Tensor | None],
               lr: torch.Tensor, momentum: float, nesterov: bool, weight_decay: float) -> None:
    """One step of ``torch.optim.SGD`` (dampening 0) at a learning rate held in a tensor.

    ``g = grad + weight_decay * p``; with momentum ``b = momentum * b + g`` and then
    ``g = g + momentum * b`` (Nesterov) or ``g = b``; ``p = p - lr * g``. The gradients are
    the parameters' ``.grad``; ``buffers`` are the optimizer's momentum buffers (its
    ``state[p]["momentum_buffer"]``, updated in place), which a first step of SGD has made.
    Equal to SGD's step within float rounding (``lr * g`` is rounded before the subtraction).

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -2.0])
    >>> sgd_update([w], [None], torch.tensor(0.5), 0.0, False, 0.0)
    >>> w.data
    tensor([0.5000, 2.0000])
    """
    with torch.no_grad():
        grads = [p.grad for p in params]
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum:
            bufs = [b for b in buffers if b is not None]
            if len(bufs) != len(params):
                raise RuntimeError("sgd_update needs the momentum buffers of a first SGD step")
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads)
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_sub_(params, torch._foreach_mul(grads, lr))
