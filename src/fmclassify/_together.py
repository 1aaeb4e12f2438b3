"""Train several Trainers of one MLP that differ in learning rate and seed together (private).

A sweep trains the same architecture K times, at other learning rates or from other seeds.
:func:`fit_together` runs those K runs epoch by epoch together through
:class:`~fmclassify._fused.FusedMLP` engines. Everything else stays per run and goes through
each Trainer's own pieces: its History and metadata, epoch-0 evaluation, callbacks (a
ConvergenceDetector per run), checkpoints, its shuffling generator, and its status. A run that
diverges or is stopped by its callbacks is set aside and the others go on.

How the K models share the hardware depends on it:

* **GPU**: one engine, one batched pass (``bmm``) for all K models in lockstep: K models cost
  the kernel launches of one. Runs whose seeds give them other batches get a stacked
  (K, B, ...) batch, one row per run.
* **CPU**: the runs are dealt out to as many Python threads as PyTorch has intra-op threads
  (:func:`workers_for`), each thread with one intra-op thread (``torch.set_num_threads(1)``
  while the epoch trains), and each run goes through its epoch in turn in its thread. At the
  course's batch of 64 the whole step gains only about 1.6x from a second core, and a core
  shared with another program stalls every split GEMM; two models side by side, one per
  core, keep both busy (``benchmarks/sweep_speed.py``). PyTorch ops release the GIL.

Each run's numbers equal its sequential twin (``Trainer.fit``) within float rounding: a GEMM
on one thread rounds differently from one split over two, so on a CPU a run equals bit for bit
the same run trained alone with ``torch.set_num_threads(1)``. Each run draws its batches from
its own generator, so its checkpoint resumes the same way whether together or alone.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial

import torch

from fmclassify._fused import FusedMLP
from fmclassify.callbacks import RunContext
from fmclassify.data import ImageDataset, iter_batches
from fmclassify.history import EpochRecord, History
from fmclassify.training import Trainer, TrainingInterrupted, sigterm_as_interrupt

__all__ = ["can_train_together", "fit_together", "workers_for"]

_CHECK_EVERY = 32  # steps between divergence checks (one host sync each)


def can_train_together(trainers: Sequence[Trainer]) -> str | None:
    """None when :func:`fit_together` can batch ``trainers``, else the reason it cannot."""
    if len(trainers) < 2:
        return "fewer than two runs"
    if len({id(t.model) for t in trainers}) < len(trainers):
        return "two runs share one model object"
    first = trainers[0]
    for t in trainers:
        if t._fused_reason is not None:
            return f"only plain MLPs trained with plain SGD can be ({t._fused_reason})"
        if any(getattr(cb, "needs_gradients", True) for cb in t.callbacks):
            return "a callback reads gradients"
        same = (t.epochs, t.batch_size, t.shuffle, t.device, _shapes(t)) == (
            first.epochs, first.batch_size, first.shuffle, first.device, _shapes(first))
        if not same:
            return "the runs differ in more than the learning rate and the seed"
    return None


def _shapes(trainer: Trainer) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in trainer.model.parameters()]


def fit_together(trainers: Sequence[Trainer], train: ImageDataset, test: ImageDataset, *,
                 resume: bool = False) -> list[History]:
    """Fit K Trainers that differ only in learning rate and seed, epoch by epoch together.

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
        checkpoint of the last finished epoch (the models in memory may hold weights from
        the unfinished one, as a Trainer's model does after an interrupt).
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
    active = list(range(len(live)))
    try:
        with sigterm_as_interrupt():
            for epoch in range(first_epoch, lead.epochs + 1):
                groups, seconds = _train_epoch(live, active, epoch, *tensors[0])
                with _held_interrupts():  # the epoch is recorded for all runs or for none
                    active = _record_epoch(live, groups, epoch, seconds)
                if not active:
                    break
    except KeyboardInterrupt as exc:
        for k in active:  # every run still active stands at the same finished epoch
            live[k][0]._interrupted(live[k][1])
        raise TrainingInterrupted(live[active[0]][1].history if active else live[0][1].history,
                                  getattr(exc, "signum", signal.SIGINT)) from None
    for k in active:
        t, run = live[k]
        t._complete(run.history)
        t._finish(run)


def workers_for(device: torch.device, runs: int) -> int:
    """How many CPU threads share ``runs`` models: one per intra-op thread, 1 off the CPU."""
    if device.type != "cpu":
        return 1  # a GPU takes all K models in one batched pass
    return max(1, min(runs, torch.get_num_threads()))


@dataclass
class _Group:
    """Some of the active runs, trained in one thread through an epoch."""

    members: list[int]  # indices into ``live``
    diverged: list[int] = field(default_factory=list)  # members whose loss became non-finite
    records: dict[int, EpochRecord] = field(default_factory=dict)  # evaluated members


# On a GPU the runs step in lockstep through one batched engine; tests set this to exercise
# that path on a CPU.
_LOCKSTEP_ON_CPU = False


def _train_epoch(live: list[tuple[Trainer, RunContext]], active: list[int], epoch: int,
                 x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
                 y_test: torch.Tensor) -> tuple[list[_Group], float]:
    """Train and evaluate one epoch of every active run; return the groups and the seconds.

    The active runs are dealt out to :func:`workers_for` groups. One group trains in this
    thread (Ctrl-C lands here); the others in threads of their own, each with one intra-op
    thread. The threads only train and evaluate; :func:`_record_epoch` then does everything
    else in this thread.
    """
    for k in active:
        live[k][1].epoch = epoch
    n = workers_for(live[0][0].device, len(active))
    groups = [_Group(active[i::n]) for i in range(n)]
    started = time.perf_counter()
    _in_threads([partial(_train_group, g, live, epoch, x, y, x_test, y_test) for g in groups])
    return groups, time.perf_counter() - started


def _record_epoch(live: list[tuple[Trainer, RunContext]], groups: list[_Group], epoch: int,
                  seconds: float) -> list[int]:
    """Record the epoch in each run (callbacks, checkpoints); return the runs still active."""
    records = {k: r for g in groups for k, r in g.records.items()}
    share = seconds / max(len(records), 1)  # the epoch's wall time shared out
    for k in sorted(k for g in groups for k in g.diverged):
        t, run = live[k]
        t._diverged(run, epoch)
        t._finish(run)
    still = []
    for k, record in sorted(records.items()):
        t, run = live[k]
        if t._close_epoch(run, replace(record, seconds=share)):
            t._finish(run)
        else:
            still.append(k)
    return still


@contextmanager
def _held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends, then raise KeyboardInterrupt.

    The block records one epoch for each run (callbacks, checkpoints). An interrupt inside it
    would leave some runs an epoch ahead of the others (a later resume together refuses runs
    at different epochs) and the caller without the list of runs still active.
    """
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    try:
        previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signal is delivered here
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, cannot be restored
                signal.signal(sig, handler)
    if caught:
        exc = KeyboardInterrupt()
        exc.signum = caught[0]  # type: ignore[attr-defined]
        raise exc


def _train_group(group: _Group, live: list[tuple[Trainer, RunContext]], epoch: int,
                 x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                 stop: threading.Event) -> None:
    """Train the group's runs through one epoch, then evaluate those still finite.

    On a CPU each run goes through its whole epoch in turn, one K = 1 engine on the batches
    its own generator draws (a seed sweep differs in them): its weights stay in the core's
    cache, where stepping K models in turn batch by batch would evict them. On a GPU all
    runs step in lockstep through one batched engine.
    """
    lockstep = live[group.members[0]][0].device.type != "cpu" or _LOCKSTEP_ON_CPU
    for members in [group.members] if lockstep else [[k] for k in group.members]:
        trainers = [live[k][0] for k in members]
        if not _train_pass(group, members, live, epoch, _batches(trainers, x, y), len(y),
                           x_test, y_test, stop):
            return  # another thread was interrupted; this epoch will not be recorded


def _batches(trainers: list[Trainer], x: torch.Tensor,
             y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's batches of ``trainers``, each run's drawn by its own generator.

    (B, ...) and (B,) when all runs see the same batches, else (K, B, ...) and (K, B). Every
    generator ends where its Trainer's own epoch would leave it (``zip(strict=True)`` runs
    each stream to its end).
    """
    lead = trainers[0]
    gens = [t._gen for t in trainers]
    same = not lead.shuffle or all(torch.equal(g.get_state(), gens[0].get_state())
                                   for g in gens[1:])
    if same:  # one order for all (one run, no shuffling, or one seed)
        yield from iter_batches(x, y, lead.batch_size, shuffle=lead.shuffle, generator=gens[0])
        for g in gens[1:]:
            g.set_state(gens[0].get_state())
        return
    streams = [iter_batches(x, y, lead.batch_size, shuffle=True, generator=g) for g in gens]
    for parts in zip(*streams, strict=True):  # one batch per run: (K, B, ...) and (K, B)
        yield torch.stack([xb for xb, _ in parts]), torch.stack([yb for _, yb in parts])


def _train_pass(group: _Group, members: list[int], live: list[tuple[Trainer, RunContext]],
                epoch: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], n: int,
                x_test: torch.Tensor, y_test: torch.Tensor, stop: threading.Event) -> bool:
    """One epoch of ``members`` through one engine; False if ``stop`` cut it short."""
    lead = live[members[0]][0]
    runs = [live[k][1] for k in members]
    engine = FusedMLP([live[k][0].model for k in members], [live[k][0].lr for k in members])
    loss_sums = torch.zeros(len(runs), device=lead.device)
    alive = list(range(len(runs)))
    for i, (xb, yb) in enumerate(batches):
        if stop.is_set():
            return False
        loss_sums += engine.step(xb, yb) * yb.shape[-1]  # (K,); nan for set-aside runs
        for j in alive:
            runs[j].step += 1
        if i % _CHECK_EVERY == 0:
            alive = _set_aside_diverged(engine, loss_sums, alive)
            if not alive:
                break  # all diverged: stop where a Trainer alone stops
    alive = _set_aside_diverged(engine, loss_sums, alive)
    engine.write_back()  # a diverged run: the weights where it diverged, as alone
    group.diverged += [members[j] for j in range(len(runs)) if j not in alive]
    for j in alive:
        group.records[members[j]] = live[members[j]][0]._evaluate_record(
            epoch, float(loss_sums[j]) / n, x_test, y_test, 0.0)
    return True


