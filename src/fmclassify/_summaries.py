"""How an experiment's runs are summed up: a row per run, and a :class:`GroupRow` per group.

Private to the package; :class:`GroupRow` is public as ``fmclassify.GroupRow`` (and from
:mod:`fmclassify.results` and :mod:`fmclassify.experiments`). A group is the runs that differ
only in their seed (the runs of one learning rate, or of one model): its row holds the mean of
each measured column over the seeds whose numbers count, with the standard deviation beside it
when the group has several seeds. A run that diverged or failed gives no number to a mean; the
row counts it instead, and sums the seeds up in words (``outcome``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fmclassify.history import History
from fmclassify.runspec import RunResult

__all__ = ["RUN_COLUMNS", "GroupRow", "run_summary", "summarise"]

_NO_NUMBERS = ("diverged", "failed")  # statuses whose measurements never enter a mean

#: The measured columns of every row, each read from one History (None where it has no value).
_MEASURES: dict[str, Callable[[History], float | None]] = {
    "final_accuracy": lambda h: h.final_accuracy if h.epochs_trained else None,
    "best_accuracy": lambda h: h.best_accuracy,
    "mean_accuracy": lambda h: h.mean_accuracy,
    "final_train_loss": lambda h: (h.trained[-1].train_loss if h.trained else None),
    "epochs_trained": lambda h: float(h.epochs_trained),
    "seconds_per_epoch": lambda h: h.seconds_per_epoch,
}
_GRADIENT_MEASURES = ("gradient_first", "gradient_last", "gradient_mean")
_GRADIENT_COUNTS = ("gradient_statistic", "gradient_steps", "gradient_nonfinite",
                    "gradient_nonfinite_step")


def _converged_epoch(h: History) -> int | None:
    return h.convergence.epoch if h.convergence is not None else None


@dataclass(frozen=True)
class GroupRow:
    """One row of :meth:`ExperimentResult.table <fmclassify.ExperimentResult.table>`: a group.

    A group is the runs of one configuration (one learning rate, or one model) over its
    seeds. Each attribute is the column of the same name in :meth:`to_dict` (the table's
    dict), so ``row.final_accuracy`` reads ``table()[i]["final_accuracy"]``; a column the
    table leaves out for this group reads ``None`` here. Accuracies are fractions.

    Parameters
    ----------
    group_by : str
        The column that tells the groups apart: ``"lr"`` or ``"model"``.
    group : object
        This group's value of it (a learning rate, a model name); also :attr:`lr` or
        :attr:`model`.
    seeds : int
        Runs in the group.
    parameters : int or None
        Trainable parameters of the model (from the first run that counted them).
    final_accuracy, best_accuracy, mean_accuracy, final_train_loss, epochs_trained, \
seconds_per_epoch : float or None
        The mean over the seeds that did not diverge or fail (None when none did): test
        accuracy after the last epoch, the highest and the mean over the epochs (the course's
        "Avg Accuracy"), the last epoch's training loss, the epochs trained, the seconds per
        epoch.
    status : str
        Each seed's status, ``"; "``-separated (``"converged at epoch 4; diverged at epoch 1"``).
    diverged, failed, unstable : int
        How many seeds diverged, failed, or ran unstable.
    outcome : str
        The seeds summed up in words: ``"trained in 2 of 3 seeds; diverged in 1 of 3 seeds
        (epoch 2)"``; one seed's status when the group has one.
    final_accuracy_std, best_accuracy_std, mean_accuracy_std, final_train_loss_std, \
