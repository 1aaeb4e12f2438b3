"""The Trainer: one model, one optimizer, a fixed epoch budget, a History out.

The loop reads top to bottom in :meth:`Trainer.fit`. Choices a reader might question:

* The data lives in one float tensor on the training device, and a batch is a slice of it
  (:func:`fmclassify.data.iter_batches`): no per-sample PIL transform, no DataLoader workers,
  no host-to-device copy per step.
* The training loss is summed on the device and read once per epoch (and every
  ``_FINITE_CHECK_EVERY`` steps to catch divergence early): ``loss.item()`` on every step would
  force a host sync, which costs real time on a GPU.
* Losses are sample-weighted means (``reduction="sum"`` over the set divided by its size), so
  a smaller last batch does not weigh as much as a full one.
* A non-finite training loss ends the run as ``"diverged"``; the unfinished epoch is not
  recorded, so no NaN is ever averaged into a record.
* A plain MLP trained with SGD takes a hand-fused step (``fused=True``, the default): forward,
  backward and update as a few matrix products, equal to autograd's within float rounding.
  Conv models train channels-last on the CPU.
* A run repeats bit for bit with the same seed, device and number of intra-op threads
  (``torch.get_num_threads()``): BLAS rounds differently when it splits a product over
  another number of threads.
"""

from __future__ import annotations

import math
import platform
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fmclassify._fused import FusedMLP
from fmclassify.callbacks import Callback, CallbackBase, RunContext
from fmclassify.checkpoint import load_checkpoint, save_checkpoint
from fmclassify.data import ImageDataset, iter_batches
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.history import EpochRecord, History

__all__ = ["OPTIMIZERS", "Callback", "CallbackBase", "RunContext", "Trainer", "TrainingInterrupted"]

#: Optimizer names accepted by :class:`Trainer`.
OPTIMIZERS = ("sgd", "adam", "adamw")

