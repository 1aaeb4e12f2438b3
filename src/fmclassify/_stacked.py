"""Train K runs of one architecture together, as one batched model, with autograd and SGD.

A private engine for a sweep's runs on a GPU (learning rates, seeds, weight decays of one
model): each parameter and buffer of the K models is stacked into one (K, *shape) tensor, and
one step of all K runs is ``torch.func.vmap`` over ``torch.func.grad_and_value`` of
``torch.func.functional_call``, then plain SGD on the stacks. Where one run's step is several
small kernels launched one by one, K runs cost the launches of one. It offers the interface of
:class:`~fmclassify._fused.FusedMLP` (``step``, ``set_active``, ``active``, ``num_models``,
``write_back``, ``logits``) for any model :meth:`StackedModels.supports` accepts, including
convolutions and batch norm.

What a step computes, per run ``k`` (torch.optim.SGD's formulas, ``dampening=0``):

* the loss ``F.cross_entropy(model_k(x_k), y_k, label_smoothing=s)`` and its gradient, the
  model in train mode (batch norm normalizes with the batch's statistics and updates run k's
  running statistics), under ``torch.autocast`` in bfloat16 for ``precision="bf16"``;
* optionally the gradient clipped to a global L2 norm, as ``torch.nn.utils.clip_grad_norm_``
  does over run k's parameters (``coef = min(1, max_norm / (norm + 1e-6))``);
* ``g = grad + wd_k p``; with momentum ``b = momentum b + g`` (``b = g`` at run k's first
  step: the buffer starts at zero, and ``momentum * 0 + g`` is ``g`` exactly), then
  ``g = g + momentum b`` (Nesterov) or ``g = b``; ``p = p - lr_k g``.

Choices a reader might question:

* **The models' own parameters are views of the stacks** (``p.data = stack[k]``, the same for
  buffers), so each model always holds its run's current weights: evaluation
  (``models[k](x)``), ``state_dict()`` for a checkpoint and ``load_state_dict()`` for a resume
  work on the model itself, and :meth:`StackedModels.write_back` has nothing to copy. The
  parameter objects stay the same, so optimizers that hold them still do.
* **The step runs a copy of model 0 on the meta device**, in train mode, with the stacks passed
  in: the users' models may be switched to eval mode for evaluation between steps without
  changing what the step computes.
* **Batch norm under vmap**: the running statistics are passed in batched, so its in-place
  update writes each run's row of the stacked buffer (checked against a model trained alone in
  the tests). ``momentum=None`` (a cumulative average) is refused: it reads the step count on
  the host.
* **Dropout draws a different mask per run** (``vmap(randomness="different")``) from the global
  generator, so a run with dropout is not the run a model trained alone with the same seed
  would be (equally random, not equal); models without randomness compute what they compute
  alone, within float rounding.
* **Inactive runs are masked, not set aside**: their forward and backward still run (a frozen
  run costs its share of the step), and ``torch.where`` keeps their parameters, buffers and
  momentum bit for bit (a NaN gradient with a zero learning rate would still write NaN). Under
  vmap every operation is per run (batched matrix products, grouped convolutions, per-run
  batch statistics), so one run's NaN never reaches another. Setting the active runs aside
  instead would move every parameter in and out of a smaller stack each step, or re-stack and
  re-bind the models' views on each change; the mask is simpler and the same when all run.
* **No host synchronization per step**: no ``.item()``, no branch on a tensor's value; the
  losses come back as a device tensor, the learning rates live in a device tensor that
  :meth:`StackedModels.set_lrs` overwrites in place (from host floats by a non-blocking copy
  out of pageable memory, which CUDA stages at once), so a GPU is never drained between steps.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from fmclassify._checks import (
    check_choice,
    check_index,
    check_lr,
    check_nonnegative,
    check_positive,
)
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.recipes import PRECISIONS, autocast

if TYPE_CHECKING:
    from fmclassify.recipes import Recipe

__all__ = ["StackedModels"]

# Recipe fields that may differ between runs trained together; the seed is not a Recipe field.
_PER_RUN = ("weight_decay",)


class StackedModels:
    """Train K models of one architecture together: one batched autograd step, SGD per run.

    A step equals, within float rounding, K independent steps of
    ``loss = F.cross_entropy(model(x), y, label_smoothing=s); loss.backward();
    torch.optim.SGD(params, lr, momentum, weight_decay=wd, nesterov=...).step()``
    for models without randomness (dropout draws its own mask per run).

    Parameters
    ----------
    models : sequence of torch.nn.Module
        K >= 1 models :meth:`supports` accepts. Their parameters and buffers become views of
        the engine's stacks (the models keep training's current weights at all times).
    lrs : sequence of float
        One learning rate per run, each finite and > 0; change them with :meth:`set_lrs`.
    weight_decays : sequence of float, optional
        One L2 penalty per run, each >= 0 (as ``torch.optim.SGD(weight_decay=)``); default 0.
    momentum : float, default 0.0
        SGD momentum, shared by the runs, >= 0 and < 1.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    label_smoothing : float, default 0.0
        Of the training loss, in [0, 1).
    clip_grad_norm : float or None, default None
        Clip each run's gradients to this global L2 norm before the update.
    precision : {"fp32", "bf16"}, default "fp32"
        ``"bf16"`` runs the forward pass and the loss under ``torch.autocast`` in bfloat16.

    Raises
    ------
    ConfigError
        Models :meth:`supports` rejects, a count of lrs or weight decays that is not K, or a
        value out of range.

    Examples
    --------
    >>> from fmclassify.models import MLP
    >>> models = [MLP(in_features=4, hidden=(8,), num_classes=3) for _ in range(2)]
    >>> engine = StackedModels(models, lrs=[0.1, 0.01], momentum=0.9)
    >>> engine.step(torch.rand(2, 5, 1, 2, 2), torch.randint(0, 3, (2, 5))).shape
    torch.Size([2])
    >>> models[1](torch.rand(5, 1, 2, 2)).shape  # the models hold the trained weights
    torch.Size([5, 3])
    """

    @staticmethod
    def supports(models: Sequence[nn.Module],
                 recipes: Sequence[Recipe] | None = None) -> str | None:
        """Return ``None`` if ``models`` (with ``recipes``) can train together, else why not.

        The models must be of one type with the same parameter and buffer names, shapes and
        dtypes, all on one device, with trainable floating-point parameters not shared between
        layers, and no hooks (the step would skip them). Each recipe must be SGD, without EMA,
        and equal to the others in everything but ``weight_decay`` (the learning rate and the
        seed are not recipe fields; augmentation and the schedule are the caller's, who then
        calls :meth:`set_lrs`).

        Parameters
        ----------
        models : sequence of torch.nn.Module
            The candidates, one per run.
        recipes : sequence of Recipe, optional
            One per run; not checked when omitted.

        Returns
        -------
        str or None
            E.g. ``"models[1] has parameter fc.weight (8, 4) torch.float32 where models[0]
            has (9, 4) torch.float32"``, ``"recipes[0] has ema=0.999 (no stacked average)"``.
        """
        models = list(models)
        reason = _models_reason(models)
        if reason is None and recipes is not None:
            reason = _recipes_reason(list(recipes), len(models))
        return reason

    @classmethod
    def from_recipes(cls, models: Sequence[nn.Module], lrs: Sequence[float],
                     recipes: Sequence[Recipe]) -> StackedModels:
        """The engine for runs set up by ``recipes`` (one per model) at learning rates ``lrs``.

        Raises
        ------
        ConfigError
            If :meth:`supports` gives a reason, which the message names.
        """
        reason = cls.supports(models, recipes)
        if reason is not None:
            raise ConfigError(f"these runs cannot train together: {reason}; train them one by "
                              "one with the Trainer")
        r = recipes[0]
        return cls(models, lrs, [q.weight_decay for q in recipes], momentum=r.momentum,
                   nesterov=r.nesterov, label_smoothing=r.label_smoothing,
                   clip_grad_norm=r.clip_grad_norm, precision=r.precision)

    def __init__(self, models: Sequence[nn.Module], lrs: Sequence[float],
                 weight_decays: Sequence[float] | None = None, *, momentum: float = 0.0,
                 nesterov: bool = False, label_smoothing: float = 0.0,
                 clip_grad_norm: float | None = None, precision: str = "fp32") -> None:
        self._models = list(models)
        reason = _models_reason(self._models)
        if reason is not None:
            raise ConfigError(f"models cannot train together: {reason}")
        k = len(self._models)
        wds = [0.0] * k if weight_decays is None else list(weight_decays)
        if len(lrs) != k or len(wds) != k:
            raise ConfigError(f"got {k} models, {len(lrs)} lrs and {len(wds)} weight_decays; "
                              "pass one of each per model")
        lr_values = [check_lr(v, f"lrs[{i}]") for i, v in enumerate(lrs)]
        wd_values = [check_nonnegative(f"weight_decays[{i}]", w) for i, w in enumerate(wds)]
        mom = _check_options(momentum, nesterov, label_smoothing, clip_grad_norm, precision)
        self._smoothing = float(label_smoothing)
        self._precision = precision
        first = self._models[0]
        self.device = next(first.parameters()).device
        # The step's stateless copies: all their tensors are replaced by the stacks' rows.
        self._train_tmpl = copy.deepcopy(first).to("meta").train()
        self._eval_tmpl = copy.deepcopy(self._train_tmpl).eval()
        self._params = _stack_and_bind([dict(m.named_parameters()) for m in self._models])
        self._buffers = _stack_and_bind([dict(m.named_buffers()) for m in self._models])
        self._sgd = _StackedSGD(self._params, lr_values, wd_values, momentum=mom,
                                nesterov=bool(nesterov), clip_grad_norm=clip_grad_norm)
        self._active = [True] * k
        self._mask = torch.ones(k, dtype=torch.bool, device=self.device)  # (K,) active runs
        # vmap over the runs: params, buffers, x and y carry the run axis first.
        self._grad = {dims: vmap(grad_and_value(self._loss), in_dims=(0, 0, dims, dims),
                                 randomness="different") for dims in (0, None)}

    # -- public API ---------------------------------------------------------------------------

    @property
    def num_models(self) -> int:
        """K, the number of runs (active or not)."""
        return len(self._models)

    @property
    def active(self) -> tuple[bool, ...]:
        """Per run, whether :meth:`step` still trains it."""
        return tuple(self._active)

    @property
    def lrs(self) -> tuple[float, ...]:
        """Each run's current learning rate (reads the device: not for the step loop)."""
        return self._sgd.lrs

    @property
    def weight_decays(self) -> tuple[float, ...]:
        """Each run's L2 penalty."""
        return self._sgd.weight_decays

    def set_lrs(self, lrs: Sequence[float] | Tensor) -> None:
        """Set each run's learning rate for the following steps (a schedule calls it per step).

        Parameters
        ----------
        lrs : sequence of float or torch.Tensor
            K finite numbers > 0, or a (K,) float tensor (not checked: that would read the
            device). Floats reach the device by a copy that does not wait for the GPU.

        Raises
        ------
        ConfigError
            If there are not K values, or a float is not finite and > 0.
        """
        self._sgd.set_lrs(lrs)

    def set_active(self, k: int, active: bool) -> None:
        """Resume (``True``) or freeze (``False``) training of run ``k``.

        A frozen run's parameters, buffers and momentum stay bit for bit (a converged run),
        and a NaN in them (a diverged run) stays with it; :meth:`step` returns ``nan`` as its
        loss. It still costs its share of the step's arithmetic.

        Raises
        ------
        ConfigError
            If ``k`` is not in ``range(K)``.
        """
        check_index("k", k, self.num_models, what="a run index")
        self._active[k] = bool(active)
        self._mask.copy_(torch.tensor(self._active), non_blocking=True)

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step of every active run; return the losses before the step.

        Parameters
        ----------
        x : torch.Tensor
            Images on the models' device, of their parameters' dtype: one batch per run,
            (K, B, C, H, W) with ``y`` (K, B) (each run in its own order), or one batch for
            all, (B, C, H, W) with ``y`` (B,).
        y : torch.Tensor
            int64 class labels, (K, B) or (B,).

        Returns
        -------
        torch.Tensor
            (K,) float32 on the device, detached: each run's training loss (with its label
            smoothing) from the forward pass before the update; ``nan`` for inactive runs;
            non-finite for a run that diverged, the others unaffected.

        Raises
        ------
        DataError
            If the shapes, dtypes or devices of ``x`` and ``y`` do not fit each other or the
            models.
        """
        dims = self._check_batch(x, y)
        every = all(self._active)
        # Inactive runs' buffers (batch-norm statistics) must not move: update copies, then
        # keep the active rows. With every run active the step updates the stacks in place.
        buffers = self._buffers if every else {n: b.clone() for n, b in self._buffers.items()}
        grads: dict[str, Tensor]
        loss: Tensor
        grads, loss = self._grad[dims](self._params, buffers, x, y)  # (K, *shape) each, (K,)
        with torch.no_grad():
            self._sgd.update(grads, self._active, self._mask)
            if not every:
                for name, b in self._buffers.items():
                    b.copy_(torch.where(_rows(self._mask, b), buffers[name], b))
                loss = torch.where(self._mask, loss, math.nan)
        return loss.detach().float()

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        """Every run's logits (K, B, classes), float32, in eval mode, for images ``x`` (B, ...).

        The batch is shared by the runs (an evaluation set); batch norm uses each run's running
        statistics and dropout is off, as ``models[k].eval()(x)`` would.
        """
        def forward(params: dict[str, Tensor], buffers: dict[str, Tensor]) -> Tensor:
            with self._autocast():
                out: Tensor = functional_call(self._eval_tmpl, (params, buffers), (x,))
            return out.float()

        out: Tensor = vmap(forward)(self._params, self._buffers)  # (K, B, classes)
        return out

    def write_back(self) -> None:
        """Nothing to copy: the models' parameters and buffers are views of the stacks.

        Kept for the interface of :class:`~fmclassify._fused.FusedMLP`.
        """

    def momentum_state(self, k: int) -> list[Tensor | None]:
        """Run ``k``'s momentum buffers in ``models[k].parameters()`` order, as copies.

        The format of ``torch.optim.SGD``'s ``state[p]["momentum_buffer"]``: ``None`` (no
        entry) before the run's first step or without momentum. To checkpoint run ``k`` with
        an optimizer of its own::

            opt = torch.optim.SGD(models[k].parameters(), lr=lr, momentum=m, nesterov=n)
            for p, buf in zip(models[k].parameters(), engine.momentum_state(k)):
                if buf is not None:
                    opt.state[p]["momentum_buffer"] = buf

        Raises
        ------
        ConfigError
            If ``k`` is not in ``range(K)``.
        """
        check_index("k", k, self.num_models, what="a run index")
        return self._sgd.momentum_state(k)

    def load_momentum(self, k: int, buffers: Sequence[Tensor | None]) -> None:
        """Set run ``k``'s momentum buffers, in ``models[k].parameters()`` order (a resume).

        ``buffers`` as :meth:`momentum_state` returns them, e.g. from a checkpoint's
        optimizer: ``[opt.state[p].get("momentum_buffer") for p in models[k].parameters()]``.
        All ``None`` empties them (the next step starts them as torch does).

        Raises
        ------
        ConfigError
            If ``k`` is out of range, the count or a shape does not match, or some buffers
            are ``None`` and others not.
        """
        check_index("k", k, self.num_models, what="a run index")
        self._sgd.load_momentum(k, buffers)

    # -- the step -----------------------------------------------------------------------------

    def _loss(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor,
              y: Tensor) -> Tensor:
        """One run's training loss (vmap adds the run axis): what a solo step computes."""
        with self._autocast():
            logits = functional_call(self._train_tmpl, (params, buffers), (x,))
            return F.cross_entropy(logits, y, label_smoothing=self._smoothing)

    def _autocast(self) -> Any:
        # no cache of casts across calls: a CUDA graph may capture this step
        return autocast(self._precision, self._models[0], cache=False)()

    # -- checks -------------------------------------------------------------------------------

    def _check_batch(self, x: Tensor, y: Tensor) -> int | None:
        """The vmap in_dims of x and y: 0 for one batch per run, None for a shared batch."""
        k, dtype = self.num_models, next(iter(self._params.values())).dtype
        if x.dtype != dtype or y.dtype != torch.int64 or x.device != self.device \
                or y.device != self.device:
            raise DataError(f"expected {dtype} images and int64 labels on {self.device}; got "
                            f"x {x.dtype} on {x.device} and y {y.dtype} on {y.device}")
        if y.dim() == 2 and y.shape[0] == k and x.shape[:2] == y.shape:
            return 0
        if y.dim() == 1 and x.dim() >= 1 and x.shape[0] == y.shape[0]:
            return None
        raise DataError(f"expected x (K={k}, B, ...) with y (K, B), or x (B, ...) with y (B,); "
                        f"got x {tuple(x.shape)} and y {tuple(y.shape)}")


