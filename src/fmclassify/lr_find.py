"""The learning-rate range test: train briefly at rising rates, see where the loss falls fastest.

:func:`lr_find` (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section
3.3; as fastai's ``Learner.lr_find``) makes ``steps`` optimizer steps, one batch each, at
exponentially rising learning rates, records each batch's loss, and afterwards puts every
weight of the model back. :class:`LRFinderResult` holds the curve and the suggested rates.

The rules, step ``i = 0 .. steps - 1``:

* **rate**: ``lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))``. The loss of step
  ``i`` is that of its batch before the update with ``lr_i`` (as fastai records it).
* **smoothing**: ``avg_i = 0.98 * avg_(i-1) + 0.02 * loss_i`` from ``avg_(-1) = 0``, reported
  bias-corrected as ``smoothed_i = avg_i / (1 - 0.98 ** (i + 1))`` (as Adam corrects its
  moments), so the first values are not pulled towards zero.
* **stopping**: after a step whose smoothed loss exceeds 4 times the lowest so far (kept: it
  is finite), or at a NaN or infinite batch loss (not kept: no non-finite value ever enters
  the curve or a suggestion).
* **suggestions**, read from the smoothed curve without its first ``len // 10`` steps (tiny
  rates, where the average still settles) and its last 5 (the blow-up), as fastai does
  (the whole curve when fewer than 5 points would remain):

  ``"valley"``
      after fastai's valley: the longest strictly decreasing subsequence of the smoothed
      losses (in rate order) bounds a valley, from its first point to its last (its lowest).
      The suggestion is the first point of the valley by which the smoothed loss has made
      :data:`VALLEY_DROP` (a quarter) of the valley's fall. fastai counts in steps instead
      (about half way: ``start + L//3 + L//6``), but the subsequence also threads through the
      noise of the curve's flat start, so a point counted in steps moves with the length of
      that plateau. With plain SGD the base MLP's loss stays near ln(10) up to rates of about
      0.01, and half (or 2/3) of the steps into the valley lands among rates too small to
      train in ten epochs; counted in loss, the plateau adds nothing. This is
      :attr:`LRFinderResult.suggestion`.
  ``"steepest"``
      the rate at the start of the steepest fall of the smoothed loss against ``log(lr)``.
  ``"minimum/10"``
      a tenth of the rate at the lowest smoothed loss.

What a suggestion means, and momentum
-------------------------------------
A suggestion is a rate at which the loss fell during the test, under the recipe the test ran
with: each rate got one batch, from the weights the smaller rates left. It is a place to start
a short search, not the best rate of a run. Measured against 2-epoch runs on 6,000 images
(``benchmarks/lr_find_check.py``, figures in ``benchmarks/README.md``), the valley was the
best rate or within 2 points of it for the course's ``base`` and ``deeper`` with and without
momentum, and 6-7x below the best for a small two-block CNN, where ``"steepest"`` was right;
so train the valley and the steepest rate (and one between) and let the runs decide.

Run the test with the momentum (and batch size, weight decay, label smoothing) you will train
with. SGD's momentum ``m`` sums the recent gradients into each step, up to ``1 / (1 - m)``
times one gradient (10 for 0.9), so the loss starts to fall at smaller rates: momentum 0.9
moved each suggestion down by 3-4x, and the best rates of real runs moved with it (``base``:
best 0.3 without, 0.03 with). A suggestion found without momentum is too large for a run
with it, and one found with it too small for a run without.

The test never changes the model: its parameters and buffers (batch-norm statistics
included), their gradients, its device and each module's training flag are restored, and so is
torch's global random state (used by dropout; seeded with ``seed`` for the run), also when the
test fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fmclassify._batching import index_batches
from fmclassify._checks import check_device, check_int, check_positive
from fmclassify._tables import Table, to_html, to_text
from fmclassify.data import ImageDataset
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.recipes import Recipe, make_optimizer
from fmclassify.steps import Batch, make_step

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SUGGESTIONS", "VALLEY_DROP", "LRFinderResult", "lr_find", "suggest"]

#: The suggestion names, the default (:attr:`LRFinderResult.suggestion`) first.
SUGGESTIONS = ("valley", "steepest", "minimum/10")
#: The fraction of the valley's fall in smoothed loss at which the valley suggestion lies.
VALLEY_DROP = 0.25

_BETA = 0.98  # smoothing of the loss (fastai's)
_DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
_TRIM_END = 5  # points dropped at the end before suggesting (fastai's)

#: The Trainer arguments lr_find accepts, with their defaults (the course's recipe).
_TRAINER_DEFAULTS: dict[str, Any] = {
    "batch_size": 64, "optimizer": "sgd", "momentum": 0.0, "nesterov": False,
    "weight_decay": 0.0, "label_smoothing": 0.0, "clip_grad_norm": None, "precision": "fp32",
    "device": "auto",
}

_STOPS = {
    "completed": "ran every step",
    "diverged": f"stopped: the smoothed loss passed {_DIVERGE:g}x its minimum",
    "non-finite": "stopped: the loss became NaN or infinite",
}


@dataclass
class LRFinderResult:
    """The curve of a learning-rate range test, and the rates it suggests.

    Parameters
    ----------
    lrs, losses, smoothed : list of float
        Per step run: the learning rate, the batch's cross-entropy (nats) and its smoothed
        value (all finite, same length).
    suggestions : dict of str to float
        ``"valley"``, ``"steepest"``, ``"minimum/10"``: rates as defined in the module
        docstring.
    stop_reason : {"completed", "diverged", "non-finite"}
        Why the test ended; ``"diverged"``: the smoothed loss passed 4x its minimum.
    settings : dict
        What the test ran with: ``start_lr``, ``end_lr``, ``steps`` (planned), ``seed`` and
        the trainer arguments.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.lr_find(fmc.build_model("base"), train)    # doctest: +SKIP
    >>> result.suggestion, result.suggestions["steepest"]       # doctest: +SKIP
    >>> result.plot(sweep=fmc.lr_sweep(lrs=(1, 0.1, 0.01)))     # doctest: +SKIP
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float]
    stop_reason: str = "completed"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def suggestion(self) -> float:
        """The one rate to try first: the ``"valley"`` suggestion."""
        return self.suggestions["valley"]

    def plot(self, sweep: Any = None, ax: Axes | None = None) -> Figure:
        """Plot loss against learning rate (log axis), with the suggestions marked.

        Parameters
        ----------
        sweep : ExperimentResult, optional
            The result of :func:`fmclassify.lr_sweep`: each rate it trained is drawn as a
            dotted vertical line labelled with its final accuracy.
        ax : matplotlib.axes.Axes, optional
            Draw into this axes instead of a new figure.

        Returns
        -------
        matplotlib.figure.Figure
            Lines: raw loss, smoothed loss, one marker per suggestion, one per swept rate.

        Raises
        ------
        ConfigError
            ``sweep`` is not an experiment result with ``lr`` and ``final_accuracy`` columns.
        """
        from fmclassify import plotting

        points = None if sweep is None else _sweep_points(sweep)
        return plotting.plot_lr_find(self.lrs, self.losses, self.smoothed, self.suggestions,
                                     sweep=points, ax=ax)

    def to_dataframe(self) -> Any:
        """The curve as a :class:`pandas.DataFrame`: one row per step run, in order.

        Needs pandas, the optional extra ``fmclassify[pandas]``. Columns: ``step`` (int64,
        from 1), ``lr``, ``loss`` and ``smoothed`` (float64, as :attr:`lrs`, :attr:`losses`,
        :attr:`smoothed`). The suggestions are :attr:`suggestions`.

        Raises
        ------
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.
        """
        from fmclassify._frames import frame  # pandas only when asked

        rows = [{"step": i, "lr": lr, "loss": loss, "smoothed": smooth} for i, (lr, loss, smooth)
                in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=True), start=1)]
        columns = {"step": "int64", "lr": "float64", "loss": "float64", "smoothed": "float64"}
        return frame(rows, columns, what="LRFinderResult.to_dataframe")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, plus the chosen ``suggestion``."""
        return {**asdict(self), "suggestion": self.suggestion}

    def _table(self) -> Table:
        """The suggestions, the default marked: one table for text and for a notebook."""
        planned = self.settings.get("steps", len(self.lrs))
        stop = _STOPS.get(self.stop_reason, self.stop_reason)
        rows = [[name, f"{lr:.3g}", "<- suggestion" if name == "valley" else ""]
                for name, lr in self.suggestions.items()]
        return Table(["suggestion", "learning rate", ""], rows, right=frozenset({1}),
                     title=(f"Learning-rate range test: {len(self.lrs)} of {planned} steps, "
                            f"lr {self.lrs[0]:.3g} .. {self.lrs[-1]:.3g} ({stop})"))

    def __str__(self) -> str:
        return to_text(self._table())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text("LRFinderResult(...)" if cycle else str(self))

    def _repr_html_(self) -> str:
        return to_html(self._table())


def _sweep_points(sweep: Any) -> list[tuple[float, float | None]]:
    """(lr, final accuracy) per row of an lr sweep's table."""
    table = getattr(sweep, "table", None)
    if not callable(table):
        raise ConfigError(f"sweep must be the result of fmc.lr_sweep(...) (an ExperimentResult),"
                          f" got {type(sweep).__name__}")
    try:
        return [(float(row["lr"]), row.get("final_accuracy")) for row in table()]
    except (KeyError, TypeError, ValueError):
        raise ConfigError("sweep's table has no numeric 'lr' column; pass the result of "
                          "fmc.lr_sweep(...), not of compare_models(...)") from None


