"""Train several Trainers of one MLP at different learning rates as one batched model (private).

A learning-rate sweep trains the same architecture from the same weights on the same batches,
K times. :func:`fit_together` runs those K runs in lockstep through one
:class:`~fmclassify._fused.FusedMLP`: one batched GEMM per layer instead of K, and one Python
step instead of K. Everything else stays per run and goes through each Trainer's own pieces:
its History and metadata, epoch-0 evaluation, callbacks (a ConvergenceDetector per run),
checkpoints, and its status. A run that diverges or is stopped by its callbacks is set aside
and the others go on.

Each run's numbers equal its sequential twin (``Trainer.fit``) within float rounding; the
shuffling generators of all K runs are kept in the same state, so a run's checkpoint resumes
the same way whether it is resumed together or alone.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence

import torch

from fmclassify._fused import FusedMLP
from fmclassify.callbacks import RunContext
from fmclassify.data import ImageDataset, iter_batches
from fmclassify.history import History
from fmclassify.training import Trainer, TrainingInterrupted, sigterm_as_interrupt

__all__ = ["can_train_together", "fit_together"]

_CHECK_EVERY = 32  # steps between divergence checks (one host sync each)


def can_train_together(trainers: Sequence[Trainer]) -> str | None:
    """None when :func:`fit_together` can batch ``trainers``, else the reason it cannot."""
    if len(trainers) < 2:
        return "fewer than two runs"
    first = trainers[0]
    for t in trainers:
        if t._fused_reason is not None:
            return f"the model cannot be fused: {t._fused_reason}"
        if any(getattr(cb, "needs_gradients", True) for cb in t.callbacks):
            return "a callback reads gradients"
        same = (t.epochs, t.batch_size, t.seed, t.shuffle, t.device) == (
            first.epochs, first.batch_size, first.seed, first.shuffle, first.device)
        if not same:
            return "the runs differ in more than the learning rate"
    return None


def fit_together(trainers: Sequence[Trainer], train: ImageDataset, test: ImageDataset, *,
                 resume: bool = False) -> list[History]:
    """Fit K Trainers that differ only in learning rate as one batched model.

    Parameters
    ----------
    trainers : sequence of Trainer
        Fresh Trainers for which :func:`can_train_together` returns None.
    train, test : ImageDataset
        As for :meth:`Trainer.fit`.
    resume : bool, default False
        Continue each run from its checkpoint; all unfinished runs must stand at the same
        epoch (else train them one by one with ``Trainer.fit(resume=True)``).

    Returns
    -------
    list of History
        One per Trainer, in order.

    Raises
    ------
    ValueError
        If the Trainers cannot be batched, or resumed checkpoints stand at different epochs.
    TrainingInterrupted
        On Ctrl-C or SIGTERM; every unfinished run is marked "interrupted" and keeps its
        checkpoint of the last finished epoch.
    """
    reason = can_train_together(trainers)
    if reason is not None:
        raise ValueError(f"these runs cannot be trained together: {reason}")
    starts = [t._start(train, test, resume) for t in trainers]
    live = [(t, run) for t, (run, first) in zip(trainers, starts, strict=True) if first > 0]
    firsts = {first for _, first in starts if first > 0}
    if len(firsts) > 1:
        raise ValueError(f"the resumed runs stand at different epochs ({sorted(firsts)}); "
                         "resume them one by one with Trainer.fit(resume=True)")
    if live:
        _train(live, train, test, firsts.pop())
    return [run.history for run, _ in starts]


def _train(live: list[tuple[Trainer, RunContext]], train: ImageDataset, test: ImageDataset,
           first_epoch: int) -> None:
    lead = live[0][0]
    for _, run in live:
        # Epoch seconds are the batched epoch's wall time shared out among the active runs.
        run.history.metadata["trained_together"] = len(live)
    tensors = [t._open(run, train, test) for t, run in live]
    x_train, y_train, x_test, y_test = tensors[0]
    engine = FusedMLP([t.model for t, _ in live], [t.lr for t, _ in live])
    active = list(range(len(live)))
    try:
        with sigterm_as_interrupt():
            for epoch in range(first_epoch, lead.epochs + 1):
                active = _epoch(engine, live, active, epoch, x_train, y_train, x_test, y_test)
                if not active:
                    break
    except KeyboardInterrupt as exc:
        for k in active:
            live[k][0]._interrupted(live[k][1])
        raise TrainingInterrupted(live[active[0]][1].history if active else live[0][1].history,
                                  getattr(exc, "signum", signal.SIGINT)) from None
    for k in active:
        t, run = live[k]
        t._complete(run.history)
        t._finish(run)


def _epoch(engine: FusedMLP, live: list[tuple[Trainer, RunContext]], active: list[int],
           epoch: int, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
           y_test: torch.Tensor) -> list[int]:
    """One epoch of every active run; return the runs still active after it."""
    lead = live[0][0]
    for k in active:
        live[k][1].epoch = epoch
    loss_sums = torch.zeros(len(live), device=lead.device)
    started = time.perf_counter()
    for i, (xb, yb) in enumerate(iter_batches(x, y, lead.batch_size, shuffle=lead.shuffle,
                                              generator=lead._gen)):
        loss_sums += engine.step(xb, yb) * yb.shape[0]  # (K,); nan for set-aside runs
        for k in active:
            live[k][1].step += 1
        if i % _CHECK_EVERY == 0:
            active = _drop_diverged(engine, live, active, loss_sums, epoch)
    active = _drop_diverged(engine, live, active, loss_sums, epoch)
    engine.write_back()
    for t, _ in live[1:]:
        t._gen.set_state(lead._gen.get_state())  # every run's checkpoint resumes alike
    share = (time.perf_counter() - started) / max(len(active), 1)
    still = []
    for k in active:
        t, run = live[k]
        record = t._evaluate_record(epoch, float(loss_sums[k]) / len(y), x_test, y_test, share)
        if t._close_epoch(run, record):
            t._finish(run)
            engine.set_active(k, False)
        else:
            still.append(k)
    return still


def _drop_diverged(engine: FusedMLP, live: list[tuple[Trainer, RunContext]], active: list[int],
                   loss_sums: torch.Tensor, epoch: int) -> list[int]:
    finite = torch.isfinite(loss_sums).tolist()  # one host sync for all runs
    still = []
    for k in active:
        if finite[k]:
            still.append(k)
            continue
        t, run = live[k]
        t._diverged(run, epoch)
        t._finish(run)
        engine.set_active(k, False)
    return still
