"""What an experiment produced: its runs, and every view of them.

An :class:`ExperimentResult` holds the runs of one experiment (:mod:`fmclassify.experiments`
plans and trains them) and shows them as a table, one row per group of seeds
(:meth:`ExperimentResult.rows` as :class:`GroupRow` objects, :meth:`ExperimentResult.table`
as dicts, Markdown, HTML), as pandas DataFrames (per run, or per run and epoch), as figures,
and as JSON.

Tables name what the course left ambiguous: ``final_accuracy`` (after the last epoch),
``best_accuracy`` (the highest over the epochs) and ``mean_accuracy`` (the mean over the
epochs, the course's "Avg Accuracy") are separate columns; accuracies are fractions. A row's
numbers are means over the group's seeds that did not diverge or fail, with the standard
deviation beside each for several seeds; the runs that diverged or failed are counted, never
averaged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from fmclassify._checks import check_choice
from fmclassify._frames import frame, pandas_for
from fmclassify._io import atomic_write_bytes, dumps_json
from fmclassify._summaries import RUN_COLUMNS, GroupRow, run_summary, summarise
from fmclassify._tables import Table, experiment_table, to_html, to_markdown, to_text
from fmclassify.exceptions import ConfigError
from fmclassify.history import History
from fmclassify.runspec import RECIPE_FIELDS, RunResult, RunSpec

if TYPE_CHECKING:  # plotting (matplotlib) is imported lazily, only to draw
    from fmclassify.plotting import FigureGrid

__all__ = ["PLOT_KINDS", "ExperimentResult", "GroupRow"]

#: The figures :meth:`ExperimentResult.plot` draws, by kind.
PLOT_KINDS = ("run", "comparison", "gradients", "flow")


@dataclass
class ExperimentResult:
    """The runs of one experiment and their summary.

    Parameters
    ----------
    kind : str
        ``"lr_sweep"``, ``"convergence_study"``, ``"compare_models"`` or ``"gradient_study"``.
    runs : list of RunResult
        Every run, in the order trained.
    group_by : str
        The column that tells runs apart in tables (``"lr"`` or ``"model"``); seeds of one
        group are aggregated as mean and standard deviation.
    notes : list of str
        What a reader of the table should know, printed under its table.

    Notes
    -----
    A run that diverged (or failed) gives no number to its group's means: its row counts it
    ("diverged in 1 of 3 seeds") and averages the other seeds. A gradient trace with a
    non-finite step gives no statistic over its steps (the steps before it still show in
    :meth:`plot`).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.lr_sweep(lrs=(0.1, 0.01), epochs=2)      # doctest: +SKIP
    >>> [row.final_accuracy for row in result.rows()]        # doctest: +SKIP
    >>> [row["final_accuracy"] for row in result.table()]    # doctest: +SKIP
    >>> figures = result.plot()                              # doctest: +SKIP
    >>> result.to_json("sweep.json")                         # doctest: +SKIP
    """

    kind: str
    runs: list[RunResult] = field(default_factory=list)
    group_by: str = "lr"
    notes: list[str] = field(default_factory=list)

    @property
    def histories(self) -> list[History]:
        """The runs' Histories, in order."""
        return [r.history for r in self.runs]

    def groups(self) -> dict[Any, list[RunResult]]:
        """Runs grouped by :attr:`group_by`, in first-seen order."""
        out: dict[Any, list[RunResult]] = {}
        for run in self.runs:
            out.setdefault(getattr(run.spec, self.group_by), []).append(run)
        return out

    def rows(self) -> list[GroupRow]:
        """One :class:`GroupRow` per group, in first-seen order: the table, typed.

        Examples
        --------
        >>> import fmclassify as fmc
        >>> result = fmc.lr_sweep(lrs=(0.1, 0.01), epochs=2, seeds=(0, 1))  # doctest: +SKIP
        >>> [(row.lr, row.final_accuracy) for row in result.rows()]         # doctest: +SKIP
        """
        return [summarise(self.group_by, key, runs, self.kind)
                for key, runs in self.groups().items()]

    def table(self) -> list[dict[str, Any]]:
        """One row per group: the measured columns, aggregated over seeds, as dicts.

        Numeric columns hold the mean over the group's seeds that did not diverge or fail,
        with ``<column>_std`` beside it when the group has several seeds (None unless two
        of them gave a value). ``seeds``, ``diverged``, ``failed`` and ``unstable`` count
        runs; ``status`` lists each seed's status, ``outcome`` sums them up ("unstable in
        3 of 3 seeds"). A convergence study adds ``converged`` (how many seeds met the rule)
        and averages ``converged_epoch`` over those. Each dict is a :class:`GroupRow`'s
        :meth:`~GroupRow.to_dict` (:meth:`rows` gives the rows themselves).
        """
        return [row.to_dict() for row in self.rows()]

    def to_table(self, *, title: str = "") -> Table:
        """The table, formatted (accuracies in percent), with :attr:`notes` under it."""
        return experiment_table(self.table(), self.kind, title=title, notes=self.notes)

    def to_markdown(self) -> str:
        """The table as Markdown, accuracies in percent, then any :attr:`notes`."""
        return to_markdown(self.to_table(), note_prefix="Note: ")

    def _repr_html_(self) -> str:
        """How a notebook shows the result: the experiment's table and its notes."""
        return to_html(self.to_table(title=f"{self.kind}: {len(self.runs)} runs"))

    def __str__(self) -> str:
        return to_text(self.to_table(title=f"{self.kind}: {len(self.runs)} runs"))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def plot(self, kinds: Collection[str] = PLOT_KINDS) -> FigureGrid:
        """Figures, by name: one per run, comparisons, gradient traces and flows.

        Parameters
        ----------
        kinds : collection of str, default all of :data:`PLOT_KINDS`
            Which figures to draw: ``"run"`` (``run-NAME``: loss and accuracy per epoch of
            each run, titled with its seed), ``"comparison"`` (``comparison-test_accuracy``,
            ``comparison-train_loss``, ``comparison-test_loss``: every run on one axes, for
            several runs), ``"gradients"`` (``gradients-NAME``: each gradient trace) and
            ``"flow"`` (``flow-NAME``: the mean gradient size per parameter tensor, for a
            trace recorded with ``GradientTracer(per_layer=True)``). ``NAME`` is
            :meth:`run_names`' readable name of the run, such as ``base-lr0.1-s0``.

        Returns
        -------
        fmclassify.plotting.FigureGrid
            A dict of name to :class:`matplotlib.figure.Figure` (index it as before:
            ``result.plot()["comparison-test_accuracy"]``) that a notebook shows as one
            picture, the figures two a row, once, when the cell ends. A dict rather than one
            figure of subplots, so that each figure stays whole, to save or to place:
            ``result.plot().save("figures")`` writes ``figures/run-base-lr0.1-s0.png``, ...

        Examples
        --------
        >>> figures = sweep.plot(kinds=("run",))                         # doctest: +SKIP
        >>> sorted(figures)                                              # doctest: +SKIP
        ['run-base-lr0.01-s0', 'run-base-lr0.1-s0']
        >>> figures.save("figures")                                      # doctest: +SKIP
        [PosixPath('figures/run-base-lr0.01-s0.png'), PosixPath('figures/run-base-lr0.1-s0.png')]
        """
        from fmclassify import plotting

        unknown = sorted(set(kinds) - set(PLOT_KINDS))
        if unknown:
            raise ConfigError(f"unknown figure kind {unknown[0]!r}; choose from "
                              f"{', '.join(PLOT_KINDS)}")
        figures = plotting.FigureGrid()
        names = self.run_names()
        shown = [(name, r) for name, r in zip(names, self.runs, strict=True) if r.history.records]
        with plotting.unshown():  # the grid shows in a notebook, not each figure in it
            for name, run in shown if "run" in kinds else ():
                figures[f"run-{name}"] = plotting.plot_history(
                    run.history, title=f"{_run_label(run.spec)}, seed {run.spec.seed}")
            if "comparison" in kinds and len(shown) > 1:
                labels = [f"{_run_label(r.spec)} seed {r.spec.seed}" for _, r in shown]
                for metric in ("test_accuracy", "train_loss", "test_loss"):
                    figures[f"comparison-{metric}"] = plotting.plot_comparison(
                        [r.history for _, r in shown], metric=metric, labels=labels)
            for name, run in zip(names, self.runs, strict=True):
                figures.update(_gradient_figures(name, run, kinds))
        return figures.show_when_the_cell_ends()

    def run_names(self) -> list[str]:
        """A short, readable, file-name-safe name for each run, in the order of :attr:`runs`.

        ``MODEL-lrLR-sSEED`` (``"base-lr0.1-s0"``), which tells apart the runs of a sweep or a
        model comparison; a character of the model's name that does not belong in a file name
        (``/``, a space, ...) becomes ``_``. Runs that this leaves alike (two recipes, or two
        budgets, of one model, learning rate and seed) are named by their full
        :attr:`RunSpec.key <fmclassify.runs.RunSpec.key>` instead, which ends in a hash of the
        whole configuration. :meth:`plot` names its figures with these names.

        Returns
        -------
        list of str
            One name per run, all different.
        """
        short = [_file_safe(f"{r.spec.model}-lr{r.spec.lr:g}-s{r.spec.seed}") for r in self.runs]
        names = [s if short.count(s) == 1 else _file_safe(r.spec.key)
                 for s, r in zip(short, self.runs, strict=True)]
        seen: dict[str, int] = {}
        for i, name in enumerate(names):  # one spec run twice: numbered, never overwritten
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                names[i] = f"{name}-{seen[name]}"
        return names

    def to_dataframe(self, per: Literal["run", "epoch"] = "run") -> Any:
        """The runs as a tidy :class:`pandas.DataFrame`: one row per run, or per run and epoch.

        Needs pandas, the optional extra ``fmclassify[pandas]``. Both forms start with
        ``run`` (the run's :attr:`RunSpec.key <fmclassify.runs.RunSpec.key>`) and the run's
        configuration, one column per :class:`~fmclassify.runs.RunSpec` field under its own
        name (``model``, ``lr``, ``epochs`` (planned), ``seed``, ``batch_size``, the recipe's
        ``momentum``, ``schedule``, ... ``augment`` as ``"crop,flip"``; not the detector's and
        tracer's settings), so ``frame.groupby("lr")`` reads a sweep.

        Parameters
        ----------
        per : {"run", "epoch"}, default "run"
            ``"run"``: then ``status``, ``epochs_trained`` (int64), ``final_accuracy``,
            ``best_accuracy``, ``mean_accuracy`` (fractions), ``final_train_loss``,
            ``seconds_per_epoch`` (float64; NaN for a run that diverged or failed, whose
            numbers never enter :meth:`table`'s means either, so a group's ``mean()`` is the
            table's), ``diverged_epoch``, ``converged_epoch``, ``parameters`` (``Int64``,
            ``<NA>`` when none) and ``unstable`` (bool). ``"epoch"``: then the columns of
            :meth:`History.to_dataframe <fmclassify.History.to_dataframe>`, one row per
            record (epoch 0 included), with the record's learning rate as ``epoch_lr``.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ConfigError
            If ``per`` is not ``"run"`` or ``"epoch"``.
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.

        Examples
        --------
        >>> frame = result.to_dataframe()                                # doctest: +SKIP
        >>> frame.groupby("lr")["final_accuracy"].agg(["mean", "std"])  # doctest: +SKIP
        >>> curves = result.to_dataframe(per="epoch")                    # doctest: +SKIP
        """
        check_choice("per", per, ("run", "epoch"))
        what = "ExperimentResult.to_dataframe"
        config = frame([_config(r.spec) for r in self.runs], _config_columns(), what=what)
        if per == "epoch":
            return _per_epoch(config, self.runs)
        outcome = frame([run_summary(r) for r in self.runs], RUN_COLUMNS, what=what)
        return pandas_for(what).concat([config, outcome], axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: kind, table, and every run."""
        return {"kind": self.kind, "group_by": self.group_by, "table": self.table(),
                "notes": self.notes, "runs": [r.to_dict() for r in self.runs]}

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The result as JSON text; also written atomically to ``path`` when given."""
        text = dumps_json(self.to_dict())
        if path is not None:
            atomic_write_bytes(path, text.encode())
        return text


def _file_safe(name: str) -> str:
    """``name`` with every character but letters, digits and ``.+=-_`` as ``_``."""
    return re.sub(r"[^\w.+=-]", "_", name, flags=re.ASCII)


def _run_label(spec: RunSpec) -> str:
    """A legend label: ``"base lr=0.1"``, with ``"+recipe"`` for a run not on plain SGD.

    A recipe is anything beyond the course's setup: momentum, a schedule, augmentation, ...
    """
    plain = RunSpec(spec.model, spec.lr, spec.epochs)
    changed = any(getattr(spec, f) != getattr(plain, f) for f in (*RECIPE_FIELDS, "batch_size"))
    return spec.label + (" +recipe" if changed else "")


def _gradient_figures(name: str, run: RunResult, kinds: Collection[str]) -> dict[str, Any]:
    """The trace of one run, and its per-tensor flow when it was recorded per layer."""
    from fmclassify import plotting

    grads = run.gradients
    if not grads:
        return {}
    stat = grads.get("statistic", "mean")
    label = f"{_run_label(run.spec)}, seed {run.spec.seed}"
    out = {}
    if "gradients" in kinds:
        out[f"gradients-{name}"] = plotting.plot_gradients(
            grads["values"], statistic=stat, title=f"gradient {stat}, {label}")
    flow = grads.get("per_layer_stats")
    if flow and "flow" in kinds:
        out[f"flow-{name}"] = plotting.plot_gradient_flow(
            {name: stats["mean_abs"] for name, stats in flow.items()}, stat="mean_abs",
            title=f"mean |gradient| per tensor, {label}")
    return out


_NOT_CONFIG = ("detector", "tracer")  # nested settings, not one value per column


def _config_columns() -> dict[str, str | None]:
    """``run``, then every RunSpec field but the nested ones, typed by its annotation.

    A number that may be None (``ema``, ``clip_grad_norm``, ``val_split``) is float64 with
    NaN, so an all-None column is numeric too; text and tuples are left to pandas.
    """
    def dtype(annotation: Any) -> str | None:
        kind = str(annotation)
        if kind == "bool":
            return "bool"
        if kind.startswith("int"):
            return "Int64" if "None" in kind else "int64"
        return "float64" if kind.startswith("float") else None

    return {"run": None, **{f.name: dtype(f.type) for f in fields(RunSpec)
                            if f.name not in _NOT_CONFIG}}


def _config(spec: RunSpec) -> dict[str, Any]:
    row: dict[str, Any] = {"run": spec.key}
    for f in fields(RunSpec):
        value = getattr(spec, f.name)
        row[f.name] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return row


def _per_epoch(config: Any, runs: list[RunResult]) -> Any:
    """Each run's History frame, its configuration row repeated beside every record."""
    pd = pandas_for("ExperimentResult.to_dataframe")

    def epochs(h: History) -> Any:
        return h.to_dataframe().rename(columns={"lr": "epoch_lr"})  # "lr" is the run's

    parts = [pd.concat([config.iloc[[i] * len(e)].reset_index(drop=True), e], axis=1)
             for i, e in enumerate(epochs(r.history) for r in runs)]
    empty = pd.concat([config, epochs(History())], axis=1)  # no runs: the columns, no rows
    return pd.concat(parts or [empty], ignore_index=True)