# -- suggestions (pure: lists in, rates out) ----------------------------------------------------


def _valley_bounds(values: list[float]) -> tuple[int, int]:
    """First and last index of the longest strictly decreasing subsequence (earliest on ties)."""
    length, start = [1] * len(values), list(range(len(values)))
    for i in range(1, len(values)):
        for j in range(i):
            if values[i] < values[j] and length[j] + 1 > length[i]:
                length[i], start[i] = length[j] + 1, start[j]
    end = max(range(len(values)), key=lambda i: (length[i], -i))
    return start[end], end


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    """Suggest learning rates from a range test's curve (the rules are in the module docstring).

    Parameters
    ----------
    lrs, smoothed : list of float
        The rising learning rates and the smoothed losses at them: finite, equally long, at
        least 2 points.

    Returns
    -------
    dict of str to float
        ``"valley"``, ``"steepest"`` and ``"minimum/10"``, in that order.

    Examples
    --------
    >>> lrs = [10.0 ** e for e in range(-6, 2)]
    >>> suggest(lrs, [2.3, 2.3, 2.2, 1.9, 1.0, 0.5, 0.4, 3.0])
    {'valley': 0.01, 'steepest': 0.001, 'minimum/10': 0.1}
    """
    lo, hi = len(lrs) // 10, len(lrs) - _TRIM_END
    if hi - lo < 5:
        lo, hi = 0, len(lrs)
    lr, loss = lrs[lo:hi], smoothed[lo:hi]
    slopes = [(loss[i + 1] - loss[i]) / (math.log(lr[i + 1]) - math.log(lr[i]))
              for i in range(len(lr) - 1)]
    first, last = _valley_bounds(loss)
    target = loss[first] - VALLEY_DROP * (loss[first] - loss[last])
    valley = next(i for i in range(first, last + 1) if loss[i] <= target)
    return {
        "valley": lr[valley],
        "steepest": lr[min(range(len(slopes)), key=slopes.__getitem__)],
        "minimum/10": lr[min(range(len(loss)), key=loss.__getitem__)] / 10,
    }