epochs_trained_std, seconds_per_epoch_std : float or None, default None
        For a group of several seeds: the standard deviation beside each mean (None unless
        two seeds gave a value). The table has these columns only for several seeds.
    converged_epoch, converged_epoch_std : float or None, default None
        A convergence study's: the mean epoch of convergence over the seeds that converged.
    converged : int or None, default None
        A convergence study's: how many seeds met the rule. The table has ``converged`` and
        ``converged_epoch`` only for a convergence study (where this is never None).
    gradient_statistic : str or None, default None
        A gradient study's: the statistic traced (``"mean"``, ``"mean_abs"``, ``"l2_norm"``).
    gradient_steps, gradient_nonfinite : int or None, default None
        The longest trace's steps; how many traces went non-finite.
    gradient_nonfinite_step : int or None, default None
        The first (1-based) step at which a trace went non-finite, or None.
    gradient_first, gradient_last, gradient_mean : float or None, default None
        The statistic at the first and last step and its mean over the steps, averaged over
        the traces that stayed finite; with ``*_std`` beside each for several seeds. The
        table has the gradient columns only for runs that traced gradients (where
        ``gradient_steps`` is never None).
    gradient_first_std, gradient_last_std, gradient_mean_std : float or None, default None

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.lr_sweep(lrs=(0.1, 0.01), epochs=2, seeds=(0, 1))   # doctest: +SKIP
    >>> [(row.lr, row.final_accuracy, row.final_accuracy_std)
    ...  for row in result.rows()]                                        # doctest: +SKIP
    >>> result.rows()[0].to_dict() == result.table()[0]                   # doctest: +SKIP
    True
    """

    group_by: str
    group: Any
    seeds: int
    parameters: int | None
    final_accuracy: float | None
    best_accuracy: float | None
    mean_accuracy: float | None
    final_train_loss: float | None
    epochs_trained: float | None
    seconds_per_epoch: float | None
    status: str
    diverged: int
    failed: int
    unstable: int
    outcome: str
    final_accuracy_std: float | None = None
    best_accuracy_std: float | None = None
    mean_accuracy_std: float | None = None
    final_train_loss_std: float | None = None
    epochs_trained_std: float | None = None
    seconds_per_epoch_std: float | None = None
    converged_epoch: float | None = None
    converged_epoch_std: float | None = None
    converged: int | None = None
    gradient_statistic: str | None = None
    gradient_steps: int | None = None
    gradient_nonfinite: int | None = None
    gradient_nonfinite_step: int | None = None
    gradient_first: float | None = None
    gradient_first_std: float | None = None
    gradient_last: float | None = None
    gradient_last_std: float | None = None
    gradient_mean: float | None = None
    gradient_mean_std: float | None = None

    @property
    def lr(self) -> Any:
        """The group's learning rate in a table grouped by ``"lr"``; None in any other."""
        return self.group if self.group_by == "lr" else None

    @property
    def model(self) -> Any:
        """The group's model name in a table grouped by ``"model"``; None in any other."""
        return self.group if self.group_by == "model" else None

    def to_dict(self) -> dict[str, Any]:
        """The table's row: the grouping column first, then the columns this group has.

        ``*_std`` columns for a group of several seeds, ``converged_epoch`` and ``converged``
        for a convergence study, the ``gradient_*`` columns for traced runs; the others are
        left out, not None.

        Examples
        --------
        >>> row = GroupRow("lr", 0.1, 1, 669706, 0.87, 0.87, 0.84, 0.35, 10.0, 2.1,
        ...                  "completed", 0, 0, 0, "completed")
        >>> list(row.to_dict())[:4]
        ['lr', 'seeds', 'parameters', 'final_accuracy']
        """
        measured = list(_MEASURES)
        if self.converged is not None:
            measured.append("converged_epoch")
        out: dict[str, Any] = {self.group_by: self.group, "seeds": self.seeds,
                               "parameters": self.parameters}
        self._put(out, measured)
        out.update(status=self.status, diverged=self.diverged, failed=self.failed,
                   unstable=self.unstable)
        if self.converged is not None:
            out["converged"] = self.converged
        if self.gradient_steps is not None:
            out.update({name: getattr(self, name) for name in _GRADIENT_COUNTS})
            self._put(out, _GRADIENT_MEASURES)
        out["outcome"] = self.outcome
        return out

    def _put(self, out: dict[str, Any], names: Sequence[str]) -> None:
        """Each of ``names``, with its ``_std`` beside it for several seeds."""
        for name in names:
            out[name] = getattr(self, name)
            if self.seeds > 1:
                out[f"{name}_std"] = getattr(self, f"{name}_std")


def summarise(group_by: str, group: Any, runs: list[RunResult], kind: str) -> GroupRow:
    """The :class:`GroupRow` of one group's runs, for an experiment of ``kind``.

    A convergence study (``kind="convergence_study"``) adds the convergence columns; runs
    with gradient traces add the gradient columns.
    """
    hs = [r.history for r in runs]
    ok = [h for h in hs if h.status not in _NO_NUMBERS]  # the seeds whose numbers count
    several = len(runs) > 1
    measures = dict(_MEASURES)
    if kind == "convergence_study":
        measures["converged_epoch"] = _converged_epoch
    row: dict[str, Any] = {"group_by": group_by, "group": group, "seeds": len(runs),
                           "parameters": next((h.metadata.get("parameters") for h in hs
                                               if h.metadata.get("parameters")), None)}
    for name, get in measures.items():
        row[name], row[f"{name}_std"] = _mean_std([get(h) for h in ok], several=several)
    row["status"] = "; ".join(h.describe_status() for h in hs)
    row["diverged"] = sum(h.status == "diverged" for h in hs)
    row["failed"] = sum(h.status == "failed" for h in hs)
    row["unstable"] = sum(h.unstable for h in hs)
    if kind == "convergence_study":
        row["converged"] = sum(_converged_epoch(h) is not None for h in ok)
    grads = [r.gradients for r in runs if r.gradients]
    if grads:
        row.update(_gradient_columns(grads, several=several))
    row["outcome"] = _outcome(hs, row, kind)
    return GroupRow(**row)