def _set_aside_diverged(engine: FusedMLP, loss_sums: torch.Tensor, alive: list[int]) -> list[int]:
    finite = torch.isfinite(loss_sums).tolist()  # one host sync for all runs
    for j in alive:
        if not finite[j]:
            engine.set_active(j, False)
    return [j for j in alive if finite[j]]


def _stopping_others(job: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Run ``job``; if it fails, tell the other jobs to stop at their next step."""
    try:
        job(stop)
    except BaseException:
        stop.set()
        raise


def _in_threads(jobs: list[Callable[[threading.Event], None]]) -> None:
    """Run ``jobs[0]`` here and the others in threads, one intra-op thread each; re-raise.

    An exception in any job (Ctrl-C lands in this thread) stops the others at their next step;
    then the first one raised here propagates.
    """
    stop = threading.Event()
    if len(jobs) == 1:
        jobs[0](stop)
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # seen by the worker threads, which start after this
    try:
        with ThreadPoolExecutor(len(jobs) - 1, thread_name_prefix="fmclassify") as pool:
            futures = [pool.submit(_stopping_others, job, stop) for job in jobs[1:]]
            try:
                jobs[0](stop)
                wait(futures)
            except BaseException:  # Ctrl-C or an error here: the others stop at their next step
                stop.set()
                raise
            for future in futures:
                future.result()  # a worker's exception, raised here
    finally:
        torch.set_num_threads(threads)
