"""The drivers of epoch loops (private): one run alone, or several runs in lockstep.

The Trainer's epoch loop asks its driver for each step (``yield step, batch``) instead of
calling it. :meth:`~fmclassify.Trainer.fit` drives one loop with :func:`alone`, computing each
step at once; :func:`~fmclassify.fit_together` drives several runs' loops with
:func:`lockstep`, computing the steps that name one :class:`~fmclassify._together.Together`
group as one batched step. Everything else about a run stays in its own loop, so an error or
an interrupt is thrown back into each loop where it asked, and its handlers run there.
"""

from __future__ import annotations

from collections.abc import Generator

from fmclassify._batching import Batch
from fmclassify._run_end import TrainingInterrupted
from fmclassify._together import Together
from fmclassify.history import History
from fmclassify.steps import Step

__all__ = ["Request", "alone", "lockstep"]

#: What the epoch loop asks of its driver for each batch: train this step on this batch.
Request = tuple[Step, Batch]


def alone(loop: Generator[Request, None, History]) -> History:
    """Drive one run's epoch loop to its end, computing each step it asks for right away."""
    try:
        step, batch = next(loop)
        while True:
            try:
                step(batch)
            except BaseException as exc:  # raised where the loop asked: its handlers run
                step, batch = loop.throw(exc)
            else:
                step, batch = next(loop)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def lockstep(loops: list[Generator[Request, None, History]],
              group: Together) -> list[History]:
    """Drive several loops a step at a time; the steps that name ``group`` are computed as one."""
    out: dict[int, History] = {}
    asks: dict[int, Request] = {}

    def advance(k: int) -> None:
        try:
            asks[k] = next(loops[k])
        except StopIteration as done:  # the run ended: completed, converged, diverged
            out[k] = done.value
            asks.pop(k, None)

    try:
        for k in range(len(loops)):  # each run's start: checks, resume, epoch 0
            advance(k)
        while asks:
            together = {k: batch for k, (step, batch) in asks.items()
                        if getattr(step, "group", None) is group}
            if together:
                group.step(together)
            for k, (step, batch) in list(asks.items()):
                if k not in together:
                    step(batch)  # a run on a step of its own (a callback reads gradients)
                advance(k)
    except BaseException as exc:  # every run's loop handles it where it asked (checkpoints)
        stopped = None
        for k in list(asks):
            try:
                loops[k].throw(exc)
            except TrainingInterrupted as stop:
                out[k], stopped = stop.history, stopped or stop
            except BaseException:
                continue  # the same error, raised once below
        if stopped is not None and not isinstance(exc, TrainingInterrupted) and isinstance(
                exc, KeyboardInterrupt):
            raise stopped from None  # Ctrl-C between steps: as a run's loop would say it
        raise
    return [out[k] for k in range(len(loops))]
