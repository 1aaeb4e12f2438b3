"""What a training run produced: one record per epoch, plain data, JSON round trip.

This module needs no torch: a History written by a run on a GPU machine can be read, tabled and
plotted anywhere.

Statuses
--------
``"completed"``
    The run used its whole epoch budget.
``"converged"``
    A :class:`~fmclassify.ConvergenceDetector` stopped the run early.
``"stopped"``
    Another callback asked the trainer to stop.
``"diverged"``
    The training loss became NaN or infinite; ``diverged_epoch`` says in which epoch. The
    unfinished epoch is not recorded, so no non-finite value is ever averaged into a record.
``"interrupted"``
    Ctrl-C or SIGTERM ended the run; every finished epoch is kept.
``"failed"``
    An error ended the run where it trained (often a worker of a sweep); ``reason`` holds the
    error's type and text, and the records hold nothing. A sweep records it and goes on with
    the other runs; it is never stored as finished, so calling the sweep again retries it.

The instability rule
--------------------
A run that does not diverge can still thrash: its loss bounces around the loss of guessing and
its accuracy jumps between epochs, or the network dies and stays at chance.
:attr:`History.unstable` flags a trained run when either

* the mean training loss of some epoch exceeds, by more than :data:`UNSTABLE_LOSS_MARGIN`
  (0.05, 5 %), the larger of ``ln(num_classes)`` (the loss of guessing uniformly, 2.30 for ten
  classes) and the untrained network's test loss (epoch 0): the steps made the network
  clearly worse than no training, or
* its test accuracy fell by more than :data:`UNSTABLE_DROP` (0.10, ten percentage points)
  from one epoch to the next at least once.

Both measure what the steps trained: the training loss always does, and for a run with an
EMA of the weights the accuracy rule reads the raw model's test accuracy
(``raw_test_accuracy``), not the average's, which lags the weights by design.

A learning rate that is merely too small is not unstable: its loss starts near ``ln(C)`` and
only goes down. A healthy SGD run moves its test accuracy by a few points between epochs at
most (more on a small subset, hence the generous ten); a larger fall means the step size throws
the weights out of the basin they had found.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from fmclassify._io import atomic_write_bytes, dumps_json
from fmclassify._tables import Table, elide, fixed, percent, to_html, to_text

__all__ = ["UNSTABLE_DROP", "UNSTABLE_LOSS_MARGIN", "VERDICT_METADATA_KEYS", "ConvergenceVerdict",
           "EpochRecord", "History", "Status", "atomic_write_bytes", "completed_reason"]

Status = Literal["running", "completed", "converged", "stopped", "diverged", "interrupted",
                 "failed"]

#: Largest epoch-to-epoch fall in test accuracy (a fraction) that a stable run shows.
UNSTABLE_DROP = 0.10
#: How far (a fraction) an epoch's training loss may exceed the larger of ln(classes) and the
#: untrained network's test loss before the run counts as unstable.
UNSTABLE_LOSS_MARGIN = 0.05


def completed_reason(epochs: int) -> str:
    """The ``reason`` of a run that trained its whole budget of ``epochs`` epochs.

    Examples
    --------
    >>> completed_reason(10)
    'trained the full budget of 10 epochs'
    """
    return f"trained the full budget of {epochs} epochs"


_STATUSES = ("running", "completed", "converged", "stopped", "diverged", "interrupted",
             "failed")

#: The ``History.metadata`` keys that carried a convergence verdict before
#: :attr:`History.convergence` did: ``converged_epoch``, ``not_converged_within`` and
#: ``restored_best_epoch``. :meth:`History.record_convergence` still writes them, for code that
#: reads them there, and a History file written before the typed verdict is read from them.
VERDICT_METADATA_KEYS = ("converged_epoch", "not_converged_within", "restored_best_epoch")


@dataclass(frozen=True)
class ConvergenceVerdict:
    """What a :class:`~fmclassify.ConvergenceDetector` concluded about a run.

    A run that a detector watched holds it as :attr:`History.convergence`; a run without a
    detector holds ``None`` there.

    Parameters
    ----------
    epoch : int or None
        The epoch at which the convergence rule was first met; ``None`` when it never was
        (within the epochs watched, or because the run diverged: a diverged run never counts
        as converged). With ``ConvergenceDetector(stop=False)`` the run goes on after it.
    epochs_watched : int
        The epochs the detector saw: the epochs trained when the run ended (the budget, for a
        run that did not converge: "not converged within ``epochs_watched`` epochs").
    reason : str, default ""
        The detector's sentence (:attr:`ConvergenceDetector.reason
        <fmclassify.ConvergenceDetector.reason>`): the rule, and whether and when it was met.
        Empty for a History read from a file written before the verdict was typed.
    restored_best_epoch : int or None, default None
        With ``ConvergenceDetector(restore_best=True)``: the epoch whose weights were loaded
        back into the model when the run ended.

    Examples
    --------
    >>> from fmclassify.history import ConvergenceVerdict, History
    >>> verdict = ConvergenceVerdict(epoch=6, epochs_watched=6, reason="converged at epoch 6")
    >>> History(status="converged", convergence=verdict).describe_status()
    'converged at epoch 6'
    """

    epoch: int | None
    epochs_watched: int
    reason: str = ""
    restored_best_epoch: int | None = None

    @property
    def converged(self) -> bool:
        """Whether the rule was met (:attr:`epoch` is not None)."""
        return self.epoch is not None


@dataclass(frozen=True)
class EpochRecord:
    """The measurements of one epoch.

    Parameters
    ----------
    epoch : int
        1-based epoch number; 0 is the evaluation of the untrained model.
    train_loss : float or None
        Mean cross-entropy over the epoch's training batches (sample-weighted); ``None`` for
        epoch 0, where nothing was trained.
    test_loss : float
        Mean cross-entropy on the test set after the epoch.
    test_accuracy : float
        Fraction of test images classified correctly, in [0, 1].
    seconds : float
        Wall-clock seconds of the epoch's training (evaluation excluded).
    lr : float or None, default None
        The learning rate of the epoch's first step (a schedule changes it per step); ``None``
        for epoch 0.
    val_loss, val_accuracy : float or None, default None
        Loss and accuracy on the validation split, for a run that holds one out
        (``Trainer(val_split=...)``); ``None`` otherwise.
    raw_test_loss, raw_test_accuracy, raw_val_loss, raw_val_accuracy : float or None
        For a run with an EMA of the weights (``Trainer(ema=...)``), where ``test_*`` and
        ``val_*`` measure the average: the same measures of the raw weights the steps
        trained. ``None`` without EMA (``test_*`` and ``val_*`` are then the raw model's).

    Examples
    --------
    >>> r = EpochRecord(epoch=1, train_loss=0.65, test_loss=0.56, test_accuracy=0.789, seconds=1.7)
    >>> f"{r.test_accuracy:.1%}"
    '78.9%'
    """

    epoch: int
    train_loss: float | None
    test_loss: float
    test_accuracy: float
    seconds: float
    lr: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    raw_test_loss: float | None = None
    raw_test_accuracy: float | None = None
    raw_val_loss: float | None = None
    raw_val_accuracy: float | None = None

    @property
    def trained_accuracy(self) -> float:
        """Test accuracy of the weights the steps trained: the raw model's under EMA."""
        return self.test_accuracy if self.raw_test_accuracy is None else self.raw_test_accuracy


@dataclass
class History:
    """The per-epoch record of one training run.

    Parameters
    ----------
    records : list of EpochRecord
        One record per finished epoch, in order, starting with epoch 0 when the run evaluated
        the untrained model.
    status : str
        One of ``"running"``, ``"completed"``, ``"converged"``, ``"stopped"``, ``"diverged"``,
        ``"interrupted"`` (see the module documentation).
    metadata : dict
        JSON-ready facts about the run: model, lr, batch size, seed, parameter count, library
        versions, device, data checksum.
    reason : str
        A readable sentence on why the run ended, empty while running.
    diverged_epoch : int or None
        The epoch in which the loss became non-finite, for a diverged run.
    convergence : ConvergenceVerdict or None
        The verdict of the :class:`~fmclassify.ConvergenceDetector` that watched the run
        (:meth:`record_convergence`), or ``None`` when none did.

    Examples
    --------
    >>> h = History(metadata={"model": "base", "lr": 0.1})
    >>> h.append(EpochRecord(1, 0.6, 0.5, 0.81, 2.0))
    >>> h.final_accuracy
    0.81
    """

    records: list[EpochRecord] = field(default_factory=list)
    status: Status = "running"
    metadata: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    diverged_epoch: int | None = None
    convergence: ConvergenceVerdict | None = None

    def append(self, record: EpochRecord) -> None:
        """Add one epoch's record; epochs must increase."""
        if self.records and record.epoch <= self.records[-1].epoch:
            raise ValueError(
                f"epoch {record.epoch} does not follow epoch {self.records[-1].epoch}; "
                "records must be appended in increasing epoch order"
            )
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    @property
    def trained(self) -> list[EpochRecord]:
        """The records of trained epochs (epoch 0, the untrained evaluation, left out)."""
        return [r for r in self.records if r.epoch > 0]

    @property
    def epochs_trained(self) -> int:
        """Number of finished training epochs."""
        return len(self.trained)

    def column(self, name: str, *, include_initial: bool = False) -> list[Any]:
        """One field over the epochs, e.g. ``history.column("test_accuracy")``.

        Parameters
        ----------
        name : str
            A field of :class:`EpochRecord`: ``epoch``, ``train_loss``, ``test_loss``,
            ``test_accuracy``, ``seconds``, ``lr``, ``val_loss``, ``val_accuracy`` or, for a
            run with EMA, ``raw_test_loss``, ``raw_test_accuracy``, ``raw_val_loss``,
            ``raw_val_accuracy``.
        include_initial : bool, default False
            Include epoch 0 (the untrained model).

        Raises
        ------
        KeyError
            If ``name`` is not a field; the message lists the fields.
        """
        names = [f.name for f in fields(EpochRecord)]
        if name not in names:
            raise KeyError(f"unknown column {name!r}; available: {', '.join(names)}")
        rows = self.records if include_initial else self.trained
        return [getattr(r, name) for r in rows]

    @property
    def final_accuracy(self) -> float | None:
        """Test accuracy after the last finished epoch (a fraction), or None before any."""
        return self.records[-1].test_accuracy if self.records else None

    @property
    def best_accuracy(self) -> float | None:
        """Highest test accuracy over the trained epochs, or None before any."""
        accs = self.column("test_accuracy")
        return max(accs) if accs else None

    @property
    def mean_accuracy(self) -> float | None:
        """Mean test accuracy over the trained epochs (the course's "Avg Accuracy")."""
        accs = self.column("test_accuracy")
        return sum(accs) / len(accs) if accs else None

    @property
    def seconds_per_epoch(self) -> float | None:
        """Mean wall-clock seconds of the trained epochs."""
        secs = self.column("seconds")
        return sum(secs) / len(secs) if secs else None

    @property
    def unstable(self) -> bool:
        """Whether the run thrashed without diverging (rule in the module documentation)."""
        if self.status == "diverged" or not self.trained:
            return False
        start = math.log(int(self.metadata.get("num_classes", 10)))
        if self.records[0].epoch == 0 and math.isfinite(self.records[0].test_loss):
            start = max(start, self.records[0].test_loss)
        losses = [x for x in self.column("train_loss") if x is not None]
        if any(loss > (1 + UNSTABLE_LOSS_MARGIN) * start for loss in losses):
            return True
        accs = [r.trained_accuracy for r in self.trained]  # what trained, not its EMA
        return any(prev - cur > UNSTABLE_DROP for prev, cur in itertools.pairwise(accs))

    def describe_status(self) -> str:
        """A short label for tables: "completed", "diverged at epoch 3", "unstable", ..."""
        if self.status == "diverged":
            return f"diverged at epoch {self.diverged_epoch}"
        label: str = self.status
        verdict = self.convergence
        if self.status == "converged":
            epoch = verdict.epoch if verdict is not None else None
            label = f"converged at epoch {len(self.trained) if epoch is None else epoch}"
        elif self.status == "completed" and verdict is not None and not verdict.converged:
            label = f"not converged within {verdict.epochs_watched}"
        if self.unstable:
            label += " (unstable)"
        return label

    def record_convergence(self, verdict: ConvergenceVerdict | None) -> None:
        """Keep a convergence detector's verdict as :attr:`convergence`.

        The verdict is mirrored into :attr:`metadata` under the keys it had before it was
        typed (:data:`VERDICT_METADATA_KEYS`), for code that still reads it there:
        ``converged_epoch`` when the rule was met; ``not_converged_within`` (the epochs
        watched) when it was not, in a run that did not diverge; ``restored_best_epoch``
        when best weights were restored. ``None`` forgets the verdict and those keys.

        Examples
        --------
        >>> h = History(status="completed")
        >>> h.record_convergence(ConvergenceVerdict(epoch=None, epochs_watched=10))
        >>> h.describe_status(), h.metadata
        ('not converged within 10', {'not_converged_within': 10})
        """
        self.convergence = verdict
        for key in VERDICT_METADATA_KEYS:
            self.metadata.pop(key, None)
        if verdict is None:
            return
        if verdict.epoch is not None:
            self.metadata["converged_epoch"] = verdict.epoch
        elif self.status != "diverged":
            self.metadata["not_converged_within"] = verdict.epochs_watched
        if verdict.restored_best_epoch is not None:
            self.metadata["restored_best_epoch"] = verdict.restored_best_epoch

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "format": "fmclassify.history/1",
            "status": self.status,
            "reason": self.reason,
            "diverged_epoch": self.diverged_epoch,
            "convergence": None if self.convergence is None else asdict(self.convergence),
            "metadata": self.metadata,
            "records": [asdict(r) for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Build a History from :meth:`to_dict` output.

        A dict without a ``"convergence"`` entry (written before the verdict was typed) has
        its verdict read from the metadata keys that carried it then
        (:data:`VERDICT_METADATA_KEYS`).

        Raises
        ------
        ValueError
            If the dict is not a History (wrong format tag, unknown status, bad records).
        """
        if data.get("format") != "fmclassify.history/1":
            raise ValueError(
                f"not an fmclassify history (format {data.get('format')!r}); "
                "expected 'fmclassify.history/1' as written by History.to_json"
            )
        status = data.get("status")
        if status not in _STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(_STATUSES)}")
        try:
            # JSON writes an infinite test loss as null; it reads back as inf
            records = [EpochRecord(**{**r, "test_loss": _inf_if_none(r.get("test_loss"))})
                       for r in data.get("records", [])]
        except TypeError as exc:
            raise ValueError(f"malformed epoch record in history: {exc}") from None
        metadata = dict(data.get("metadata", {}))
        if "convergence" in data:
            verdict = _verdict(data["convergence"])
        else:  # an older file: the verdict travelled in the metadata
            verdict = _verdict_of_metadata(metadata, sum(r.epoch > 0 for r in records))
        return cls(
            records=records,
            status=status,
            metadata=metadata,
            reason=str(data.get("reason", "")),
            diverged_epoch=data.get("diverged_epoch"),
            convergence=verdict,
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the History as JSON, atomically (a crash never leaves half a file).

        Returns
        -------
        pathlib.Path
            The path written.
        """
        return atomic_write_bytes(path, dumps_json(self.to_dict(), indent=2).encode("utf-8"))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> History:
        """Read a History written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))


    # -- tables and logs ----------------------------------------------------------------------

    def __str__(self) -> str:
        header, rows = self._table()
        return to_text(Table(header, rows, right=range(len(header)), title=self._title(),
                             notes=self._notes()))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How IPython prints a History as text: the table of :meth:`__str__`."""
        printer.text("History(...)" if cycle else str(self))

    def _repr_html_(self) -> str:
        """How a notebook shows a History: the table of epochs, the status and the settings."""
        header, rows = self._table()
        return to_html(Table(header, rows, right=range(len(header)), title=self._title(),
                             notes=self._notes()))

    def _title(self) -> str:
        run = ", ".join(f"{k}={self.metadata[k]}" for k in ("model", "lr") if k in self.metadata)
        of = f" of {run}" if run else ""
        return f"History{of}: {self.describe_status()}, {self.epochs_trained} epochs trained"

    def _notes(self) -> list[str]:
        notes = [self.reason] if self.reason else []
        if len(self.records) > 2 * _TABLE_EDGE + 1:
            notes.append(f"{len(self.records) - 2 * _TABLE_EDGE} epochs not shown; "
                         "history.to_dataframe() holds them all")
        if any(r.raw_test_accuracy is not None for r in self.records):
            notes.append(f"test and val columns evaluate the EMA of the weights (decay "
                         f"{self.metadata.get('ema', '?')}); raw columns the trained weights")
        if self.trained:
            notes.append(f"final test accuracy {percent(self.final_accuracy, digits=2)}, "
                         f"best {percent(self.best_accuracy, digits=2)}")
        shown = [k for k in _SUMMARY_KEYS if self.metadata.get(k) is not None]
        if shown:
            more = len(self.metadata) - len(shown)
            notes.append(", ".join(f"{k}={self.metadata[k]}" for k in shown)
                         + (f" (+{more} more in .metadata)" if more > 0 else ""))
        return notes

    def _table(self) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows; long runs show their first and last epochs."""
        columns = [c for c in _TABLE_COLUMNS
                   if c[0] not in _OPTIONAL or any(getattr(r, c[0]) is not None for r in self)]
        rows = [[fmt(getattr(r, name)) for name, _, fmt in columns] for r in self.records]
        return [head for _, head, _ in columns], elide(rows, _TABLE_EDGE)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write every record (epoch 0 included) as CSV, atomically; one column per field.

        Empty cells stand for ``None`` (no train loss at epoch 0, no validation split, ...);
        the ``raw_*`` columns are written only for a run with EMA that recorded them. Floats
        are written in full precision. Returns the path written (its folder is created
        if missing).

        Examples
        --------
        >>> h = History()
        >>> h.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
        >>> h.to_csv("history.csv").read_text().splitlines()        # doctest: +SKIP
        ['epoch,train_loss,test_loss,test_accuracy,seconds,lr,val_loss,val_accuracy',
         '0,,2.3,0.1,0.0,,,']
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        names = _columns(self.records)
        writer.writerow(names)
        for record in self.records:
            writer.writerow(["" if v is None else v for v in _values(record, names)])
        return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))

    def to_dataframe(self) -> Any:
        """Every record (epoch 0 included) as a :class:`pandas.DataFrame`, one column per field.

        Needs pandas, the optional extra ``fmclassify[pandas]``. Missing values (``None``) are
        NaN; every column but ``epoch`` is float. The ``raw_*`` columns appear only for a run
        with EMA that recorded them (as in :meth:`to_csv`).

        Returns
        -------
        pandas.DataFrame
            One row per record, in epoch order, with a default integer index.

        Raises
        ------
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.
        """
        try:
            import pandas as pd  # optional: only this method needs it
        except ImportError:
            raise ImportError('History.to_dataframe needs pandas; install it with '
                              'pip install "fmclassify[pandas]"') from None
        names = _columns(self.records)
        frame = pd.DataFrame([_values(r, names) for r in self.records], columns=names)
        return frame.astype({name: "float64" for name in names if name != "epoch"})

    def plot(self, **kwargs: Any) -> Any:
        """Loss and accuracy per epoch as a matplotlib Figure (see :func:`fmclassify.plotting`)."""
        from fmclassify.plotting import plot_history  # lazy: matplotlib only when plotting

        return plot_history(self, **kwargs)


def _inf_if_none(value: Any) -> Any:
    return float("inf") if value is None else value


def _verdict(data: Mapping[str, Any] | None) -> ConvergenceVerdict | None:
    """The verdict of a History dict's ``"convergence"`` entry."""
    if data is None:
        return None
    try:
        return ConvergenceVerdict(**data)
    except TypeError as exc:
        raise ValueError(f"malformed convergence verdict in history: {exc}") from None


def _verdict_of_metadata(metadata: Mapping[str, Any], trained: int) -> ConvergenceVerdict | None:
    """The verdict a History file written before the typed verdict kept in its metadata.

    A detector wrote ``converged_epoch`` when the rule was met, ``not_converged_within`` (the
    epochs trained) when it was not, and ``restored_best_epoch``; a run it watched diverge
    kept none of them unless it restored weights, so such a run reads back without a verdict.
    """
    if not any(metadata.get(key) is not None for key in VERDICT_METADATA_KEYS):
        return None
    within = metadata.get("not_converged_within")
    return ConvergenceVerdict(epoch=metadata.get("converged_epoch"),
                              epochs_watched=trained if within is None else int(within),
                              restored_best_epoch=metadata.get("restored_best_epoch"))


def _columns(records: list[EpochRecord]) -> list[str]:
    """The CSV and DataFrame columns: every field, the raw (EMA) ones only when recorded."""
    return [f.name for f in fields(EpochRecord)
            if f.name not in _RAW or any(getattr(r, f.name) is not None for r in records)]


def _values(record: EpochRecord, names: list[str]) -> list[Any]:
    """The values of one record in the columns ``names``."""
    return [getattr(record, name) for name in names]


_RAW = ("raw_test_loss", "raw_test_accuracy", "raw_val_loss", "raw_val_accuracy")


#: (field, heading, formatter) of the History table; val columns and lr only when present.
_TABLE_COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("epoch", "epoch", str),
    ("train_loss", "train loss", fixed(4)),
    ("test_loss", "test loss", fixed(4)),
    ("test_accuracy", "test acc (%)", fixed(2, scale=100)),
    ("val_loss", "val loss", fixed(4)),
    ("val_accuracy", "val acc (%)", fixed(2, scale=100)),
    ("raw_test_accuracy", "raw test acc (%)", fixed(2, scale=100)),
    ("raw_val_accuracy", "raw val acc (%)", fixed(2, scale=100)),
    ("lr", "lr", lambda v: "-" if v is None else f"{v:.4g}"),
    ("seconds", "seconds", fixed(1)),
]
_OPTIONAL = {"val_loss", "val_accuracy", "raw_test_accuracy", "raw_val_accuracy", "lr"}
_TABLE_EDGE = 10  # a longer run shows its first and last ten epochs
_SUMMARY_KEYS = ("model", "dataset", "lr", "epochs", "batch_size", "optimizer", "seed",
                 "parameters", "device", "step")
