"""Train K multilayer perceptrons together with hand-written backpropagation and plain SGD.

A private engine behind :class:`~fmclassify.steps.FusedStep`, which trains one model with it
(the engine also takes K models at once). For an MLP (``Flatten?, Linear, ReLU, ...,
Linear``) the whole training step is a handful of matrix
products, and at the course's batch of 64 autograd's bookkeeping (graph nodes, ``.grad``
tensors, the optimizer's loop over parameters) costs about as much as the products themselves.
:class:`FusedMLP` writes the step out by hand:

* forward, for layer ``l = 1..L``: ``h_l = relu(h_{l-1} W_l^T + b_l)``, logits
  ``z = h_{L-1} W_L^T + b_L`` (no ReLU on the last layer);
* loss: cross-entropy ``logsumexp(z) - z[y]``, the mean over the batch;
* backward (Bishop, *Pattern Recognition and Machine Learning*, 2006, eqs. 4.109 and
  5.53-5.56): ``g_L = (softmax(z) - onehot(y)) / B``; for ``l = L..1``: ``dW_l = g_l^T h_{l-1}``,
  ``db_l = sum_over_batch(g_l)``, ``g_{l-1} = (g_l W_l) * [h_{l-1} > 0]``;
* SGD: ``W_l -= lr * dW_l``, ``b_l -= lr * db_l``.

Choices a reader might question:

* **The learning rate is folded into** ``g_L``. Every ``g_l`` is linear in ``g_L``, so scaling
  ``g_L`` by ``lr / B`` (a small (K, B, classes) tensor) scales every gradient by it, and each
  update becomes one in-place GEMM with ``alpha=-1``: ``W^T.addmm_(h^T, g, alpha=-1)`` computes
  ``W^T - lr * dW^T`` without materializing ``dW``. It also gives each of the K models its own
  learning rate although ``baddbmm_`` takes one scalar ``alpha``.
* ``g_{l-1}`` is computed **before** ``W_l`` is updated, as backpropagation requires.
* **Biases ride along as a last weight row**: a layer is stored transposed, as
  ``[W^T ; b^T]``, (in + 1, out). Hidden activations live in preallocated buffers whose last
  column is 1, so ``[h, 1] [W^T ; b^T]`` is the layer and ``[h, 1]^T g`` updates weight and
  bias in one GEMM. The first layer's input is the caller's batch (no ones column), so its
  bias is added and updated explicitly. Stored as a row the bias is contiguous, so adding it
  to the batch's products is a vectorized broadcast (as a column of ``[W | b]`` it was a
  strided gather), and MKL runs ``x^T g`` into ``W_1^T`` faster than ``g^T x`` into ``W_1``
  (the measurements are in ``benchmarks/README.md``).
* **Two ways through K models.** On a GPU one batched pass: weights stacked to
  (K, in + 1, out), ``bmm``/``baddbmm_`` for every product, so K models cost the kernel
  launches of one. On a CPU the GEMMs themselves are the cost, batching them gains nothing,
  so each model takes a 2-D pass of its own (``addmm``), which also makes model k compute bit
  for bit what a run of its own computes. ``FusedMLP(..., batched=)`` overrides the choice.
* **No host sync**: the step returns the losses as a device tensor; ``.item()`` per step would
  stall a GPU. Shape checks read only tensor metadata.
* **Inactive models are set aside**, not run with ``lr = 0``: a frozen model's weights stay
  bit-for-bit, a diverged model's NaNs cannot touch anything, and it stops costing time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fmclassify._checks import check_index, check_lr
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.models import MLP

__all__ = ["FusedMLP"]


@dataclass(frozen=True)
class _Weights:
    """The weights of one pass of the step, and views of them made once, not per step.

    A batched pass holds the ``A`` active models stacked; a per-model pass holds one model and
    every tensor lacks the leading A axis (2-D ops).
    """

    wb: list[Tensor]  # [W_l^T ; b_l^T] per layer: (A, in + 1, out), updated in place
    w1: Tensor  # layer 1's W^T: (A, F, H1) view of wb[0]
    b1: Tensor  # layer 1's bias: (A, 1, H1) view of wb[0]'s last row; (H1,) when A == 1
    w_in: list[Tensor]  # W_l for g_{l-1}, layers 2..L: (A, out, in), transposed views


@dataclass(frozen=True)
class _Buffers:
    """Preallocated per batch size B: activations with a ones column, hidden gradients, lr."""

    hs: list[Tensor]  # [h_l, 1] for the hidden layers: (A, B, H_l + 1), last column 1
    h_out: list[Tensor]  # h_l within hs: (A, B, H_l) strided views, the GEMM outputs
    gs: list[Tensor]  # g_l for the hidden layers: (A, B, H_l)
    coefs: list[tuple[Tensor, Tensor]]  # per pass: lr / B (A, 1, 1), -lr / B (A, B, 1)


# Layers whose presence is the usual reason a model cannot be fused, named in supports().
_KNOWN_OBSTACLES = ("Dropout", "BatchNorm", "Conv", "LayerNorm", "Pool", "Embedding")


def _linear_stack(model: nn.Module) -> tuple[list[nn.Linear], str | None]:
    """The Linear layers in order, or why the model is not ``Flatten?, Linear(, ReLU, Linear)*``."""
    for m in model.modules():  # name the usual obstacles first: a reason a user can act on
        for word in _KNOWN_OBSTACLES:
            if word in type(m).__name__:
                return [], f"has {type(m).__name__}"
    if isinstance(model, MLP) and type(model).forward is MLP.forward:
        seq: list[nn.Module] = [model.flatten, *_unnest(model.linear_relu_stack)]
    elif isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward:
        seq = _unnest(model)
    else:
        return [], f"{type(model).__name__} is not an fmclassify MLP or a plain nn.Sequential"
    if seq and isinstance(seq[0], nn.Flatten):
        if (seq[0].start_dim, seq[0].end_dim) != (1, -1):
            return [], "has a Flatten that is not Flatten(start_dim=1)"
        seq = seq[1:]
    linears = [m for m in seq[0::2] if type(m) is nn.Linear]
    relus = [m for m in seq[1::2] if type(m) is nn.ReLU]
    if not seq or len(seq) % 2 == 0 or len(linears) + len(relus) != len(seq):
        kinds = ", ".join(type(m).__name__ for m in seq) or "nothing"
        return [], f"not a Linear/ReLU stack ending in Linear (has {kinds})"
    if len({id(m) for m in linears}) != len(linears):
        return [], "uses one Linear layer twice (tied weights)"
    if any(m.bias is None for m in linears):
        return [], "has a Linear without bias"
    return linears, None


def _unnest(seq: nn.Sequential) -> list[nn.Module]:
    """Children of ``seq`` with nested plain Sequentials spliced in (their forward composes)."""
    out: list[nn.Module] = []
    for m in seq:
        if isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
            out.extend(_unnest(m))
        else:
            out.append(m)
    return out


class FusedMLP:
    """Train K MLPs of identical layer sizes step by step together, without autograd.

    Each model keeps its own weights and learning rate. A step equals, within float rounding,
    K independent steps of
    ``F.cross_entropy(model(x), y).backward(); torch.optim.SGD(params, lr=lr).step()``;
    no ``.grad`` is ever written.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        K >= 1 models accepted by :meth:`supports`, with the same layer sizes, on one device.
        Their weights are copied in (each layer is kept as one [W^T ; b^T] tensor); call
        :meth:`write_back` to copy the trained weights out again.
    lrs : sequence of float
        One learning rate per model, each finite and > 0.
    batched : bool, optional
        How a step visits K > 1 models: ``True``, batched ops over the stacked weights (one
        ``bmm`` per product: few kernel launches, best on a GPU); ``False``, the models one
        after the other with 2-D ops (best on a CPU, where each model's weights then stay in
        cache through its step, and model k computes bit for bit what a K = 1 engine of it
        computes). The default picks by device. Both agree within float rounding.

    Raises
    ------
    ConfigError
        No models, a model :meth:`supports` rejects, layer sizes or devices that differ, the
        same model object twice, or a learning rate that is not a finite number > 0.

    Examples
    --------
    >>> from fmclassify.models import MLP
    >>> models = [MLP(in_features=4, hidden=(8,), num_classes=3) for _ in range(2)]
    >>> engine = FusedMLP(models, lrs=[0.1, 0.01])
    >>> engine.step(torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])).shape
    torch.Size([2])
    >>> engine.write_back()
    """

    @staticmethod
    def supports(model: nn.Module) -> str | None:
        """Return ``None`` if ``model`` can be fused, else a short reason it cannot.

        Supported: :class:`fmclassify.models.MLP`, or a plain ``nn.Sequential`` (nested ones
        allowed) of an optional ``Flatten``, then ``Linear`` (with bias) and ``ReLU``
        alternating, ending in ``Linear``; all parameters float32 and trainable; no hooks.

        Parameters
        ----------
        model : torch.nn.Module
            The candidate.

        Returns
        -------
        str or None
            E.g. ``"has Dropout"``, ``"frozen parameters"``, ``"not float32 (torch.float64)"``.
        """
        _, reason = _linear_stack(model)
        if reason is not None:
            return reason
        params = list(model.parameters())
        if any(not p.requires_grad for p in params):
            return "frozen parameters"
        dtypes = {p.dtype for p in params}
        if dtypes != {torch.float32}:
            return f"not float32 ({', '.join(sorted(str(d) for d in dtypes))})"
        if len({p.device for p in params}) > 1:
            return "parameters on several devices"
        for m in model.modules():
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks:
                return "has module hooks (the fused step would skip them)"
        if any(p._backward_hooks for p in params):
            return "has parameter hooks (the fused step would skip them)"
        return None

    def __init__(self, models: Sequence[nn.Module], lrs: Sequence[float], *,
                 batched: bool | None = None) -> None:
        self._batch_models = batched
        self._models = list(models)
        self._lrs = [check_lr(lr, f"lrs[{i}]") for i, lr in enumerate(lrs)]
        self._layers = _check_models(self._models)
        if len(self._lrs) != len(self._models):
            raise ConfigError(f"got {len(self._models)} models but {len(self._lrs)} learning "
                              "rates; pass one learning rate per model")
        first = self._layers[0]
        self.device = first[0].weight.device
        self.sizes = (first[0].in_features, *(lin.out_features for lin in first))
        self._active = [True] * len(self._models)
        with torch.no_grad():  # (in + 1, out) per model and layer: [W^T ; b^T]
            per_model = [[torch.cat([lin.weight.T, lin.bias[None, :]]) for lin in layers]
                         for layers in self._layers]
        self._restack(per_model)

    # -- public API ---------------------------------------------------------------------------

    @property
    def num_models(self) -> int:
        """K, the number of models (active or not)."""
        return len(self._models)

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rate of each model."""
        return tuple(self._lrs)

    @property
    def active(self) -> tuple[bool, ...]:
        """Per model, whether :meth:`step` still trains it."""
        return tuple(self._active)

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step of every active model on a batch; return the losses before the step.

        Parameters
        ----------
        x : torch.Tensor
            float32 on the models' device: images (B, C, H, W) shared by all K models, or one
            batch per model (K, B, C, H, W) when ``y`` is (K, B). Any trailing shape whose size
            is the first layer's ``in_features`` works (it is flattened per sample).
        y : torch.Tensor
            int64 class labels, (B,) shared or (K, B) one row per model.

        Returns
        -------
        torch.Tensor
            (K,) float32 on the device, detached: each model's mean cross-entropy on this batch,
            computed from the forward pass before the update (what autograd's loss would be).
            ``nan`` for inactive models, which are not run. Non-finite for a model that
            diverged; the others are unaffected.

        Raises
        ------
        DataError
            If the shapes of ``x`` and ``y`` do not fit each other or the models.
        """
        xa, ya = self._inputs(x, y)  # (A, B, F) or (B, F); (A, B, 1) or (B, 1)
        if self._idx is None:
            return torch.full((self.num_models,), math.nan, device=self.device)
        buf = self._buffers(xa.shape[-2])
        with torch.no_grad():  # nothing here needs a graph; guards against an x with grad
            if self._batched:  # one pass over the stack: (A, B, F) -> (A,)
                a = self._n_active
                xa, ya = (xa, ya) if xa.dim() == 3 else (xa.expand(a, *xa.shape),
                                                         ya.expand(a, *ya.shape))
                loss = self._step(self._passes[0], buf, buf.coefs[0], xa, ya)
            elif self._n_active == 1:  # (B, F) -> (1,)
                loss = self._step(self._passes[0], buf, buf.coefs[0], xa, ya)
            else:  # one 2-D pass per model (B, F) -> (1,), sharing the activation buffers
                loss = torch.cat([
                    self._step(w, buf, coef, xa[k] if xa.dim() == 3 else xa,
                               ya[k] if ya.dim() == 3 else ya)
                    for k, (w, coef) in enumerate(zip(self._passes, buf.coefs, strict=True))])
        return loss if self._n_active == self.num_models else self._spread(loss)

    def logits(self, x: Tensor) -> Tensor:
        """Return every model's logits (K, B, classes) for images ``x`` (B, C, H, W), no grad."""
        b = x.shape[0]
        flat = x.reshape(b, -1)  # (B, C, H, W) -> (B, F)
        self._check_features(flat.shape[-1])
        with torch.no_grad():
            return torch.stack([_forward(self._tensors_of(k), flat)
                                for k in range(self.num_models)])  # (K, B, classes)

    def set_active(self, k: int, active: bool) -> None:
        """Resume (``True``) or freeze (``False``) training of model ``k``.

        A frozen model's weights stay exactly as they are (a converged run) and any NaN in
        them (a diverged run) stays with it; it costs no time in :meth:`step`, whose loss for
        it is ``nan``. Changing the active set re-stacks the weights (a copy, not per step).

        Raises
        ------
        ConfigError
            If ``k`` is not in ``range(K)``.
        """
        check_index("k", k, self.num_models, what="a model index")
        if self._active[k] == bool(active):
            return
        per_model = [self._tensors_of(i) for i in range(self.num_models)]
        self._active[k] = bool(active)
        self._restack(per_model)

    def write_back(self) -> None:
        """Copy the trained weights and biases into each original model's parameters."""
        with torch.no_grad():
            for k, layers in enumerate(self._layers):
                for lin, wb in zip(layers, self._tensors_of(k), strict=True):  # (in + 1, out)
                    lin.weight.copy_(wb[:-1].T)
                    lin.bias.copy_(wb[-1])

    def read_weights(self) -> None:
        """Copy each model's weights and biases into the engine in place.

        The reverse of :meth:`write_back`. The engine's tensors stay the same objects, so a CUDA
        graph that captured :meth:`step` goes on replaying it with the models' weights of now.
        """
        with torch.no_grad():
            for k, layers in enumerate(self._layers):
                for lin, wb in zip(layers, self._tensors_of(k), strict=True):  # (in + 1, out)
                    wb[:-1].copy_(lin.weight.T)
                    wb[-1].copy_(lin.bias)

    # -- the step -----------------------------------------------------------------------------

    @staticmethod
    def _step(w: _Weights, buf: _Buffers, coef: tuple[Tensor, Tensor], x: Tensor,
              y: Tensor) -> Tensor:
        """Forward, loss, backward and update of the models in ``w``; return the losses (A,)."""
        # Forward. Layer 1 adds its bias explicitly: the caller's x has no ones column.
        out = buf.h_out[0] if buf.hs else None  # h_1 goes into its buffer (A, B, H1)
        z = _linear(x, w.w1, w.b1, out)  # x (A, B, F) @ W_1^T (A, F, H1) + b_1
        for i, wb in enumerate(w.wb[1:]):  # layers 2..L; hs[i] holds [h_{i+1}, 1]
            buf.hs[i].relu_()  # h = relu(.) in place; the ones column stays 1
            out = buf.h_out[i + 1] if i + 1 < len(buf.hs) else None  # logits: a new tensor
            z = _mm(buf.hs[i], wb, out)  # [h, 1] (A, B, in+1) @ [W^T;b^T] (A, in+1, out)
        # Loss: log_softmax, then the target's entry, as F.cross_entropy computes it.
        logp = torch.log_softmax(z, -1)  # logits z (A, B, C) -> log p (A, B, C)
        loss = _nll(logp, y)  # (A,)
        # g_L = (softmax(z) - onehot(y)) * lr / B: PRML eq. 4.109 with lr folded in (see top).
        g = logp.exp_().mul_(coef[0])  # p * lr / B   (A, B, C)
        g.scatter_add_(-1, y, coef[1])  # minus lr / B at each target   (A, B, C)
        # Backward, last layer first; each g_{l-1} (PRML eq. 5.56) is taken before W_l moves.
        for i in range(len(w.wb) - 1, 0, -1):  # wb[i] is layer l = i + 1; hs[i - 1] its input
            h, g_prev = buf.hs[i - 1], buf.gs[i - 1]  # [h_{l-1}, 1] (A, B, in+1); (A, B, in)
            _mm(g, w.w_in[i - 1], g_prev)  # g W_l: (A, B, out) @ (A, out, in)
            _sub_mm_(w.wb[i], h.mT, g)  # [W^T;b^T] -= [h, 1]^T (lr g): (A, in+1, out), eq. 5.53
            _relu_grad_(g_prev, buf.h_out[i - 1])  # g_{l-1} = g W_l * [h_{l-1} > 0], in place
            g = g_prev
        _sub_mm_(w.w1, x.mT, g)  # W_1^T -= x^T (lr g_1): (A, F, B) @ (A, B, H1)
        w.b1.sub_(g.sum(-2, keepdim=w.b1.dim() == 3))  # b_1 -= sum over batch of lr g_1
        return loss

    # -- bookkeeping --------------------------------------------------------------------------

    def _inputs(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Validate shapes; return x as (A, B, F) or (B, F) and y as (A, B, 1) or (B, 1)."""
        k = self.num_models
        if x.dtype != torch.float32 or y.dtype != torch.int64 or x.device != self.device \
                or y.device != self.device:
            raise DataError(f"expected float32 images and int64 labels on {self.device}; got "
                            f"x {x.dtype} on {x.device} and y {y.dtype} on {y.device}")
        if y.dim() == 1:
            b = y.shape[0]
            if x.shape[0] != b:
                raise DataError(f"x has {x.shape[0]} samples but y has {b}; pass matching "
                                "batches (x (B, C, H, W), y (B,))")
            xa, ya = x.reshape(b, -1), y.view(b, 1)  # (B, F), (B, 1)
        elif y.dim() == 2 and y.shape[0] == k and x.shape[:2] == y.shape:
            b = y.shape[1]
            xa, ya = x.reshape(k, b, -1), y.view(k, b, 1)  # (K, B, F), (K, B, 1)
            if self._n_active < k and self._idx is not None:
                xa, ya = xa.index_select(0, self._idx), ya.index_select(0, self._idx)
            if self._n_active == 1:
                xa, ya = xa[0], ya[0]  # (B, F), (B, 1)
        else:
            raise DataError(f"expected y of shape (B,) or (K={k}, B) with x (B, ...) or "
                            f"(K, B, ...); got x {tuple(x.shape)} and y {tuple(y.shape)}")
        self._check_features(xa.shape[-1])
        return xa, ya

    def _check_features(self, features: int) -> None:
        if features != self.sizes[0]:
            raise DataError(f"each sample has {features} values but the models' first layer "
                            f"takes {self.sizes[0]}; pass images of that size")

    def _buffers(self, b: int) -> _Buffers:
        """The preallocated buffers for batch size ``b`` (made on first use)."""
        if b not in self._cache:
            dev = self.device
            lead = (self._n_active, b) if self._batched else (b,)
            hs = [torch.ones(*lead, n + 1, device=dev) for n in self.sizes[1:-1]]
            gs = [torch.empty(*lead, n, device=dev) for n in self.sizes[1:-1]]
            lrs = torch.tensor([lr / b for lr, on in zip(self._lrs, self._active, strict=True)
                                if on], device=dev)  # (A,)
            coefs = [lrs.view(-1, 1, 1)] if self._batched else list(lrs.view(-1, 1, 1))
            self._cache[b] = _Buffers(  # coefs: (A, 1, 1) once, or A times (1, 1)
                hs=hs, h_out=[h[..., :-1] for h in hs], gs=gs,
                coefs=[(c, (-c).expand(*lead, 1)) for c in coefs])
        return self._cache[b]

    def _restack(self, per_model: list[list[Tensor]]) -> None:
        """Lay out the models' [W^T;b^T] (in + 1, out) per layer for the step, from ``per_model``.

        Batched: the active models' tensors stacked to (A, in + 1, out). Otherwise each model
        keeps tensors of its own: then model k of an engine computes bit for bit what a K = 1
        engine of it computes (BLAS results can depend on where a matrix sits in memory).
        Inactive models keep copies of their own ("parked") either way.
        """
        idx = [k for k in range(self.num_models) if self._active[k]]
        self._n_active = len(idx)
        self._cache: dict[int, _Buffers] = {}
        self._idx = torch.tensor(idx, device=self.device) if idx else None
        # One batched pass (A, ...) on a GPU: few kernel launches. On the CPU one 2-D pass per
        # model: batched GEMMs gain nothing there, and a model's weights stay in cache through
        # its step.
        batched = self._batch_models
        self._batched = len(idx) > 1 and (self.device.type != "cpu" if batched is None
                                          else batched)
        self._store = {k: [t.clone() for t in per_model[k]] for k in range(self.num_models)}
        if self._batched:  # replace the active models' copies by views of one stack
            stacks = [torch.stack([per_model[k][i] for k in idx])
                      for i in range(len(self.sizes) - 1)]  # (A, in + 1, out) per layer
            self._store.update({k: [st[j] for st in stacks] for j, k in enumerate(idx)})
            self._passes = [_weights(stacks)]
        else:
            self._passes = [_weights(self._store[k]) for k in idx]

    def _tensors_of(self, k: int) -> list[Tensor]:
        """Model ``k``'s [W^T;b^T] per layer, (in + 1, out): own tensors or views of a stack."""
        return self._store[k]

    def _spread(self, loss: Tensor) -> Tensor:
        """(A,) losses of the active models -> (K,), nan for inactive ones."""
        out = torch.full((self.num_models,), math.nan, device=self.device)
        return out.index_copy_(0, self._idx, loss) if self._idx is not None else out


def _weights(wb: list[Tensor]) -> _Weights:
    """The views the step needs of [W_l^T ; b_l^T] per layer, (A, in + 1, out) or (in + 1, out)."""
    first = wb[0]
    return _Weights(wb=wb, w1=first[..., :-1, :],
                    b1=first[..., -1:, :] if first.dim() == 3 else first[-1],
                    w_in=[t[..., :-1, :].mT for t in wb[1:]])


def _mm(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b`` as mm (2-D) or bmm (3-D), into ``out`` when given."""
    op = torch.mm if a.dim() == 2 else torch.bmm
    return op(a, b) if out is None else op(a, b, out=out)


def _linear(x: Tensor, w: Tensor, b: Tensor, out: Tensor | None) -> Tensor:
    """``x @ w + b`` as addmm (2-D) or baddbmm (3-D, ``b`` (A, 1, out)), into ``out``."""
    op = torch.addmm if x.dim() == 2 else torch.baddbmm
    return op(b, x, w) if out is None else op(b, x, w, out=out)


def _nll(logp: Tensor, y: Tensor) -> Tensor:
    """Mean of ``-logp[target]`` over the batch: (A, B, C), (A, B, 1) -> (A,)."""
    if logp.dim() == 2:  # one model: exactly F.cross_entropy's reduction
        return torch.nn.functional.nll_loss(logp, y.view(-1)).view(1)
    return logp.gather(-1, y).sum(-2).div_(-float(y.shape[-2])).view(-1)  # (A, B, 1) -> (A,)


def _relu_grad_(g: Tensor, h: Tensor) -> None:
    """``g *= [h > 0]`` in place: the ReLU's derivative (threshold_backward, one kernel)."""
    torch.ops.aten.threshold_backward.grad_input(g, h, 0, grad_input=g)


def _sub_mm_(w: Tensor, a: Tensor, b: Tensor) -> None:
    """``w -= a @ b`` in place, one GEMM (addmm_ for 2-D, baddbmm_ for 3-D)."""
    if w.dim() == 2:
        w.addmm_(a, b, alpha=-1)
    else:
        w.baddbmm_(a, b, alpha=-1)


def _forward(wbs: list[Tensor], x: Tensor) -> Tensor:
    """Logits (B, classes) of one model given its [W^T;b^T] per layer and inputs x (B, F)."""
    h = x
    for i, wb in enumerate(wbs):
        h = torch.addmm(wb[-1], h, wb[:-1])  # (B, in) -> (B, out)
        if i < len(wbs) - 1:
            h.relu_()
    return h


def _check_models(models: list[nn.Module]) -> list[list[nn.Linear]]:
    """Each model's Linear layers; raise ConfigError unless all fit one stack."""
    if not models:
        raise ConfigError("FusedMLP needs at least one model")
    if len({id(m) for m in models}) != len(models):
        raise ConfigError("the same model object appears twice; pass copies (copy.deepcopy)")
    layers = []
    for i, m in enumerate(models):
        reason = FusedMLP.supports(m)
        if reason is not None:
            raise ConfigError(f"models[{i}] ({type(m).__name__}) cannot be fused: {reason}; "
                              "train it with the Trainer's autograd loop")
        layers.append(_linear_stack(m)[0])
    shapes = [[tuple(lin.weight.shape) for lin in ls] for ls in layers]
    devices = [ls[0].weight.device for ls in layers]
    for i in range(1, len(models)):
        if shapes[i] != shapes[0] or devices[i] != devices[0]:
            raise ConfigError(f"models[{i}] has layers {shapes[i]} on {devices[i]} but "
                              f"models[0] has {shapes[0]} on {devices[0]}; fuse only models "
                              "of one architecture on one device")
    return layers