# -- checks -------------------------------------------------------------------------------------


def _check_trainer_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer arguments with defaults filled in; unknown keys are refused."""
    for key in kwargs:
        if key not in _TRAINER_DEFAULTS:
            raise ConfigError(f"lr_find() got an unknown argument {key!r}; it accepts "
                              f"{', '.join(_TRAINER_DEFAULTS)} (and start_lr, end_lr, steps, "
                              "seed)")
    settings = {**_TRAINER_DEFAULTS, **kwargs}
    check_int("batch_size", settings["batch_size"])  # the rest is checked by Recipe
    settings["device"] = check_device(settings["device"])
    return settings


def _check_range(start_lr: object, end_lr: object, steps: object) -> list[float]:
    """The planned learning rates, after checking the range and the step count."""
    start, end = check_positive("start_lr", start_lr), check_positive("end_lr", end_lr)
    if start >= end:
        raise ConfigError(f"start_lr must be smaller than end_lr, got start_lr={start_lr!r} and "
                          f"end_lr={end_lr!r}; the usual range is 1e-7 .. 10")
    n = check_int("steps", steps, minimum=2)
    return [start * (end / start) ** (i / (n - 1)) for i in range(n)]


def _home_device(model: nn.Module) -> torch.device:
    """The one device all of the model's tensors are on."""
    tensors = [*model.parameters(), *model.buffers()]
    if any(isinstance(t, nn.parameter.UninitializedParameter) for t in tensors):
        raise ConfigError("the model has uninitialized (lazy) parameters; run one batch through"
                          " it first, so lr_find can put its weights back afterwards")
    homes = {t.device for t in tensors}
    if len(homes) > 1:
        raise ConfigError(f"the model's tensors lie on several devices ({sorted(map(str, homes))})"
                          "; lr_find() needs the whole model on one, e.g. model.cpu()")
    return homes.pop() if homes else torch.device("cpu")


