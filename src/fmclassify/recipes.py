"""Training recipes: optimizer, schedule, augmentation, validation split, precision, EMA.

A :class:`Recipe` holds every choice of a training setup beyond the model, the learning rate,
the epoch budget and the batch size, checked when it is made. :class:`~fmclassify.Trainer`
builds its pieces from it with the functions below; the defaults are the course's (plain SGD,
a constant learning rate, no augmentation, no validation split, fp32, no EMA).

Choices a reader might question:

* **Schedules step per batch**, so a one-cycle or cosine schedule is smooth over a short run.
  ``"step"`` multiplies the rate by 0.1 at half and at three quarters of the budget.
  ``warmup_epochs`` ramps the rate linearly from 1 % of ``lr`` before any schedule (or before a
  constant rate); ``"one-cycle"`` has its own ramp, which ``warmup_epochs`` then sets the
  length of (else torch's 30 %). One-cycle leaves the momentum constant.
* **Augmentation runs on whole batches on the training device**, drawn from the Trainer's
  seeded generator on the CPU (a few numbers per batch, copied over): no per-sample PIL
  transform, and a resumed run draws the same flips and crops. ``"crop"`` pads by 4 pixels
  for 32x32 images and by 2 for 28x28 (:func:`crop_padding`) with the value of a black pixel,
  then crops back at a random offset per image; ``"flip"`` mirrors half the images left to
  right. Evaluation is never augmented.
* **The validation split is stratified**: each class gives the same fraction of its images, so
  a small split still holds every class; drawn once from its own generator seeded with the
  run's seed, so it does not shift the shuffling order.
* **EMA** is :class:`torch.optim.swa_utils.AveragedModel` with an exponential average of the
  parameters (and batch-norm buffers), updated after every step and used for evaluation, with
  the warm-up of :func:`ema_decay` so it does not start dominated by the initial weights. It
  pays off when the run is long against ``1 / (1 - decay)`` steps (1,000 for 0.999, 100 for
  0.99): the average then smooths the last of many steps. Over a run of a few hundred steps
  the warm-up keeps it close to the raw weights (within a point or two), and a full ``decay``
  never applies; the History records the raw model's accuracy beside it (``raw_*`` fields).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from fmclassify._checks import (
    check_choice,
    check_fraction,
    check_int,
    check_nonnegative,
    check_positive,
    check_probability,
)
from fmclassify.data import ImageDataset
from fmclassify.exceptions import ConfigError

__all__ = [
    "AUGMENTATIONS",
    "EMA_WARMUP",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "BatchAugment",
    "Recipe",
    "autocast",
    "black_value",
    "crop_padding",
    "ema_decay",
    "make_ema",
    "make_optimizer",
    "make_schedule",
    "split_validation",
]

#: Optimizer names; a callable ``params -> torch.optim.Optimizer`` is accepted too.
OPTIMIZERS = ("sgd", "adam", "adamw")
#: Schedule names; ``None`` is a constant rate, a callable ``optimizer -> LRScheduler`` is
#: accepted too.
SCHEDULES = ("step", "cosine", "one-cycle")
#: Named batch augmentations; callables ``(B, C, H, W) -> (B, C, H, W)`` are accepted too.
AUGMENTATIONS = ("flip", "crop", "erase")
#: Numeric precisions of the forward pass.
PRECISIONS = ("fp32", "bf16")

OptimizerArg = str | Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
ScheduleArg = str | Callable[[torch.optim.Optimizer], Any] | None
AugmentArg = str | Callable[[torch.Tensor], torch.Tensor]

_WARMUP_START = 0.01  # warm-up starts at 1 % of the learning rate


@dataclass(frozen=True)
class Recipe:
    """Everything a training run is set up with beyond model, lr, epochs and batch size.

    Parameters
    ----------
    optimizer : {"sgd", "adam", "adamw"} or callable, default "sgd"
        A name, or ``params -> torch.optim.Optimizer``; the Trainer's ``lr`` is then set on
        every parameter group (it stays the one learning-rate knob, and schedules start from it).
    momentum : float, default 0.0
        SGD momentum (for Adam and AdamW, ``beta1``), >= 0 and < 1.
    nesterov : bool, default False
        Nesterov momentum (SGD only; needs ``momentum > 0``).
    weight_decay : float, default 0.0
        L2 penalty (SGD, Adam) or decoupled decay (AdamW), >= 0.
    schedule : {None, "step", "cosine", "one-cycle"} or callable, default None
        Learning-rate schedule stepped after every batch; a callable takes the optimizer and
        returns a ``torch.optim.lr_scheduler.LRScheduler``.
    warmup_epochs : int, default 0
        Epochs of linear warm-up from 1 % of ``lr``.
    label_smoothing : float, default 0.0
        Of the training loss, in [0, 1); evaluation losses are plain cross-entropy.
    clip_grad_norm : float or None, default None
        Clip the gradients' global L2 norm to this (callbacks see them unclipped).
    augment : sequence of {"flip", "crop", "erase"} or callables, or str, optional
        Batch augmentations applied in order to every training batch; a string is one name
        (``"flip"``) or comma-separated names (``"crop,flip"``), kept as a tuple of names.
    val_split : float or int or None, default None
        Hold out this fraction (0 < f < 1) or count of the training set, stratified by class.
    precision : {"fp32", "bf16"}, default "fp32"
        ``"bf16"`` runs forward passes under ``torch.autocast`` in bfloat16 (CPU and CUDA).
    ema : float or None, default None
        Decay of an exponential moving average of the weights, in (0, 1), e.g. 0.999;
        evaluation then uses the average, warmed up by :func:`ema_decay`. Worth it when the
        run is long against ``1 / (1 - ema)`` steps (1,000 for 0.999, 100 for 0.99).

    Raises
    ------
    ConfigError
        For any value out of range, an unknown name, or a combination that cannot work
        (Nesterov without momentum, a warm-up as long as the run is checked by the Trainer).

    Examples
    --------
    >>> r = Recipe(momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine")
    >>> r.describe()["schedule"]
    'cosine'
    >>> Recipe().is_plain_sgd
    True
    """

    optimizer: OptimizerArg = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: ScheduleArg = None
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    augment: tuple[AugmentArg, ...] | str | None = None  # a str becomes a tuple
    val_split: float | int | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    ema: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.optimizer):
            check_choice("optimizer", self.optimizer, OPTIMIZERS,
                         also="or a callable params -> torch.optim.Optimizer")
        momentum = check_nonnegative("momentum", self.momentum)
        if momentum >= 1:
            raise ConfigError(f"momentum must be >= 0 and < 1, got {self.momentum!r}; "
                              "SGD recipes use 0.9")
        if not isinstance(self.nesterov, bool):
            raise ConfigError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.nesterov and (momentum == 0 or self.optimizer != "sgd"):
            raise ConfigError("nesterov=True needs optimizer='sgd' with momentum > 0, e.g. "
                              "momentum=0.9")
        check_nonnegative("weight_decay", self.weight_decay)
        if self.schedule is not None and not callable(self.schedule):
            check_choice("schedule", self.schedule, SCHEDULES,
                         also="None (constant) or a callable optimizer -> LRScheduler")
        check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        check_probability("label_smoothing", self.label_smoothing, closed=False)
        if self.clip_grad_norm is not None:
            check_positive("clip_grad_norm", self.clip_grad_norm)
        if self.augment is not None:
            object.__setattr__(self, "augment", _check_augment(self.augment))
        if self.val_split is not None:
            _check_val_split(self.val_split)
        check_choice("precision", self.precision, PRECISIONS)
        if self.ema is not None:
            check_fraction("ema", self.ema)

    @property
    def is_plain_sgd(self) -> bool:
        """Plain SGD at a constant rate on the plain loss: what the fused MLP step computes."""
        return (self.optimizer == "sgd" and self.momentum == 0 and self.weight_decay == 0
                and self.schedule is None and self.warmup_epochs == 0
                and self.label_smoothing == 0 and self.clip_grad_norm is None
                and self.precision == "fp32" and self.ema is None)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: every element, callables by their qualified name."""
        return {
            "optimizer": _name(self.optimizer),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "schedule": None if self.schedule is None else _name(self.schedule),
            "warmup_epochs": self.warmup_epochs,
            "label_smoothing": self.label_smoothing,
            "clip_grad_norm": self.clip_grad_norm,
            "augment": None if self.augment is None else [_name(a) for a in self.augment],
            "val_split": self.val_split,
            "precision": self.precision,
            "ema": self.ema,
        }

    def check_budget(self, epochs: int) -> None:
        """Refuse a warm-up that leaves no epoch of the budget to train at full rate."""
        if self.warmup_epochs >= epochs and self.warmup_epochs > 0:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) must be smaller than "
                              f"epochs ({epochs})")


