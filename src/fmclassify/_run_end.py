"""How a run ends early, diverged or interrupted (private), and what an interrupted fit raises.

A run whose training loss turns non-finite ends as ``"diverged"`` (:func:`mark_diverged`). An
interrupted one ends as ``"interrupted"`` (:func:`mark_interrupted`), and the loop raises
:class:`TrainingInterrupted`, which carries every finished epoch: :meth:`~fmclassify.Trainer.fit`
and :func:`~fmclassify.fit_together` run under :func:`sigterm_as_interrupt`, so a scheduler's
SIGTERM ends a run the way Ctrl-C does. Both are public names of :mod:`fmclassify.training`,
which re-exports them. (Converged and stopped runs are ended by callbacks, through
:class:`~fmclassify.RunContext`.)
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fmclassify.history import History

__all__ = ["TrainingInterrupted", "mark_diverged", "mark_interrupted", "sigterm_as_interrupt"]


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

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.history, self.signum))


def mark_diverged(history: History, epoch: int, step: int, lr: float) -> None:
    """Mark the run diverged in ``epoch`` (at ``step``); the unfinished epoch is not recorded."""
    history.status = "diverged"
    history.diverged_epoch = epoch
    history.reason = (f"training loss became non-finite in epoch {epoch} (step {step}); "
                      f"lr {lr:g} is too large for this model")


def mark_interrupted(history: History) -> None:
    """Mark the run interrupted; ``history`` keeps its finished epochs."""
    history.status = "interrupted"
    history.reason = f"interrupted after {history.epochs_trained} finished epochs"


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt during fit, so both end the run the same way.

    Outside the main thread (where Python delivers no signal) it does nothing. The previous
    handler is restored afterwards; one that Python did not install (``None``: set by C code)
    cannot be restored from Python, so the default action is put back in its place.
    """
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
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