class _StackedSGD:
    """torch.optim.SGD over stacked (K, *shape) parameters, each run with its rate and decay.

    The rates and decays are (K,) device tensors broadcast over each parameter's dimensions;
    the momentum buffers are stacks like the parameters, zero until a run's first step (then
    ``momentum * 0 + g`` is ``g`` exactly, torch's first buffer). ``update`` changes only the
    runs a (K,) mask selects.
    """

    def __init__(self, params: dict[str, Tensor], lrs: list[float], wds: list[float], *,
                 momentum: float, nesterov: bool, clip_grad_norm: float | None) -> None:
        self._params, self._momentum, self._nesterov = params, momentum, nesterov
        self._clip = clip_grad_norm
        device = next(iter(params.values())).device
        self._bufs = {n: torch.zeros_like(p) for n, p in params.items()} if momentum else {}
        self._has_momentum = [False] * len(lrs)  # per run: stepped since its buffer was empty
        self._wd_host = wds
        self._wd = torch.tensor(wds, device=device)  # (K,)
        self._lr = torch.empty(len(lrs), device=device)  # (K,), overwritten in place
        self.set_lrs(lrs)

    @property
    def lrs(self) -> tuple[float, ...]:
        return tuple(self._lr.tolist())

    @property
    def weight_decays(self) -> tuple[float, ...]:
        return tuple(self._wd_host)

    def set_lrs(self, lrs: Sequence[float] | Tensor) -> None:
        """Overwrite the (K,) rates in place (see StackedModels.set_lrs)."""
        k = len(self._lr)
        if isinstance(lrs, Tensor):
            if lrs.shape != (k,):
                raise ConfigError(f"lrs must have shape ({k},), got {tuple(lrs.shape)}")
            self._lr.copy_(lrs, non_blocking=True)
            return
        values = [check_lr(v, f"lrs[{i}]") for i, v in enumerate(lrs)]
        if len(values) != k:
            raise ConfigError(f"got {len(values)} lrs for {k} models; pass one per model")
        # Pageable host memory: CUDA copies it to a staging buffer before returning, so the
        # temporary may go at once, and the GPU's queue is not drained (a blocking copy would).
        self._lr.copy_(torch.tensor(values, dtype=self._lr.dtype), non_blocking=True)

    def update(self, grads: dict[str, Tensor], active: list[bool], mask: Tensor) -> None:
        """One step of the runs ``mask`` (K,) selects; ``active`` is the same on the host."""
        if self._clip is not None:
            grads = _clipped(grads, self._clip)
        if all(active):
            self._update_all(list(grads.values()))
        else:
            for name, p in self._params.items():
                self._update_masked(name, p, grads[name], mask)
        if self._momentum:
            self._has_momentum = [h or a for h, a in zip(self._has_momentum, active,
                                                         strict=True)]

    def _update_all(self, grads: list[Tensor]) -> None:
        """Every run steps: in place, in torch.optim.SGD's own order of operations.

        ``torch._foreach_*`` (what torch.optim uses on CUDA) updates all parameters in a few
        kernel launches where it can; its results equal the per-tensor ops'.
        """
        params = list(self._params.values())
        if any(self._wd_host):
            grads = list(torch._foreach_addcmul(grads, params,
                                                [_rows(self._wd, p) for p in params]))
        if self._momentum:
            bufs = list(self._bufs.values())
            torch._foreach_mul_(bufs, self._momentum)
            torch._foreach_add_(bufs, grads)  # b = g at the first step: b starts at 0
            grads = (list(torch._foreach_add(grads, bufs, alpha=self._momentum))
                     if self._nesterov else bufs)
        torch._foreach_addcmul_(params, grads, [_rows(self._lr, p) for p in params],
                                value=-1)  # p - lr_k g

    def _update_masked(self, name: str, p: Tensor, g: Tensor, mask: Tensor) -> None:
        """The same update of one stacked parameter, kept only in the rows ``mask`` selects."""
        if any(self._wd_host):
            g = torch.addcmul(g, p, _rows(self._wd, p))  # g + wd_k p
        if self._momentum:
            b = self._bufs[name]
            new_b = b * self._momentum + g
            b.copy_(torch.where(_rows(mask, b), new_b, b))
            g = g + self._momentum * new_b if self._nesterov else new_b
        p.copy_(torch.where(_rows(mask, p), p - _rows(self._lr, p) * g, p))

    def momentum_state(self, k: int) -> list[Tensor | None]:
        """Run ``k``'s buffers as copies, None before its first step (see StackedModels)."""
        if not self._has_momentum[k]:
            return [None] * len(self._params)
        return [b[k].clone() for b in self._bufs.values()]

    def load_momentum(self, k: int, buffers: Sequence[Tensor | None]) -> None:
        """Set run ``k``'s buffers (see StackedModels.load_momentum)."""
        buffers = list(buffers)
        if len(buffers) != len(self._params):
            raise ConfigError(f"got {len(buffers)} momentum buffers for {len(self._params)} "
                              "parameters; pass one per parameter, in parameters() order")
        missing = [b is None for b in buffers]
        if any(missing) and not all(missing):
            raise ConfigError("some momentum buffers are None and others not; pass all or none")
        if not self._momentum:
            if not all(missing):
                raise ConfigError("momentum buffers given to an engine without momentum")
            return
        for (name, stack), buf in zip(self._bufs.items(), buffers, strict=True):
            if buf is not None and buf.shape != stack.shape[1:]:  # all checked before a copy
                raise ConfigError(f"momentum buffer for {name} has shape {tuple(buf.shape)}, "
                                  f"expected {tuple(stack.shape[1:])}")
        with torch.no_grad():
            for stack, buf in zip(self._bufs.values(), buffers, strict=True):
                stack[k].copy_(buf if buf is not None else torch.zeros_like(stack[k]))
        self._has_momentum[k] = not all(missing)