def _name(value: Any) -> str:
    if isinstance(value, str):
        return value
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    module = getattr(value, "__module__", None) or type(value).__module__
    return f"{module}.{name}"


def _check_augment(augment: object) -> tuple[AugmentArg, ...]:
    if isinstance(augment, str):
        augment = [a.strip() for a in augment.split(",") if a.strip()]
    if not isinstance(augment, Iterable):
        raise ConfigError(f"augment must be None or a sequence of {AUGMENTATIONS} and "
                          f"callables, got {augment!r}")
    items = tuple(augment)
    for item in items:
        if not callable(item):
            check_choice("augmentation", item, AUGMENTATIONS,
                         also="or a callable (B, C, H, W) -> (B, C, H, W)")
    return items


def _check_val_split(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"val_split must be None, a fraction in (0, 1) or a count >= 1, "
                          f"got {value!r}")
    if isinstance(value, float) and not 0 < value < 1:
        raise ConfigError(f"val_split must be a fraction in (0, 1) or a count >= 1, got "
                          f"{value!r}; 0.1 holds out a tenth of the training set")
    if isinstance(value, int) and value < 1:
        raise ConfigError(f"val_split must be a fraction in (0, 1) or a count >= 1, got {value!r}")


# -- optimizer and schedule -------------------------------------------------------------------