# -- the test ----------------------------------------------------------------------------------


@contextmanager
def _restored(model: nn.Module, home: torch.device, device: torch.device,
              seed: int) -> Iterator[nn.Module]:
    """Run the body on ``device`` with seeded RNGs, then put the model and the RNGs back.

    Parameters, buffers (persistent or not) and gradients are copied back into the model's
    own tensors, so references a caller holds (an optimizer's) stay valid.
    """
    flags = [m.training for m in model.modules()]
    tensors = [t.detach().clone() for t in (*model.parameters(), *model.buffers())]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        torch.default_generator.manual_seed(seed)  # dropout draws; not torch.manual_seed,
        if cuda_rng is not None:  # which would also (lazily) reseed every other GPU
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield model.to(device)
    finally:
        model.to(home)
        with torch.no_grad():
            for tensor, saved in zip((*model.parameters(), *model.buffers()), tensors,
                                     strict=True):
                tensor.copy_(saved)
        for param, grad in zip(model.parameters(), grads, strict=True):
            param.grad = grad
        for module, flag in zip(model.modules(), flags, strict=True):
            module.training = flag
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)


def _endless(n: int, batch_size: int, generator: torch.Generator,
             device: torch.device) -> Iterator[torch.Tensor]:
    """The rows of shuffled batches, epoch after epoch, from one seeded generator.

    The Trainer's batching (:func:`~fmclassify._batching.index_batches`): the same order as
    ``DataLoader(shuffle=True)`` with that generator.
    """
    while True:
        yield from index_batches(n, batch_size, shuffle=True, generator=generator, device=device)


def _as_is(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's way to the step: unchanged (the test trains without augmentation)."""
    return x, y


def _run(model: nn.Module, train: ImageDataset, lrs: list[float], s: Mapping[str, Any],
         recipe: Recipe, seed: int) -> tuple[list[float], list[float], str]:
    """The steps of the test: (raw losses, smoothed losses, stop reason)."""
    device = s["device"]
    data = train.to(device)
    images, labels = data.float_images(), data.labels
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], recipe, lrs[0])
    # The Trainer's own step: the recipe's label smoothing, clipping and precision apply as
    # they will in the run the test is for.
    step = make_step("autograd", model, optimizer, recipe)
    batches = _endless(len(labels), s["batch_size"], torch.Generator().manual_seed(seed), device)
    zero = torch.zeros((), device=device)
    model.train()
    losses: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    for i, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = next(batches)
        # Each rate is an epoch of one batch: a step reads the optimizer's rate at an epoch's
        # start at the latest, and a sum started at zero is this batch's loss alone.
        step.begin_epoch(zero)
        step(Batch(images, labels, index, _as_is, plain=True))
        step.end_epoch()
        # One host sync per step, which the Trainer avoids: the stopping rule needs the number.
        value = float(step.loss_sum()) / len(index)  # the batch's mean loss, before its update
        if not math.isfinite(value):
            return losses, smoothed, "non-finite"  # (the update it made is undone on return)
        average = _BETA * average + (1 - _BETA) * value
        losses.append(value)
        smoothed.append(average / (1 - _BETA ** (i + 1)))
        best = min(best, smoothed[-1])
        if smoothed[-1] > _DIVERGE * best:
            return losses, smoothed, "diverged"
    return losses, smoothed, "completed"