#: The columns of :func:`run_summary`, in the per-run frame's order, and their dtypes.
RUN_COLUMNS: dict[str, str | None] = {
    "status": None, "epochs_trained": "int64", "final_accuracy": "float64",
    "best_accuracy": "float64", "mean_accuracy": "float64", "final_train_loss": "float64",
    "seconds_per_epoch": "float64", "diverged_epoch": "Int64", "converged_epoch": "Int64",
    "parameters": "Int64", "unstable": "bool"}


def run_summary(run: RunResult) -> dict[str, Any]:
    """One run summed up: the per-run frame's row of ``ExperimentResult.to_dataframe()``.

    The measured columns (None for a run that diverged or failed), the status, the epochs
    trained, the epochs of divergence and convergence, the parameters and the instability.
    """
    h = run.history
    counts = h.status not in _NO_NUMBERS
    row = {name: get(h) if counts else None for name, get in _MEASURES.items()}
    return {**row, "status": h.status, "epochs_trained": h.epochs_trained,
            "diverged_epoch": h.diverged_epoch, "unstable": h.unstable,
            "converged_epoch": _converged_epoch(h),
            "parameters": h.metadata.get("parameters")}


def _mean_std(values: Sequence[float | None], *,
              several: bool) -> tuple[float | None, float | None]:
    """The mean of the finite values, and their standard deviation for several seeds.

    Each is None without values to give it (the deviation needs two).
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    mean = statistics.fmean(finite) if finite else None
    std = statistics.stdev(finite) if several and len(finite) > 1 else None
    return mean, std


def _gradient_columns(grads: list[dict[str, Any]], *, several: bool) -> dict[str, Any]:
    """First, last and mean over the steps, over the traces that stayed finite throughout."""
    finite = [g for g in grads if not g.get("nonfinite_steps")
              and all(v is not None for v in g["values"]) and g["values"]]
    broken = [_first_nonfinite(g) for g in grads if g not in finite]
    row: dict[str, Any] = {
        "gradient_statistic": grads[0].get("statistic", "mean"),
        "gradient_steps": max(len(g["values"]) for g in grads),
        "gradient_nonfinite": len(grads) - len(finite),
        "gradient_nonfinite_step": min(broken) if broken else None,
    }
    for name, get in (("gradient_first", lambda v: v[0]), ("gradient_last", lambda v: v[-1]),
                      ("gradient_mean", statistics.fmean)):
        row[name], row[f"{name}_std"] = _mean_std([get(g["values"]) for g in finite],
                                                  several=several)
    return row


def _first_nonfinite(trace: dict[str, Any]) -> int:
    """The 1-based step at which a trace first holds a non-finite value (None in JSON)."""
    steps = trace.get("nonfinite_steps") or [
        i for i, v in enumerate(trace["values"]) if v is None]
    return int(min(steps)) + 1 if steps else len(trace["values"]) + 1


def _outcome(hs: list[History], row: dict[str, Any], kind: str) -> str:
    """What happened to a group's seeds, in a few words: "converged in 2 of 3 seeds; ..."."""
    n = len(hs)
    trace = (f"trace non-finite from step {row['gradient_nonfinite_step']}"
             if row.get("gradient_nonfinite") else "")
    if n == 1:
        return "; ".join(p for p in (hs[0].describe_status(), trace) if p)
    of = f" of {n} seeds"
    ok = [h for h in hs if h.status not in _NO_NUMBERS]
    parts: list[str] = []
    converged = row.get("converged", 0)
    if kind == "convergence_study" and converged:
        parts.append(f"converged in {converged}{of}")
    if kind == "convergence_study" and len(ok) > converged:
        within = max(h.epochs_trained for h in ok)
        parts.append(f"not converged within {within} epochs in {len(ok) - converged}{of}")
    elif kind != "convergence_study" and ok:
        parts.append(f"trained in {len(ok)}{of}")
    diverged = [h for h in hs if h.status == "diverged"]
    if diverged:
        epochs = ", ".join(str(h.diverged_epoch) for h in diverged)
        parts.append(f"diverged in {len(diverged)}{of} (epoch {epochs})")
    if row["failed"]:
        parts.append(f"failed in {row['failed']}{of}")
    if row["unstable"]:
        parts.append(f"unstable in {row['unstable']}{of}")
    if trace:
        parts.append(f"{trace} in {row['gradient_nonfinite']}{of}")
    return "; ".join(parts)