def make_optimizer(params: Sequence[torch.nn.Parameter], recipe: Recipe,
                   lr: float) -> torch.optim.Optimizer:
    """The optimizer of ``recipe`` over ``params`` at learning rate ``lr``.

    Raises
    ------
    ConfigError
        No trainable parameters, or a callable that did not return an Optimizer.
    """
    params = list(params)
    if not params:
        raise ConfigError("the model has no trainable parameters; unfreeze some before training")
    name, mom, wd = recipe.optimizer, recipe.momentum, recipe.weight_decay
    if callable(name):
        opt = name(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(f"optimizer callable {_name(name)} returned "
                              f"{type(opt).__name__}, not a torch.optim.Optimizer")
        for group in opt.param_groups:
            group["lr"] = lr
        return opt
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=mom, nesterov=recipe.nesterov,
                               weight_decay=wd)
    betas = (mom if mom > 0 else 0.9, 0.999)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, *, epochs: int,
                  steps_per_epoch: int) -> Any:
    """The per-batch learning-rate scheduler of ``recipe``, or None for a constant rate.

    Parameters
    ----------
    epochs, steps_per_epoch : int
        The run's budget; schedules span ``epochs * steps_per_epoch`` steps.

    Raises
    ------
    ConfigError
        A callable that did not return a scheduler.
    """
    from torch.optim import lr_scheduler as sched

    total = epochs * steps_per_epoch
    warm = recipe.warmup_epochs * steps_per_epoch
    kind = recipe.schedule
    if callable(kind):
        made = kind(optimizer)
        if not isinstance(made, sched.LRScheduler):
            raise ConfigError(f"schedule callable {_name(kind)} returned {type(made).__name__}, "
                              "not a torch.optim.lr_scheduler.LRScheduler")
        return made
    if kind == "one-cycle":
        lrs = [g["lr"] for g in optimizer.param_groups]
        return sched.OneCycleLR(optimizer, max_lr=lrs, total_steps=total,
                                pct_start=warm / total if warm else 0.3, cycle_momentum=False)
    if kind is None and not warm:
        return None
    rest = total - warm
    main: sched.LRScheduler
    if kind == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(rest, 1))
    elif kind == "step":
        main = sched.MultiStepLR(optimizer, [rest // 2, (3 * rest) // 4], gamma=0.1)
    else:
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warm:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=_WARMUP_START, total_iters=warm)
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warm])


# -- augmentation -----------------------------------------------------------------------------


