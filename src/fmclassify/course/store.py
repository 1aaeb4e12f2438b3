"""The report's run store: finished runs, and the last weights of the runs a question reads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fmclassify._io import output_error
from fmclassify.experiments import ExperimentResult
from fmclassify.runs import RunResult, RunSpec, RunStore

__all__ = ["WeightsStore", "best_group"]


def best_group(result: ExperimentResult) -> object | None:
    """The group (model or lr) of the highest mean final accuracy; None when none has one."""
    rows = [r for r in result.rows() if r.final_accuracy is not None]
    return max(rows, key=lambda r: r.final_accuracy).group if rows else None


class WeightsStore(RunStore):
    """A :class:`RunStore` that keeps the last checkpoint of a few runs as ``KEY.final.pt``.

    The Trainer writes a run's checkpoint after every epoch and when it ends; a plain store
    deletes it once the run is stored. Keeping the last one lets the report rebuild a trained
    model exactly (the Trainer restores it and trains no epoch) without training it again.
    Only the most accurate group of an experiment planned with ``keep_weights`` needs one,
    and which group that is is known only when all its runs have finished; so the first
    finished run of each group keeps its checkpoint (:meth:`keep_final`) and every other
    run's is deleted when it is stored: the folder holds at most one checkpoint per group
    beside those of the runs in training, and once every run of the experiment is stored,
    only the most accurate group's (the runs go out the longest first, so a large model
    usually finishes early).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        super().__init__(folder)
        self._keep: list[tuple[str, str, dict[str, RunSpec]]] = []  # kind, group_by, runs

    def keep_final(self, kind: str, group_by: str, specs: Sequence[RunSpec]) -> None:
        """Let the first finished run of each group among ``specs`` keep its last checkpoint."""
        self._keep.append((kind, group_by, {s.key: s for s in specs}))

    def final_path(self, spec: RunSpec) -> Path:
        """Where the finished run of ``spec`` keeps its last checkpoint."""
        return self._final(spec.key)

    def _final(self, key: str) -> Path:
        return self.folder / f"{key}.final.pt"

    def _wanted(self, spec: RunSpec) -> bool:
        """Whether ``spec``'s run keeps its checkpoint: its group's first one."""
        for _, group_by, keep in self._keep:
            if spec.key in keep:
                mine = getattr(spec, group_by)
                return not any(self._final(key).exists() for key, other in keep.items()
                               if getattr(other, group_by) == mine)
        return False

    def _prune(self, kind: str, group_by: str, keep: dict[str, RunSpec]) -> None:
        """Once every run of ``keep`` is stored, delete the other groups' kept checkpoints."""
        if not all(self.json_path(s).exists() for s in keep.values()):
            return
        runs = [r for r in map(self.load, keep.values()) if r is not None]
        best = best_group(ExperimentResult(kind, runs=runs, group_by=group_by))
        for key, spec in keep.items():
            if getattr(spec, group_by) != best:
                self._final(key).unlink(missing_ok=True)

    def save(self, result: RunResult) -> Path:
        """Keep the checkpoint under :meth:`final_path` when it is wanted, then store the run.

        When storing fails (no space left), the checkpoint is put back, so the next call
        resumes the run from it (training no epoch) instead of training it again.
        """
        checkpoint = self.checkpoint_path(result.spec)
        final = self.final_path(result.spec)
        kept = (checkpoint.exists() and result.history.status != "diverged"
                and self._wanted(result.spec))
        if kept:
            try:
                os.replace(checkpoint, final)
            except OSError as exc:
                raise output_error(final, exc) from None
        try:
            path = super().save(result)
        except BaseException:
            if kept:
                os.replace(final, checkpoint)
            raise
        for kind, group_by, keep in self._keep:
            if result.spec.key in keep:
                self._prune(kind, group_by, keep)
        return path
