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

The instability rule
--------------------
A run that does not diverge can still thrash: its loss bounces around the loss of guessing and
its accuracy jumps between epochs, or the network dies and stays at chance.
:attr:`History.unstable` flags a trained run when either

* the mean training loss of some epoch exceeds, by more than 5 %, the larger of
  ``ln(num_classes)`` (the loss of guessing uniformly, 2.30 for ten classes) and the untrained
  network's test loss (epoch 0): the steps made the network clearly worse than no training, or
* its test accuracy fell by more than :data:`UNSTABLE_DROP` (0.10, ten percentage points)
  from one epoch to the next at least once.

A learning rate that is merely too small is not unstable: its loss starts near ``ln(C)`` and
only goes down. A healthy SGD run moves its test accuracy by a few points between epochs at
most (more on a small subset, hence the generous ten); a larger fall means the step size throws
the weights out of the basin they had found.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

__all__ = ["UNSTABLE_DROP", "EpochRecord", "History", "Status", "atomic_write_bytes"]

Status = Literal["running", "completed", "converged", "stopped", "diverged", "interrupted"]

#: Largest epoch-to-epoch fall in test accuracy (a fraction) that a stable run shows.
UNSTABLE_DROP = 0.10

_STATUSES = ("running", "completed", "converged", "stopped", "diverged", "interrupted")


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
            ``test_accuracy`` or ``seconds``.
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
        if any(loss > 1.05 * start for loss in losses):
            return True
        accs = self.column("test_accuracy")
        return any(prev - cur > UNSTABLE_DROP for prev, cur in itertools.pairwise(accs))

    def describe_status(self) -> str:
        """A short label for tables: "completed", "diverged at epoch 3", "unstable", ..."""
        if self.status == "diverged":
            return f"diverged at epoch {self.diverged_epoch}"
        label: str = self.status
        if self.status == "converged":
            label = f"converged at epoch {self.metadata.get('converged_epoch', len(self.trained))}"
        elif self.status == "completed" and self.metadata.get("not_converged_within"):
            label = f"not converged within {self.metadata['not_converged_within']}"
        if self.unstable:
            label += " (unstable)"
        return label

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "format": "fmclassify.history/1",
            "status": self.status,
            "reason": self.reason,
            "diverged_epoch": self.diverged_epoch,
            "metadata": self.metadata,
            "records": [asdict(r) for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Build a History from :meth:`to_dict` output.

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
            records = [EpochRecord(**r) for r in data.get("records", [])]
        except TypeError as exc:
            raise ValueError(f"malformed epoch record in history: {exc}") from None
        return cls(
            records=records,
            status=status,
            metadata=dict(data.get("metadata", {})),
            reason=str(data.get("reason", "")),
            diverged_epoch=data.get("diverged_epoch"),
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the History as JSON, atomically (a crash never leaves half a file).

        Returns
        -------
        pathlib.Path
            The path written.
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_json_default)
        return atomic_write_bytes(path, text.encode("utf-8"))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> History:
        """Read a History written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def plot(self, **kwargs: Any) -> Any:
        """Loss and accuracy per epoch as a matplotlib Figure (see :func:`fmclassify.plotting`)."""
        from fmclassify.plotting import plot_history  # lazy: matplotlib only when plotting

        return plot_history(self, **kwargs)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename.

    Readers see either the old file or the new one, never a partial write; a crash leaves at
    most a stray ``.tmp`` file beside the target.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is created if missing.
    data : bytes
        The whole new content.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