def _check_options(momentum: float, nesterov: bool, label_smoothing: float,
                   clip_grad_norm: float | None, precision: str) -> float:
    """The momentum as a float; ConfigError naming any option out of range."""
    mom = check_nonnegative("momentum", momentum)
    if mom >= 1 or (nesterov and mom == 0):
        raise ConfigError(f"momentum must be >= 0 and < 1 (> 0 with nesterov), got "
                          f"{momentum!r} with nesterov={nesterov!r}")
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if clip_grad_norm is not None:
        check_positive("clip_grad_norm", clip_grad_norm)
    check_choice("precision", precision, PRECISIONS)
    return mom


def _clipped(grads: dict[str, Tensor], max_norm: float) -> dict[str, Tensor]:
    """Each run's gradients scaled to at most ``max_norm`` in global L2 norm.

    As ``torch.nn.utils.clip_grad_norm_`` scales one run's: by ``min(1, max_norm / (norm +
    1e-6))``, where ``norm`` is the L2 norm of the per-parameter norms.
    """
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1)  # (K, P)
    coef = (max_norm / (norms.norm(dim=1) + 1e-6)).clamp(max=1.0)  # (K,)
    return {n: g * _rows(coef, g) for n, g in grads.items()}


def _rows(v: Tensor, like: Tensor) -> Tensor:
    """A (K,) tensor viewed (K, 1, ..., 1) to broadcast over ``like``'s (K, *shape)."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def _stack_and_bind(per_model: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack each named tensor over the models, (K, *shape), and make each model's a view."""
    stacks = {}
    with torch.no_grad():
        for name in per_model[0]:
            stack = torch.stack([tensors[name].detach() for tensors in per_model])
            for k, tensors in enumerate(per_model):
                tensors[name].data = stack[k]  # same object, now a view of row k
            stacks[name] = stack
    return stacks