class BatchAugment:
    """Apply a recipe's augmentations to a training batch (B, C, H, W) on its device.

    Parameters
    ----------
    augment : sequence of {"flip", "crop", "erase"} or callables
        In order: ``"flip"`` mirrors half of the images left to right, ``"crop"`` pads by
        :func:`crop_padding` with black and crops back at a random offset, ``"erase"`` fills
        one random rectangle of half of the images with black (random erasing, Zhong et al.
        2017: 2-33 % of the image, aspect ratio 0.3-3.3), each image drawn on its own.
    black : sequence of float
        Per channel, the value a black pixel has after the data set's normalisation (the
        crop's padding).

    Examples
    --------
    >>> aug = BatchAugment(["flip"], black=[0.0])
    >>> x = torch.arange(4.0).view(1, 1, 1, 4).repeat(64, 1, 1, 1)
    >>> out = aug(x, torch.Generator().manual_seed(0))
    >>> sorted({tuple(row) for row in out.view(64, 4).tolist()})
    [(0.0, 1.0, 2.0, 3.0), (3.0, 2.0, 1.0, 0.0)]
    """

    def __init__(self, augment: Sequence[AugmentArg], *, black: Sequence[float]) -> None:
        self.augment = _check_augment(augment)
        self.black = tuple(float(b) for b in black)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch (a new tensor; ``x`` is not modified)."""
        for item in self.augment:
            if item == "flip":
                x = _flip(x, generator)
            elif item == "crop":
                x = _crop(x, generator, self.black)
            elif item == "erase":
                x = _erase(x, generator, self.black)
            else:
                x = item(x)  # type: ignore[operator]
        return x


def _flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen) < 0.5  # drawn on the CPU: a few bytes
    mask = mask.to(x.device, non_blocking=True).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)


def crop_padding(size: int) -> int:
    """Pixels of padding for ``"crop"``: 4 for 32x32 images, 2 for 28x28, else side // 8 (>= 1).

    Examples
    --------
    >>> crop_padding(32), crop_padding(28), crop_padding(8)
    (4, 2, 1)
    """
    return {32: 4, 28: 2}.get(size, max(1, size // 8))


def _crop(x: torch.Tensor, gen: torch.Generator, black: Sequence[float]) -> torch.Tensor:
    b, c, h, w = x.shape
    p = crop_padding(min(h, w))
    padded = x.new_empty((b, c, h + 2 * p, w + 2 * p))
    padded.copy_(torch.as_tensor(black, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
                 .expand_as(padded))
    padded[:, :, p:p + h, p:p + w] = x
    offsets = torch.randint(0, 2 * p + 1, (2, b), generator=gen).to(x.device, non_blocking=True)
    rows = (offsets[0].view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (offsets[1].view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    index = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[index, chan, rows, cols]  # (B, C, H, W), one offset per image


def _erase(x: torch.Tensor, gen: torch.Generator, black: Sequence[float], *, p: float = 0.5,
           scale: tuple[float, float] = (0.02, 0.33),
           ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    b, c, h, w = x.shape
    u = torch.rand(5, b, generator=gen, dtype=torch.float64)  # drawn on the CPU
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = torch.floor(u[2] * (h - eh + 1))
    left = torch.floor(u[3] * (w - ew + 1))
    on = (u[4] < p).view(b, 1, 1)
    rows = torch.arange(h, dtype=torch.float64).view(1, h)
    cols = torch.arange(w, dtype=torch.float64).view(1, w)
    in_rows = (rows >= top.view(b, 1)) & (rows < (top + eh).view(b, 1))
    in_cols = (cols >= left.view(b, 1)) & (cols < (left + ew).view(b, 1))
    mask = (on & in_rows.view(b, h, 1) & in_cols.view(b, 1, w)).view(b, 1, h, w)
    fill = torch.as_tensor(black, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    return torch.where(mask.to(x.device, non_blocking=True), fill, x)


def black_value(dataset: ImageDataset) -> list[float]:
    """Per channel, the value a black pixel (0) has in ``dataset.float_images()``."""
    c = dataset.image_shape[0]
    if dataset.mean is None or dataset.std is None:
        return [0.0] * c
    return [-m / s for m, s in zip(dataset.mean, dataset.std, strict=True)]


# -- validation split and EMA -----------------------------------------------------------------


def split_validation(train: ImageDataset, val_split: float | int,
                     seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Hold out a stratified, seeded validation split; return (train, validation).

    Each class gives ``round(fraction * its count)`` images (for a count, the fraction
    ``count / len(train)``, with the remainder given to the classes with the largest
    fractional parts so the total is exact).

    Raises
    ------
    ConfigError
        A count that leaves no training image.
    """
    n = len(train)
    want = round(val_split * n) if isinstance(val_split, float) else int(val_split)
    if not 1 <= want < n:
        raise ConfigError(f"val_split {val_split!r} holds out {want} of {n} training images; "
                          "it must leave at least one on each side")
    gen = torch.Generator().manual_seed(seed)
    labels = train.labels.cpu()
    by_class = [torch.nonzero(labels == k).flatten() for k in range(train.num_classes)]
    exact = [want * len(ix) / n for ix in by_class]
    counts = [math.floor(e) for e in exact]
    for k in sorted(range(len(exact)), key=lambda k: exact[k] - counts[k],
                    reverse=True)[: want - sum(counts)]:
        counts[k] += 1
    held, kept = [], []
    for ix, count in zip(by_class, counts, strict=True):
        perm = ix[torch.randperm(len(ix), generator=gen)]
        held.append(perm[:count])
        kept.append(perm[count:])
    val_index = torch.cat(held).sort().values
    train_index = torch.cat(kept).sort().values
    return train.subset(train_index), train.subset(val_index)


