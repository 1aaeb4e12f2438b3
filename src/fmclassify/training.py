"""The Trainer: one model, one recipe, a fixed epoch budget, a History out.

The one epoch loop of the library is :meth:`Trainer.fit`; it reads top to bottom: batches,
augmentation, the step, the schedule and EMA, evaluation, callbacks, checkpoint. What happens
inside one step is a strategy object (:mod:`fmclassify.steps`); what the run is set up with is
a :class:`~fmclassify.recipes.Recipe`. Choices a reader might question:

* The data lives in one float tensor on the training device, and a batch is its rows of it,
  gathered by index (a :class:`~fmclassify._batching.Batch`, in a DataLoader's order): no
  per-sample PIL transform, no DataLoader workers, no host-to-device copy per step.
* The training loss is summed on the device, by the step, and read once per epoch (and every
  ``_FINITE_CHECK_EVERY`` steps to catch divergence early): ``loss.item()`` on every step would
  force a host sync, which costs real time on a GPU.
* The loop asks its driver for each step (``yield step, batch``) instead of calling it: alone
  (:meth:`Trainer.fit`) the step is computed at once; in :func:`fit_together` the steps of
  several runs' loops are computed as one batched model, while each loop keeps everything else
  of its run. One loop serves both.
* On a GPU an epoch that began on autograd (a callback reading gradients, such as a
  :class:`~fmclassify.GradientTracer` for its first 100 steps) moves to the faster step as
  soon as no callback reads them; on the CPU it stays on one step, so its numbers do not change.
* Losses are sample-weighted means (``reduction="sum"`` over the set divided by its size), so
  a smaller last batch does not weigh as much as a full one.
* A non-finite training loss ends the run as ``"diverged"``; the unfinished epoch is not
  recorded, so no NaN is ever averaged into a record. The model keeps the weights where it
  diverged, whichever step trained it.
* Conv models train channels-last on the CPU (``benchmarks/cnn_speed.py``).
* Under torchrun (:mod:`fmclassify.distributed`) the same loop trains one run over several
  processes: every rank draws the same global batch and trains on its rows of it
  (``shard.split``), gradients are summed by DistributedDataParallel, and the losses and
  counts are summed over the ranks (``shard.sum``); one process is rank 0 of 1, where both
  calls return what they are given.
* A run repeats bit for bit with the same seed, device and number of intra-op threads
  (``torch.get_num_threads()``): BLAS rounds differently when it splits a product over
  another number of threads. Runs trained in parallel processes each get their share of the
  threads (one each on a 2-core machine), so they equal the same run trained alone with that
  thread count.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from fmclassify._batching import index_batches
from fmclassify._checks import check_choice, check_device, check_int, check_lr, check_seed
from fmclassify._drivers import Request, alone, lockstep
from fmclassify._evaluation import epoch_record, evaluate
from fmclassify._fit_checks import check_callbacks, check_data_fits, check_start
from fmclassify._progress import progress_bar
from fmclassify._run_data import batch_preparer, hold_out, memory_format, on_device
from fmclassify._run_end import (
    TrainingInterrupted,
    mark_diverged,
    mark_interrupted,
    sigterm_as_interrupt,
)
from fmclassify._run_metadata import run_metadata
from fmclassify._step_choice import StepChooser, step_description
from fmclassify._together import Together, why_not_together
from fmclassify._trainer_state import TrainerState, restore_state, save_state
from fmclassify.callbacks import Callback, CallbackBase, RunContext
from fmclassify.data import ImageDataset, num_batches
from fmclassify.distributed import current_shard
from fmclassify.exceptions import ConfigError
from fmclassify.history import EpochRecord, History, completed_reason
from fmclassify.recipes import (
    AugmentArg,
    OptimizerArg,
    Recipe,
    ScheduleArg,
    make_ema,
    make_optimizer,
    make_schedule,
)
from fmclassify.steps import STEPS, Batch, Step, choose_step, make_step

__all__ = ["Callback", "CallbackBase", "RunContext", "Trainer", "TrainingInterrupted",
           "check_data_fits", "fit_together", "why_not_fit_together"]

_FINITE_CHECK_EVERY = 32  # steps between divergence checks (one host sync each)


class Trainer:
    """Train a classifier with a fixed budget and record a :class:`~fmclassify.History`.

    Parameters
    ----------
    model : torch.nn.Module
        Maps images (B, C, H, W) to logits (B, num_classes), e.g. from
        :func:`~fmclassify.build_model`.
    lr : float
        Learning rate (the peak of a schedule), > 0.
    epochs : int
        Epoch budget, >= 1; callbacks such as a ConvergenceDetector may stop earlier.
    batch_size : int, default 64
        Training batch size, >= 1.
    optimizer : {"sgd", "adam", "adamw"} or callable, default "sgd"
        Plain SGD reproduces the course; a callable ``params -> torch.optim.Optimizer`` gets
        ``lr`` set on its parameter groups.
    momentum, nesterov, weight_decay : float, bool, float
        For the named optimizers (defaults 0, False, 0: the course's plain SGD).
    schedule : {None, "step", "cosine", "one-cycle"} or callable, default None
        Learning-rate schedule, stepped per batch (:mod:`fmclassify.recipes`);
        ``warmup_epochs`` (default 0) of linear warm-up before it.
    label_smoothing : float, default 0.0
        Of the training loss; test and validation losses stay plain cross-entropy.
    clip_grad_norm : float, optional
        Max global L2 norm of the gradients.
    augment : sequence of {"flip", "crop", "erase"} or callables, optional
        Batch augmentations on the training device, drawn from the seeded generator
        (:class:`~fmclassify.recipes.BatchAugment`); one name (``"flip"``) or a
        comma-separated string (``"crop,flip"``) is read as a list of names.
    val_split : float or int, optional
        Hold out a stratified fraction or count of ``train`` for validation. Each record then
        has ``val_loss`` and ``val_accuracy``, which convergence and best-epoch logic watch;
        the test set is still evaluated and recorded.
    precision : {"fp32", "bf16"}, default "fp32"
        ``"bf16"``: forward passes under ``torch.autocast`` in bfloat16 (CPU and CUDA).
    ema : float, optional
        Decay of an exponential moving average of the weights (e.g. 0.999), used for
        evaluation, warmed up from the first step (:func:`~fmclassify.recipes.ema_decay`); the
        records keep the raw weights' metrics beside it (``raw_test_accuracy``, ...). It pays
        off when the run is long against ``1 / (1 - ema)`` steps (1,000 for 0.999): on a run
        of a few hundred steps the average stays within a point or two of the raw weights.
    step : {"auto", "autograd", "fused", "graph", "compiled"}, default "auto"
        How each step is computed (:mod:`fmclassify.steps`): ``"auto"`` takes the fastest
        step the device, model, recipe and callbacks allow (on CUDA a captured graph, on the
        CPU the fused MLP step), else autograd; ``history.metadata["step"]`` says which ran
        and why the faster ones did not.
    seed : int, default 0
        Seeds the shuffling order, augmentation, the validation split and dropout. (Weights
        are seeded when the model is built: ``build_model(..., seed=)``.)
    shuffle : bool, default True
        Shuffle the training set every epoch. ``False`` reproduces the quickstart's order.
    device : str or torch.device, default "auto"
        ``"auto"`` picks CUDA when available, else the CPU. The data is moved there once.
    callbacks : iterable of Callback, optional
        Watchers of the run (:class:`~fmclassify.ConvergenceDetector`,
        :class:`~fmclassify.GradientTracer`, your own).
    progress : bool, default True
        Show a progress bar over the epochs; switch off for logs and tests.
    checkpoint : path-like, optional
        Write model, optimizer, schedule, EMA, random states and History there after every
        epoch, atomically.
    eval_batch_size : int, default 1000
        Batch size for evaluation (affects speed only).

    Raises
    ------
    ConfigError
        For any argument out of range, an unknown name, or a step the model cannot take; the
        message names the argument and what is allowed.

    Notes
    -----
    A Trainer runs :meth:`fit` once: a second call raises, since a continued History would
    mix two budgets. To train further, resume from a checkpoint with a larger ``epochs``.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> train, test = fmc.load_dataset("fashion-mnist")            # doctest: +SKIP
    >>> trainer = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=10)
    >>> history = trainer.fit(train, test)                          # doctest: +SKIP
    >>> recipe = fmc.Trainer(fmc.build_model("deeper"), lr=0.05, epochs=15, momentum=0.9,
    ...                      nesterov=True, weight_decay=5e-4, schedule="one-cycle",
    ...                      augment=["crop", "flip"], label_smoothing=0.1, val_split=0.1)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        lr: float,
        epochs: int,
        batch_size: int = 64,
        optimizer: OptimizerArg = "sgd",
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        schedule: ScheduleArg = None,
        warmup_epochs: int = 0,
        label_smoothing: float = 0.0,
        clip_grad_norm: float | None = None,
        augment: Sequence[AugmentArg] | None = None,
        val_split: float | int | None = None,
        precision: Literal["fp32", "bf16"] = "fp32",
        ema: float | None = None,
        step: Literal["auto", "autograd", "fused", "graph", "compiled"] = "auto",
        seed: int = 0,
        shuffle: bool = True,
        device: str | torch.device = "auto",
        callbacks: Iterable[Callback] = (),
        progress: bool = True,
        checkpoint: str | Path | None = None,
        eval_batch_size: int = 1000,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.lr = check_lr(lr)
        self.epochs = check_int("epochs", epochs)
        self.batch_size = check_int("batch_size", batch_size)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size)
        self.recipe = Recipe(
            optimizer=optimizer, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
            schedule=schedule, warmup_epochs=warmup_epochs, label_smoothing=label_smoothing,
            clip_grad_norm=clip_grad_norm, augment=augment,  # Recipe makes it a tuple
            val_split=val_split, precision=precision, ema=ema)
        self.recipe.check_budget(self.epochs)
        self.step_kind = check_choice("step", step, STEPS)
        self.seed = check_seed(seed)
        self.shuffle = bool(shuffle)
        self.device = check_device(device)
        self.callbacks: list[Callback] = check_callbacks(callbacks)
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.model = model.to(self.device)
        self._memory_format = memory_format(model, self.device)  # channels-last: conv on CPU
        self.model.to(memory_format=self._memory_format)
        self._shard = current_shard()  # this process's part of a run under torchrun
        self._step_choice = choose_step(self.step_kind, self.model, self.recipe,
                                        world=self._shard.world)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, self.recipe, self.lr)
        self.schedule: Any = None
        self.ema: Any = None
        self.history: History | None = None
        self._gen = torch.Generator()
        self._member: tuple[Step, int] | None = None  # (its step, the group's size): fit_together

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, train: ImageDataset, test: ImageDataset, *, resume: bool = False) -> History:
        """Train for the epoch budget (or until a callback stops it) and return the History.

        Parameters
        ----------
        train, test : ImageDataset
            From :func:`~fmclassify.load_dataset`; their image shape and class count must fit
            the model. A validation split (``val_split``) is held out of ``train``.
        resume : bool, default False
            Continue from the ``checkpoint`` file when it exists (the result equals an
            uninterrupted run bit for bit on the CPU; within float rounding through a CUDA
            graph, whose warm-up steps run again); without a checkpoint file, start afresh.

        Returns
        -------
        History
            With status ``"completed"``, ``"converged"``, ``"stopped"`` or ``"diverged"``.

        Raises
        ------
        DataError
            If the data does not fit the model, before any training.
        TrainingInterrupted
            On Ctrl-C or SIGTERM, after the finished epochs were saved; its ``history`` has
            status ``"interrupted"``.
        """
        with sigterm_as_interrupt():
            return alone(self._loop(train, test, resume))

    def _loop(self, train: ImageDataset, test: ImageDataset, resume: bool,
              placed: tuple[torch.Tensor, torch.Tensor] | None = None,
              ) -> Generator[Request, None, History]:
        """The epoch loop. It asks its caller for each step, ``yield step, batch``.

        :meth:`fit` computes ``step(batch)`` right away (:func:`fmclassify._drivers.alone`);
        :func:`fit_together` computes the steps of several runs' loops as one. Everything
        else about a run (batches, schedule, EMA, divergence, evaluation, callbacks,
        checkpoints, interrupts) happens here, once, for both.
        """
        run, first = self._start(train, test, resume)
        history = run.history
        if first is None:
            return history  # resumed a run that had already ended
        # the training set on the device; runs trained together share one copy (``placed``)
        x, y = placed if placed is not None else self._on_device(self._train_set)
        # augmentation, channels-last for a conv model on the CPU, this rank's rows of a batch
        prepare, plain = batch_preparer(self.recipe, train, self._memory_format, self._gen,
                                        self._shard)
        steps = self._steps(run)
        # On a GPU the faster step is several times autograd's speed: an epoch leaves autograd
        # as soon as no callback reads gradients (a GradientTracer's 100 steps), not at its end.
        # On the CPU the epoch stays on one step, so its numbers do not change with this.
        switch = self.device.type == "cuda"
        shard = self._shard  # one process: rank 0 of 1, all rows
        bar = progress_bar(total=self.epochs, initial=first - 1,
                           disable=not self.progress or shard.rank != 0,
                           desc=str(history.metadata["model"]), unit="epoch", leave=False)
        try:
            for epoch in range(first, self.epochs + 1):
                run.epoch = epoch
                step = steps()  # the chosen step, or autograd while a callback reads gradients
                lr = float(self.optimizer.param_groups[0]["lr"])
                started = time.perf_counter()
                step.begin_epoch(torch.zeros((), device=self.device))
                watched = switch and step is not steps.chosen  # a callback reads gradients
                try:
                    for i, rows in enumerate(index_batches(
                            len(y), self.batch_size, shuffle=self.shuffle, generator=self._gen,
                            device=y.device)):
                        # forward, backward, callbacks, update, the loss added to the epoch's
                        yield step, Batch(x, y, rows, prepare, plain)
                        if self.schedule is not None:
                            self.schedule.step()  # per batch
                        if self.ema is not None:
                            self.ema.update_parameters(self.model)
                        run.step += 1
                        if watched and (free := steps()) is not step:  # no callback reads now
                            step.end_epoch()
                            free.begin_epoch(step.loss_sum())
                            step, watched = free, False
                        if (i % _FINITE_CHECK_EVERY == 0
                                and not torch.isfinite(shard.sum(step.loss_sum()))):
                            break
                finally:
                    step.end_epoch()  # the model holds the epoch's weights from here on
                loss_sum = shard.sum(step.loss_sum())  # over the ranks' rows: the whole set
                if not torch.isfinite(loss_sum):
                    mark_diverged(history, epoch, run.step, self.lr)
                    break
                seconds = time.perf_counter() - started  # training only
                record = self._evaluate_record(epoch, loss_sum.item() / len(y), seconds, lr)
                history.append(record)
                for cb in self.callbacks:
                    cb.on_epoch_end(run, record)
                self._save(run)
                bar.update()
                bar.set_postfix(loss=f"{record.train_loss:.4f}",
                                acc=f"{record.test_accuracy:.2%}")
                if run.stop_requested:
                    history.status, history.reason = run.stop_status, run.stop_reason
                    break
            else:
                history.status = "completed"
                history.reason = completed_reason(self.epochs)
        except KeyboardInterrupt as exc:
            mark_interrupted(history)
            # The checkpoint keeps the last finished epoch: saving half-trained weights here
            # would make a resumed run differ from a straight one.
            self._finish(run, save=False)
            raise TrainingInterrupted(history, getattr(exc, "signum", signal.SIGINT)) from None
        finally:
            bar.close()
        self._finish(run)
        return history

    # -- the pieces of fit --------------------------------------------------------------------

    def _start(self, train: ImageDataset, test: ImageDataset,
               resume: bool) -> tuple[RunContext, int | None]:
        """Check, split, seed, build schedule and EMA, resume, evaluate epoch 0.

        Returns the run and its first epoch; None when the resumed checkpoint holds a run
        that had ended.
        """
        check_start(self.history is not None, self.checkpoint, resume)
        check_data_fits(self.model, train, test, self.device)
        self._train_set, self._val_set = hold_out(train, self.recipe.val_split, self.seed)
        self._shard.check_batches(len(self._train_set), self.batch_size)
        self._eval_sets = {"test": self._on_device(test)}
        if self._val_set is not None:
            self._eval_sets["val"] = self._on_device(self._val_set)
        history = History(metadata=self._metadata(train, test))
        self.history = history
        run = RunContext(model=self.model, history=history, epochs=self.epochs,
                         optimizer=self.optimizer)
        self._gen = torch.Generator().manual_seed(self.seed)  # shuffling and augmentation
        torch.manual_seed(self.seed)  # dropout masks
        self.schedule = make_schedule(self.optimizer, self.recipe, epochs=self.epochs,
                                      steps_per_epoch=num_batches(len(self._train_set),
                                                                  self.batch_size))
        self.ema = make_ema(self.model, self.recipe.ema)
        first: int | None = 1
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            first = restore_state(self.checkpoint, run, self._state())
        if first is not None:
            if not history.records:
                history.append(self._evaluate_record(0, None, 0.0, None))
            for cb in self.callbacks:
                cb.on_fit_start(run)
        return run, first

    def _steps(self, run: RunContext) -> StepChooser:
        """A chooser of each epoch's step (see :mod:`fmclassify.steps`)."""
        name = self._step_choice.name
        forward = self._shard.wrap(self.model)  # DistributedDataParallel under torchrun
        args = (self.model, self.optimizer, self.recipe, run, self.callbacks)
        if self._member is not None:  # trained with others as one model (fit_together)
            name = "together"
            chosen = self._member[0]
        else:
            chosen = make_step(name, *args, forward=forward)
        autograd = (chosen if name in ("autograd", "compiled")
                    else make_step("autograd", *args, forward=forward))
        return StepChooser(chosen, autograd, self.callbacks)

    def _on_device(self, ds: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
        return on_device(ds, self.device, self._memory_format)

    def _finish(self, run: RunContext, *, save: bool = True) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(run, run.history)
        if save:
            self._save(run)

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(self, dataset: ImageDataset) -> tuple[float, float]:
        """Mean cross-entropy loss and accuracy (a fraction) on ``dataset`` (the EMA if set)."""
        return self._evaluate(*self._on_device(dataset))

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, *,
                  raw: bool = False) -> tuple[float, float]:
        """Loss and accuracy of the evaluated model: the EMA if set, unless ``raw``."""
        model = self.ema.module if self.ema is not None and not raw else self.model
        return evaluate(model, x, y, precision=self.recipe.precision,
                        batch_size=self.eval_batch_size, shard=self._shard, device=self.device)

    def _evaluate_record(self, epoch: int, train_loss: float | None, seconds: float,
                         lr: float | None) -> EpochRecord:
        """The epoch's record; with EMA, the raw (trained) model's metrics too (``raw_*``)."""
        return epoch_record(epoch, train_loss, seconds, lr, self._eval_sets, self._evaluate,
                            raw=self.ema is not None)

    # -- checkpoints and metadata -------------------------------------------------------------

    def _save(self, run: RunContext) -> None:
        if self.checkpoint is not None and self._shard.rank == 0:  # one writer per run
            save_state(self.checkpoint, run, self._state())

    def _state(self) -> TrainerState:
        """What the checkpoint holds besides History and step (this fit's generator, schedule)."""
        return TrainerState(self.model, self.optimizer, self.schedule, self.ema, self._gen,
                        self.callbacks)

    def _metadata(self, train: ImageDataset, test: ImageDataset) -> dict[str, Any]:
        together = self._member[1] if self._member is not None else None  # fit_together
        step = step_description(self._step_choice, self.callbacks, together)
        held = len(self._val_set) if self._val_set is not None else 0
        return run_metadata(self, train, test, held=held, world=self._shard.world, step=step)