_FINITE_CHECK_EVERY = 32  # steps between divergence checks (one host sync each)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended :meth:`Trainer.fit`; ``history`` holds every finished epoch.

    It derives from :class:`KeyboardInterrupt`, so a sweep stops instead of starting its next
    run; catch it to keep the partial results (the command line does, and exits with 130).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> trainer = fmc.Trainer(fmc.build_model("base"), lr=0.1, epochs=10)
    >>> try:                                                   # doctest: +SKIP
    ...     history = trainer.fit(train, test)
    ... except fmc.TrainingInterrupted as stop:
    ...     history = stop.history          # status "interrupted", every finished epoch
    """

    def __init__(self, history: History, signum: int = signal.SIGINT) -> None:
        super().__init__(f"training interrupted by signal {signum} after "
                         f"{history.epochs_trained} finished epochs")
        self.history = history
        self.signum = signum


class Trainer:
    """Train a classifier with a fixed budget and record a :class:`~fmclassify.History`.

    Parameters
    ----------
    model : torch.nn.Module
        A model mapping images (B, C, H, W) to logits (B, num_classes), e.g. from
        :func:`~fmclassify.build_model`.
    lr : float
        Learning rate, > 0.
    epochs : int
        Epoch budget, >= 1; callbacks such as a ConvergenceDetector may stop earlier.
    batch_size : int, default 64
        Training batch size, >= 1.
    optimizer : {"sgd", "adam", "adamw"}, default "sgd"
        Plain SGD (no momentum) reproduces the course.
    seed : int, default 0
        Seeds the shuffling order and dropout, so the same seed gives the same numbers on the
        same machine. (Weights are seeded when the model is built: ``build_model(..., seed=)``.)
    shuffle : bool, default True
        Shuffle the training set every epoch. ``False`` reproduces the quickstart's order.
    device : str or torch.device, default "auto"
        ``"auto"`` picks CUDA when available, else the CPU. The whole data set is moved there
        once.
    callbacks : iterable of Callback, optional
        Watchers of the run (:class:`~fmclassify.ConvergenceDetector`,
        :class:`~fmclassify.GradientTracer`, your own).
    progress : bool, default True
        Show a tqdm bar per epoch; switch off for logs and tests.
    checkpoint : path-like, optional
        Write model, optimizer, random states and History there after every epoch, atomically.
    eval_batch_size : int, default 1000
        Batch size for evaluation (affects speed only).
    fused : bool, default True
        For an MLP trained with plain SGD, run each step as hand-written matrix products with
        the update folded in (``fmclassify._fused``), about 1.2x faster than autograd at batch
        64 on a CPU and 3x on a GPU. The numbers equal autograd's within float rounding and
        are repeatable with a seed. Epochs in which a callback reads gradients (a
        GradientTracer recording) use autograd. ``False`` always uses autograd;
        ``history.metadata["step"]`` says which ran and why.

    Raises
    ------
    ConfigError
        For an lr that is not a finite number > 0, epochs or batch size < 1, an unknown
        optimizer or device, or a callback without the hooks.

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
    >>> print(f"{history.final_accuracy:.1%}")                      # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        lr: float,
        epochs: int,
        batch_size: int = 64,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        seed: int = 0,
        shuffle: bool = True,
        device: str | torch.device = "auto",
        callbacks: Iterable[Callback] = (),
        progress: bool = True,
        checkpoint: str | Path | None = None,
        eval_batch_size: int = 1000,
        fused: bool = True,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.lr = _check_lr(lr)
        self.epochs = _check_positive_int("epochs", epochs)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.eval_batch_size = _check_positive_int("eval_batch_size", eval_batch_size)
        if optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.optimizer_name = optimizer
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.device = _resolve_device(device)
        self.callbacks: list[Callback] = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(
                    f"callback {cb!r} lacks the hooks on_fit_start, on_after_backward, "
                    "on_epoch_end, on_fit_end; subclass fmclassify.CallbackBase"
                )
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.model = model.to(self.device)
        # Convolutions on the CPU run markedly faster on channels-last (NHWC) tensors
        # (benchmarks/cnn_speed.py); the weights and data are laid out so once, here and in fit.
        self._memory_format = (torch.channels_last if self.device.type == "cpu"
                               and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
                               else torch.contiguous_format)
        self.model.to(memory_format=self._memory_format)
        reason = (FusedMLP.supports(self.model) if optimizer == "sgd"
                  else f"optimizer {optimizer!r} is not plain SGD")
        self._fused_reason = reason if fused else "switched off (fused=False)"
        self.optimizer = _make_optimizer(optimizer, self.model, self.lr)
        self.history: History | None = None
        self._gen = torch.Generator()

    # -- public API ---------------------------------------------------------------------------

    def fit(self, train: ImageDataset, test: ImageDataset, *, resume: bool = False) -> History:
        """Train for the epoch budget (or until a callback stops it) and return the History.

        Parameters
        ----------
        train, test : ImageDataset
            From :func:`~fmclassify.load_dataset`; their image shape and class count must fit
            the model.
        resume : bool, default False
            Continue from the ``checkpoint`` file when it exists (the result equals an
            uninterrupted run); without a checkpoint file, start from scratch.

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
        run, start_epoch = self._start(train, test, resume)
        history = run.history
        if start_epoch < 0:
            return history  # resumed a run that had already ended
        x_train, y_train, x_test, y_test = self._open(run, train, test)
        bar = tqdm(range(start_epoch, self.epochs + 1), disable=not self.progress,
                   desc=str(history.metadata["model"]), unit="epoch", leave=False,
                   initial=start_epoch - 1, total=self.epochs)
        try:
            with sigterm_as_interrupt():
                for epoch in bar:
                    run.epoch = epoch
                    record = self._train_epoch(run, epoch, x_train, y_train, x_test, y_test,
                                               self._gen)
                    if record is None:
                        break  # diverged; status and reason already set
                    bar.set_postfix(loss=f"{record.train_loss:.4f}",
                                    acc=f"{record.test_accuracy:.2%}")
                    if self._close_epoch(run, record):
                        break
                else:
                    self._complete(history)
        except KeyboardInterrupt as exc:
            self._interrupted(run)
            raise TrainingInterrupted(history, getattr(exc, "signum", signal.SIGINT)) from None
        finally:
            bar.close()
        self._finish(run)
        return history

    # -- the pieces of fit, shared with training several models together ------------------

    def _start(self, train: ImageDataset, test: ImageDataset,
               resume: bool) -> tuple[RunContext, int]:
        """Validate, create the History, seed, and resume; return the run and its first epoch.

        The first epoch is -1 when the resumed checkpoint holds a run that had ended.
        """
        if self.history is not None:
            raise ConfigError(
                "this Trainer already ran fit(); create a new Trainer for a new run, or resume "
                "from its checkpoint with Trainer(..., checkpoint=PATH).fit(..., resume=True)"
            )
        if self.checkpoint is not None and self.checkpoint.exists() and not resume:
            raise ConfigError(
                f"checkpoint {str(self.checkpoint)!r} already exists; pass resume=True to "
                "continue that run, or delete the file (or choose another path) to start afresh"
            )
        self._check_data(train, test)
        history = History(metadata=self._metadata(train, test))
        self.history = history
        run = RunContext(model=self.model, history=history, epochs=self.epochs)
        self._gen = torch.Generator().manual_seed(self.seed)  # the shuffling order
        torch.manual_seed(self.seed)  # dropout masks
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            saved = self._restore(run)
            if saved.status in ("converged", "stopped", "diverged"):
                history.status, history.reason = saved.status, saved.reason
                history.diverged_epoch = saved.diverged_epoch
                return run, -1  # that run had ended; resuming it changes nothing
            return run, saved.epochs_trained + 1
        return run, 1

    def _open(self, run: RunContext, train: ImageDataset,
              test: ImageDataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move the data to the device once, evaluate epoch 0, call on_fit_start."""
        fmt = self._memory_format
        x_train = train.float_images().to(self.device).contiguous(memory_format=fmt)
        y_train = train.labels.to(self.device)
        x_test = test.float_images().to(self.device).contiguous(memory_format=fmt)
        y_test = test.labels.to(self.device)
        if not run.history.records:
            run.history.append(self._evaluate_record(0, None, x_test, y_test, 0.0))
        for cb in self.callbacks:
            cb.on_fit_start(run)
        return x_train, y_train, x_test, y_test

    def _close_epoch(self, run: RunContext, record: EpochRecord) -> bool:
        """Record the epoch, tell the callbacks, checkpoint; return True if the run stops."""
        run.history.append(record)
        for cb in self.callbacks:
            cb.on_epoch_end(run, record)
        self._save(run)
        if run.stop_requested:
            run.history.status, run.history.reason = run.stop_status, run.stop_reason
            return True
        return False

    def _complete(self, history: History) -> None:
        history.status = "completed"
        history.reason = f"trained the full budget of {self.epochs} epochs"

    def _interrupted(self, run: RunContext) -> None:
        history = run.history
        history.status = "interrupted"
        history.reason = f"interrupted after {history.epochs_trained} finished epochs"
        # The checkpoint keeps the state of the last finished epoch: saving the weights of
        # a half-trained epoch here would make a resumed run differ from a straight one.
        self._finish(run, save=False)

    def evaluate(self, dataset: ImageDataset) -> tuple[float, float]:
        """Mean cross-entropy loss and accuracy (a fraction) of the model on ``dataset``."""
        x, y = dataset.float_images().to(self.device), dataset.labels.to(self.device)
        return self._evaluate(x, y)

    # -- the loop -----------------------------------------------------------------------------

    def _train_epoch(
        self, run: RunContext, epoch: int, x: torch.Tensor, y: torch.Tensor,
        x_test: torch.Tensor, y_test: torch.Tensor, gen: torch.Generator,
    ) -> EpochRecord | None:
        """One epoch of training, then evaluation; ``None`` if the loss became non-finite."""
        model, opt = self.model, self.optimizer
        watchers = [cb for cb in self.callbacks if getattr(cb, "needs_gradients", True)]
        # The fused engine copies the weights in and back out once per epoch, so the model
        # is exact at every epoch boundary (evaluation, callbacks, checkpoints).
        engine = FusedMLP([model], [self.lr]) if self._fused_reason is None and not watchers \
            else None
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        started = time.perf_counter()
        fmt = self._memory_format
        for i, (xb, yb) in enumerate(self._batches(x, y, gen)):
            if engine is not None:
                loss = engine.step(xb, yb)[0]  # forward, backward and SGD update in one call
            else:
                if fmt is torch.channels_last:  # index_select (shuffling) gives NCHW batches
                    xb = xb.contiguous(memory_format=fmt)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                for cb in watchers:
                    cb.on_after_backward(run)
                opt.step()
            loss_sum += loss.detach() * yb.shape[0]  # stays on the device: no sync per step
            run.step += 1
            if i % _FINITE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                if engine is not None:
                    engine.write_back()  # the weights where it diverged, as autograd leaves them
                self._diverged(run, epoch)
                return None
        if engine is not None:
            engine.write_back()
        if not torch.isfinite(loss_sum):
            self._diverged(run, epoch)
            return None
        seconds = time.perf_counter() - started
        return self._evaluate_record(epoch, loss_sum.item() / len(y), x_test, y_test, seconds)

    def _batches(self, x: torch.Tensor, y: torch.Tensor,
                 gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter_batches(x, y, self.batch_size, shuffle=self.shuffle, generator=gen)

    def _diverged(self, run: RunContext, epoch: int) -> None:
        """Mark the run diverged in ``epoch``; the unfinished epoch is not recorded."""
        history = run.history
        history.status = "diverged"
        history.diverged_epoch = epoch
        history.reason = (f"training loss became non-finite in epoch {epoch} (step {run.step}); "
                          f"lr {self.lr:g} is too large for this model")

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for xb, yb in iter_batches(x, y, self.eval_batch_size, shuffle=False):
            logits = self.model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
        self.model.train(was_training)
        return loss_sum.item() / len(y), correct.item() / len(y)

    def _evaluate_record(self, epoch: int, train_loss: float | None, x: torch.Tensor,
                         y: torch.Tensor, seconds: float) -> EpochRecord:
        test_loss, accuracy = self._evaluate(x, y)
        if not math.isfinite(test_loss):
            test_loss = float("inf")  # JSON writes it as null; accuracy stays meaningful
        return EpochRecord(epoch, train_loss, test_loss, accuracy, seconds)

    def _finish(self, run: RunContext, *, save: bool = True) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(run, run.history)
        if save:
            self._save(run)

    # -- checkpoints --------------------------------------------------------------------------

    def _save(self, run: RunContext) -> None:
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, model=self.model, optimizer=self.optimizer,
                            history=run.history, generator=self._gen, step=run.step,
                            callbacks=self.callbacks)

    def _restore(self, run: RunContext) -> History:
        """Load the checkpoint into model, optimizer, RNGs and callbacks; return its History."""
        path = self.checkpoint
        if path is None:  # pragma: no cover - fit only calls this with a checkpoint path
            raise ConfigError("resume=True needs Trainer(checkpoint=PATH)")
        saved, step = load_checkpoint(path, model=self.model, optimizer=self.optimizer,
                                      metadata=run.history.metadata, generator=self._gen,
                                      callbacks=self.callbacks)
        run.history.records.extend(saved.records)
        run.history.metadata.update(
            {k: v for k, v in saved.metadata.items() if k not in run.history.metadata})
        run.step = step
        return saved

    # -- validation and metadata --------------------------------------------------------------

    def _check_data(self, train: ImageDataset, test: ImageDataset) -> None:
        for label, ds in (("train", train), ("test", test)):
            if not isinstance(ds, ImageDataset):
                raise DataError(f"{label} must be an ImageDataset from fmclassify.load_dataset, "
                                f"got {type(ds).__name__}")
        if train.image_shape != test.image_shape:
            raise DataError(f"train images are {train.image_shape} but test images are "
                            f"{test.image_shape}; use the two splits of one data set")
        sample = train.float_images()[:2].to(self.device)
        name = _model_name(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(sample)
        except RuntimeError as exc:
            c, h, w = train.image_shape
            raise DataError(
                f"images of shape {train.image_shape} do not fit model {name!r} ({exc}); build "
                f"the model for this data: build_model({name!r}, in_channels={c}, "
                f"image_size={h})" + ("" if h == w else " (the built-in models need square images)")
            ) from None
        finally:
            self.model.train(was_training)
        if out.ndim != 2 or out.shape[1] != train.num_classes:
            raise DataError(
                f"model {name!r} outputs shape {tuple(out.shape)} but {train.name or 'the data'} "
                f"has {train.num_classes} classes; build it with num_classes={train.num_classes}"
            )

    def _metadata(self, train: ImageDataset, test: ImageDataset) -> dict[str, Any]:
        import torchvision

        from fmclassify import __version__

        params = self.model.parameters()
        return {
            "model": _model_name(self.model),
            "lr": self.lr,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer_name,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "parameters": sum(p.numel() for p in params if p.requires_grad),
            "dataset": train.name,
            "num_classes": train.num_classes,
            "train_size": len(train),
            "test_size": len(test),
            "data_checksum": train.checksum + ("+" + test.checksum if test.checksum else ""),
            "device": str(self.device),
            "step": "fused" if self._fused_reason is None else f"autograd ({self._fused_reason})",
            "versions": {"fmclassify": __version__, "torch": str(torch.__version__),
                         "torchvision": str(torchvision.__version__),
                         "python": platform.python_version()},
        }


def _model_name(model: torch.nn.Module) -> str:
    return str(getattr(model, "fmclassify_name", type(model).__name__))


def _check_lr(lr: float) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}; the course uses 0.1")
    return float(lr)


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for CUDA, but no GPU is available; "
                          "use device='auto' or 'cpu'")
    return resolved


def _make_optimizer(name: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    params: Sequence[torch.nn.Parameter] = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters; unfreeze some before training")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt during fit, so both end the run the same way."""
    def handler(signum: int, frame: object) -> None:
        exc = KeyboardInterrupt()
        exc.signum = signum  # type: ignore[attr-defined]
        raise exc

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