#: The EMA's warm-up: its update ``t`` uses the decay ``min(decay, (1 + t) / (EMA_WARMUP + t))``.
EMA_WARMUP = 10


def ema_decay(decay: float, updates: int) -> float:
    """The decay the EMA applies at its update after ``updates`` earlier ones.

    ``min(decay, (1 + t) / (10 + t))`` for ``t = updates``: the warm-up of TensorFlow's
    ``tf.train.ExponentialMovingAverage(decay, num_updates=t)``. Without it, a 0.999 average
    of a 100-step run still holds 0.999 ** 100 = 90 % of its first weights, which are barely
    trained; with it the average forgets its start at once (0.18 at ``t = 1``, 0.5 at
    ``t = 8``, 0.9 at ``t = 80``) and reaches ``decay`` after ``(10 * decay - 1) / (1 - decay)``
    updates (890 for 0.99, 8,990 for 0.999). Until then, at update ``T`` it weighs the weights
    of update ``s`` about as ``(s / T) ** 8``: an average centred 90 % of the way through the
    run so far, which lags a short run little. (timm's ``ModelEmaV3`` warms up as
    ``1 - (1 + t) ** -0.75``, which averages more of a short run and so lags it more.)

    Examples
    --------
    >>> [round(ema_decay(0.999, t), 3) for t in (0, 1, 8, 80, 10_000)]
    [0.1, 0.182, 0.5, 0.9, 0.999]
    """
    return min(decay, (1 + updates) / (EMA_WARMUP + updates))


def make_ema(model: torch.nn.Module, decay: float | None) -> Any:
    """An exponential moving average of ``model``'s weights with a warm-up, or None.

    An :class:`~torch.optim.swa_utils.AveragedModel` whose update ``t`` (its ``n_averaged``
    buffer, which its ``state_dict`` carries, so a resumed run continues the warm-up bit for
    bit) moves the average towards the model by ``1 - ema_decay(decay, t)``; its first update
    copies the model. Batch-norm running means and variances are averaged with the same
    decay as the weights (``use_buffers=True``, as timm's ModelEma does), so the average's
    statistics describe activations of weights like its own; integer buffers
    (``num_batches_tracked``) are copied.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model; the average is a deep copy of it.
    decay : float or None
        The decay after the warm-up, in (0, 1); None for no EMA.
    """
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor],
               updates: torch.Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # counters: copied, not averaged
            torch._foreach_copy_(averaged, current)
            return
        # ema_decay on the device: no host sync per step (updates is on the params' device)
        kept = torch.clamp((1 + updates) / (EMA_WARMUP + updates), max=decay)
        torch._foreach_lerp_(averaged, current, (1 - kept).to(averaged[0].dtype))

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def autocast(precision: str, model: torch.nn.Module, *, cache: bool = True
             ) -> Callable[[], Any]:
    """A factory of the forward pass's autocast context: bfloat16 for ``"bf16"``, else none.

    The one place a recipe's precision becomes an autocast: the Trainer's steps and its
    evaluation use it. ``cache=False`` for a CUDA graph capture, which forbids the cache of
    casts that autocast otherwise keeps across calls.
    """
    if precision != "bf16":
        return contextlib.nullcontext
    device = next(model.parameters()).device.type

    def context() -> Any:
        return torch.autocast(device_type=device, dtype=torch.bfloat16, cache_enabled=cache)

    return context