def lr_find(model: nn.Module, train: ImageDataset, *, start_lr: float = 1e-7,
            end_lr: float = 10, steps: int = 100, seed: int = 0,
            **trainer_kwargs: Any) -> LRFinderResult:
    """Run a learning-rate range test on ``model`` and suggest a learning rate.

    Parameters
    ----------
    model : torch.nn.Module
        The untrained (or partly trained) model; it is left exactly as it was.
    train : ImageDataset
        The training split; batches are drawn from it shuffled, as the Trainer draws them.
    start_lr, end_lr : float, default 1e-7 and 10
        The rates of the first and last step (finite, ``0 < start_lr < end_lr``).
    steps : int, default 100
        Optimizer steps (>= 2), one batch each; the data restarts (reshuffled) when used up.
    seed : int, default 0
        Seeds the batch order and the global random state (dropout) during the test: the
        same seed gives the same result on the same machine.
    **trainer_kwargs
        The Trainer's recipe arguments: ``batch_size`` (64), ``optimizer`` ("sgd"),
        ``momentum`` (0), ``nesterov`` (False), ``weight_decay`` (0), ``label_smoothing``
        (0), ``clip_grad_norm`` (None), ``precision`` ("fp32") and ``device`` ("auto": CUDA
        when available). Each step is the Trainer's autograd step
        (:mod:`fmclassify.steps`), so they act as they do in training.

    Returns
    -------
    LRFinderResult
        The curve, the suggestions, and why it stopped.

    Notes
    -----
    The suggestions hold for the recipe passed here: run the test with the ``momentum``,
    ``batch_size``, ``weight_decay`` and ``label_smoothing`` the Trainer will use (momentum 0.9
    moves the good rates down by 3-10x). Treat ``suggestion`` (the valley) as the low end of a
    short search up to ``suggestions["steepest"]``; see the module documentation for the
    measurements.

    Raises
    ------
    ConfigError
        A bad range, step count, seed or trainer argument (an unknown one is named, with the
        accepted ones), a model that is not a Module; or a loss that diverged so soon that
        fewer than 2 steps are left to suggest from (start lower).
    DataError
        ``train`` is not an ImageDataset.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> train, test = fmc.load_dataset()                       # doctest: +SKIP
    >>> result = fmc.lr_find(fmc.build_model("base", seed=0), train)   # doctest: +SKIP
    >>> fmc.Trainer(fmc.build_model("base"), lr=result.suggestion, epochs=10)  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}; "
                          "build one with fmc.build_model('base')")
    if not isinstance(train, ImageDataset):
        raise DataError(f"train must be an fmclassify ImageDataset (from load_dataset()), got "
                        f"{type(train).__name__}")
    lrs = _check_range(start_lr, end_lr, steps)
    seed = check_int("seed", seed, minimum=0)
    s = _check_trainer_kwargs(trainer_kwargs)
    recipe = Recipe(optimizer=s["optimizer"], momentum=s["momentum"], nesterov=s["nesterov"],
                    weight_decay=s["weight_decay"], label_smoothing=s["label_smoothing"],
                    clip_grad_norm=s["clip_grad_norm"], precision=s["precision"])
    home = _home_device(model)
    with _restored(model, home, s["device"], seed):
        losses, smoothed, reason = _run(model, train, lrs, s, recipe, seed)
    if len(losses) < 2:
        raise ConfigError(f"the loss diverged within {len(losses) + 1} step(s), at lr "
                          f"{lrs[len(losses)]:.3g}; lower start_lr (now {start_lr!r})")
    settings = {"start_lr": lrs[0], "end_lr": lrs[-1], "steps": len(lrs), "seed": seed,
                **s, "optimizer": recipe.describe()["optimizer"], "device": str(s["device"])}
    return LRFinderResult(lrs[:len(losses)], losses, smoothed, suggest(lrs[:len(losses)],
                          smoothed), reason, settings)