# -- supports() ---------------------------------------------------------------------------------


def _signature(model: nn.Module) -> list[tuple[str, str, tuple[int, ...], torch.dtype]]:
    return [(kind, n, tuple(t.shape), t.dtype) for kind, named in
            (("parameter", model.named_parameters()), ("buffer", model.named_buffers()))
            for n, t in named]


def _models_reason(models: list[nn.Module]) -> str | None:
    """Why ``models`` cannot be stacked, or None."""
    if not models:
        return "no models"
    if len({id(m) for m in models}) != len(models):
        return "the same model object appears twice; pass copies (copy.deepcopy)"
    first, sig = models[0], _signature(models[0])
    for i, m in enumerate(models[1:], 1):
        if type(m) is not type(first):
            return f"models[{i}] is a {type(m).__name__} but models[0] a {type(first).__name__}"
        other = _signature(m)
        for a, b in zip(other, sig, strict=False):  # a length mismatch is named below
            if a != b:
                return (f"models[{i}] has {a[0]} {a[1]} {a[2]} {a[3]} where models[0] has "
                        f"{b[0]} {b[1]} {b[2]} {b[3]}")
        if len(other) != len(sig):
            return f"models[{i}] has {len(other)} parameters and buffers, models[0] {len(sig)}"
    return _one_model_reason(models)