def fit_together(trainers: Sequence[Trainer], train: ImageDataset, test: ImageDataset, *,
                 resume: bool = False) -> list[History]:
    """Train several runs at once as one batched model; each keeps its own History.

    Runs of one model that differ in learning rate, seed or weight decay (a learning-rate
    sweep's, Q1.2's convergence runs) cost on a GPU about what one run costs: their steps are
    computed together (:class:`fmclassify._together.Together`: the fused K-model engine for
    plain MLPs with plain SGD, a vmapped stack for other models and SGD recipes), while
    everything else about each run stays its own, in its own Trainer's epoch loop: its batch
    order, divergence (a diverged run drops out, the others go on), callbacks (a converged run
    stops on its own), evaluation, checkpoint and resume. On the CPU a plain MLP still takes a
    pass of its own, so such a run equals, bit for bit, the same run trained by
    :meth:`Trainer.fit`; through the vmapped stack runs agree within float rounding (and a
    model with dropout draws its own masks).

    Parameters
    ----------
    trainers : sequence of Trainer
        Not yet fitted, of one model architecture on one device, with step ``"auto"``, equal
        batch sizes and validation splits, SGD without EMA (:func:`why_not_fit_together`).
    train, test : ImageDataset
        As for :meth:`Trainer.fit`; shared by every run.
    resume : bool, default False
        Each run continues from its own checkpoint when it has one.

    Returns
    -------
    list of History
        In the order of ``trainers``; each run's epoch ``seconds`` are those of the steps it
        shared.

    Raises
    ------
    ConfigError
        If the runs cannot train together; the message says why.
    TrainingInterrupted
        On Ctrl-C or SIGTERM, after every run kept its last finished epoch.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> trainers = [fmc.Trainer(fmc.build_model("base", seed=s), lr=lr, epochs=10, seed=s)
    ...             for lr in (0.1, 0.01) for s in (0, 1)]
    >>> histories = fmc.fit_together(trainers, train, test)             # doctest: +SKIP
    """
    trainers = list(trainers)
    for t in trainers:
        if not isinstance(t, Trainer):
            raise ConfigError(f"fit_together takes Trainers, got {type(t).__name__}; make one "
                              "fmclassify.Trainer per run")
    recipes = [t.recipe for t in trainers]
    reason = why_not_fit_together(trainers)
    if reason is not None:
        raise ConfigError(f"these runs cannot train together: {reason}; train each with "
                          "Trainer.fit")
    group = Together([t.model for t in trainers], [t.optimizer for t in trainers], recipes)
    for k, t in enumerate(trainers):
        t._member = (group.member(k), len(trainers))
    # One copy of the training set on the device for every run that trains on all of it
    # (a validation split, drawn per seed, makes each run's own); the group gathers from it.
    placed = (trainers[0]._on_device(train)
              if all(t.recipe.val_split is None for t in trainers) else None)
    loops = [t._loop(train, test, resume, placed) for t in trainers]
    try:
        with sigterm_as_interrupt():
            return lockstep(loops, group)
    finally:
        group.close()


def why_not_fit_together(trainers: Sequence[Trainer]) -> str | None:
    """The reason :func:`fit_together` cannot train ``trainers`` together, or None if it can.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> why_not_fit_together([fmc.Trainer(fmc.build_model("base"), lr=0.1, epochs=1, ema=0.99)])
    'a run averages its weights (ema)'
    """
    if any(t.recipe.ema is not None for t in trainers):
        return "a run averages its weights (ema)"
    asked = sorted({t.step_kind for t in trainers} - {"auto"})
    if asked:
        return f"a run asks for step={asked[0]!r}"
    if len({t.recipe.val_split for t in trainers}) > 1:
        return "the runs hold out different validation splits (their epochs differ in batches)"
    reason = why_not_together([t.model for t in trainers], [t.recipe for t in trainers])
    if reason is None and len({t.batch_size for t in trainers}) > 1:
        reason = "the runs differ in batch size"
    if reason is None and any(t._shard.world > 1 for t in trainers):
        reason = "a run trains data-parallel over several processes"
    return reason