def _one_model_reason(models: list[nn.Module]) -> str | None:
    """The checks of each model on its own: parameters, devices, hooks, batch norm."""
    devices = {t.device for m in models for t in [*m.parameters(), *m.buffers()]}
    if len(devices) > 1:
        return f"tensors on several devices ({', '.join(sorted(map(str, devices)))})"
    m = models[0]
    params = list(m.parameters())
    if not params:
        return "no parameters"
    if len(list(m.named_parameters(remove_duplicate=False))) != len(params):
        return "shares a parameter between layers (tied weights)"
    if any(not p.is_floating_point() for p in params):
        return "parameters that are not floating point"
    for model in models:
        if any(not p.requires_grad for p in model.parameters()):
            return "frozen parameters (requires_grad=False)"
        for mod in model.modules():
            if mod._forward_hooks or mod._forward_pre_hooks or mod._backward_hooks \
                    or mod._backward_pre_hooks:
                return f"has module hooks on a {type(mod).__name__} (the step would skip them)"
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.momentum is None \
                    and mod.track_running_stats:
                return "has BatchNorm with momentum=None (its average reads the step count)"
        if any(p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None)
               for p in model.parameters()):
            return "has parameter hooks (the step would skip them)"
    return None


def _recipes_reason(recipes: list[Recipe], k: int) -> str | None:
    """Why runs with ``recipes`` cannot share one stacked step, or None."""
    if len(recipes) != k:
        return f"{len(recipes)} recipes for {k} models; pass one recipe per model"
    first = recipes[0]
    for i, r in enumerate(recipes):
        if r.optimizer != "sgd":
            return f"recipes[{i}] has optimizer={r.optimizer!r} (only 'sgd' is stacked)"
        if r.ema is not None:
            return f"recipes[{i}] has ema={r.ema!r} (no stacked average)"
        for field in dataclasses.fields(r):
            mine, theirs = getattr(r, field.name), getattr(first, field.name)
            if field.name not in _PER_RUN and mine != theirs:
                return (f"recipes[{i}] has {field.name}={mine!r} but recipes[0] has "
                        f"{theirs!r}; runs trained together differ only in lr, "
                        "weight_decay and seed")
    return None
