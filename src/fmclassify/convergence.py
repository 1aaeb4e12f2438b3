r"""ConvergenceDetector: decide when a metric has stopped changing.

The course (Q1.2) asks for the epoch at which the network converged: "accuracy not changed, or the
change is smaller than a threshold". :class:`ConvergenceDetector` makes that rule exact.

The rule
--------
Feed the detector one value of the metric per epoch, :math:`v_1, v_2, \dots`.

1. **Smoothing.** With ``window = w`` the smoothed metric is the moving average of the last
   :math:`w` values, :math:`s_t = \frac{1}{w}\sum_{i=t-w+1}^{t} v_i`, defined only once
   :math:`w` values exist. ``window=1`` (the default) is the raw metric.
2. **Reference.** ``reference="previous"`` (the default) compares :math:`s_t` with the previous
   smoothed value :math:`s_{t-1}`. ``reference="best"`` compares it with the best smoothed value
   so far (highest for accuracy, lowest for a loss), where the best only moves when the metric
   improves on it by at least the threshold, as in Ignite's and Lightning's ``EarlyStopping``.
3. **Change.** :math:`c_t = s_t - s_{\mathrm{ref}}`. In ``mode="abs"`` the size of the change is
   :math:`|c_t|`; in ``mode="rel"`` it is :math:`|c_t| / \max(|s_{\mathrm{ref}}|, 10^{-12})`.
   With ``reference="best"`` only an *improvement* counts as a change: an epoch that is worse
   than the best is "not changed" (it brings no progress).
4. **Patience.** The epoch is *quiet* when the size of the change is below ``threshold``. The
   metric has converged at the first epoch :math:`t \ge` ``min_epochs`` that ends a run of
   ``patience`` consecutive quiet epochs. ``patience=1`` means one quiet epoch is enough.

Thresholds are in the metric's own units: accuracy is a fraction, so ``threshold=0.001`` is 0.1
percentage point; for a loss it is 0.001 nats of cross-entropy.

A slowly creeping metric
------------------------
Accuracy that gains 0.05 percentage point per epoch, for ever, is a deliberate fork in the rule:

* ``reference="previous"`` calls it **converged**: every per-epoch change (0.0005) is under a
  0.001 threshold. That is the course's literal rule ("the change is smaller than a threshold").
* ``reference="best"`` does **not**: the gains add up against a fixed reference, and every
  second epoch the metric is 0.001 above it, which resets the patience count.

Pick ``"best"`` to ask "has the run stopped making progress?"; pick ``"previous"`` to ask "has
the metric stopped moving from one epoch to the next?".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from fmclassify._checks import check_choice, check_int, check_positive
from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.history import ConvergenceVerdict

if TYPE_CHECKING:
    import torch

    from fmclassify.history import EpochRecord, History

__all__ = ["ConvergenceDetector", "Goal", "Metric", "Mode", "Reference", "watched_value"]

Metric = Literal["test_accuracy", "test_loss", "train_loss", "val_accuracy", "val_loss"]
Mode = Literal["abs", "rel"]
Reference = Literal["previous", "best"]
Goal = Literal["max", "min"]

_METRICS = ("test_accuracy", "test_loss", "train_loss", "val_accuracy", "val_loss")
_MODES = ("abs", "rel")
_REFERENCES = ("previous", "best")
_GOALS = ("max", "min")
_EPS = 1e-12  # floor of |reference| in "rel" mode, so a reference of 0 never divides by zero
_STATE_KEYS = (
    "window_values",
    "values_seen",
    "last_epoch",
    "previous",
    "reference_value",
    "quiet_streak",
    "converged_epoch",
    "diverged_epoch",
    "best_value",
    "best_epoch",
    "final_epochs",
)


class ConvergenceDetector(CallbackBase):
    """Decide when a metric has stopped changing; optionally stop the run there.

    A pure state machine (:meth:`update` on plain numbers, no model needed) and a thin
    :class:`~fmclassify.callbacks.CallbackBase` adapter for :class:`~fmclassify.Trainer`. The
    rule (smoothing, reference, change, patience) is stated in the module documentation.

    Parameters
    ----------
    threshold : float, default 0.001
        An epoch is quiet when the size of the change is below this. In the metric's units for
        ``mode="abs"``: accuracy is a fraction, so ``0.001`` is 0.1 percentage point. A fraction
        of the reference for ``mode="rel"`` (``0.001`` is 0.1 %).
    patience : int, default 3
        Consecutive quiet epochs needed; ``1`` means one quiet epoch is enough.
    metric : str, default "test_accuracy"
        One of ``"test_accuracy"``, ``"test_loss"``, ``"train_loss"``, ``"val_accuracy"``,
        ``"val_loss"``.
        The :class:`~fmclassify.history.EpochRecord` field watched by the callback adapter.
        In a run that holds out a validation split (``Trainer(val_split=...)``), the test
        metrics are read from the validation split instead, so the test set never picks an
        epoch (the course's own protocol, without a split, watches the test set).
    mode : {"abs", "rel"}, default "abs"
        Compare the absolute change, or the change relative to the reference value.
    window : int, default 1
        Epochs in the moving average that smooths the metric; ``1`` uses the raw values.
    min_epochs : int, default 1
        No convergence is declared before this epoch.
    stop : bool, default True
        As a callback, ask the trainer to end the run (status ``"converged"``) once converged.
    reference : {"previous", "best"}, default "previous"
        What the change is measured from: the previous epoch's smoothed value, or the best
        smoothed value so far (see "A slowly creeping metric" in the module documentation).
    goal : {"max", "min"} or None, default None
        Which direction is better, used by ``reference="best"`` and ``restore_best``. ``None``
        infers it from ``metric``: ``"max"`` for accuracy, ``"min"`` for a loss.
    restore_best : bool, default False
        As a callback, keep a CPU copy of the weights of the epoch with the best raw metric
        (copied only when it improves) and load them into the model when the run ends.

    Attributes
    ----------
    converged : bool
        Whether the criterion was met (never True for a run that diverged).
    converged_epoch : int or None
        The epoch at which the criterion was first met. The epoch the run stopped at is
        ``history.epochs_trained``; they differ when ``stop=False``.
    reason : str
        A readable sentence: why it converged, "not converged within N epochs", or that the
        run diverged.
    diverged_epoch : int or None
        The epoch at which the metric became non-finite, or the run's ``diverged_epoch``.
    best_value, best_epoch : float or None, int or None
        The best raw value of the metric (in the ``goal`` direction) and its epoch.
    restored_epoch : int or None
        The epoch whose weights ``restore_best`` loaded at the end of the run.

    Raises
    ------
    ConfigError
        If an argument is out of range; the message names the argument and the value.

    Examples
    --------
    Accuracy as fractions; a threshold of 0.001 is 0.1 percentage point:

    >>> det = ConvergenceDetector(threshold=0.001, patience=2)
    >>> [det.update(a) for a in [0.70, 0.80, 0.8005, 0.8020, 0.8025, 0.8028]]
    [False, False, False, False, False, True]
    >>> det.converged_epoch
    6
    >>> det.reason.split(":")[0]
    'converged at epoch 6'
    """

    needs_gradients = False

    def __init__(
        self,
        threshold: float = 0.001,
        patience: int = 3,
        metric: Metric = "test_accuracy",
        mode: Mode = "abs",
        window: int = 1,
        min_epochs: int = 1,
        stop: bool = True,
        *,
        reference: Reference = "previous",
        goal: Goal | None = None,
        restore_best: bool = False,
    ) -> None:
        self.threshold = _check_threshold(threshold)
        self.patience = check_int("patience", patience)
        self.metric = cast("Metric", check_choice("metric", metric, _METRICS))
        self.mode = cast("Mode", check_choice("mode", mode, _MODES))
        self.window = check_int("window", window)
        self.min_epochs = check_int("min_epochs", min_epochs)
        self.reference = cast("Reference", check_choice("reference", reference, _REFERENCES))
        if goal is None:
            goal = "max" if "accuracy" in self.metric else "min"
        self.goal = cast("Goal", check_choice("goal", goal, _GOALS))
        self.stop = bool(stop)
        self.restore_best = bool(restore_best)
        self._best_state: dict[str, torch.Tensor] | None = None
        self.restored_epoch: int | None = None
        self.reset()

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so ``ConvergenceDetector(**d.config())`` is a fresh twin."""
        return {"threshold": self.threshold, "patience": self.patience, "metric": self.metric,
                "mode": self.mode, "window": self.window, "min_epochs": self.min_epochs,
                "stop": self.stop, "reference": self.reference, "goal": self.goal,
                "restore_best": self.restore_best}

    # -- the pure state machine ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget every value seen; the configuration is kept."""
        self._window: deque[float] = deque(maxlen=self.window)
        self._values_seen = 0
        self._last_epoch = 0
        self._previous: float | None = None  # last smoothed value
        self._reference: float | None = None  # best smoothed value, for reference="best"
        self._streak = 0
        self.converged_epoch: int | None = None
        self.diverged_epoch: int | None = None
        self.best_value: float | None = None  # best raw value, for restore_best
        self.best_epoch: int | None = None
        self._final_epochs: int | None = None
        self._nonfinite = False  # diverged_epoch came from a NaN/inf value, not the History
        self._best_state = None
        self.restored_epoch = None

    def update(self, value: float, epoch: int | None = None) -> bool:
        """Take one epoch's value of the metric; return whether the metric has converged.

        Parameters
        ----------
        value : float
            The metric after the epoch (accuracy as a fraction). A NaN or infinite value marks
            the run as diverged: the detector then never reports convergence.
        epoch : int, optional
            The epoch number; by default the count of values seen so far (1, 2, ...).

        Returns
        -------
        bool
            True once the criterion has been met (and from then on), False otherwise.
        """
        self._values_seen += 1
        epoch = self._values_seen if epoch is None else int(epoch)
        self._last_epoch = epoch
        if self.diverged_epoch is not None:
            return False
        value = float(value)
        if not math.isfinite(value):
            self.diverged_epoch, self._nonfinite = epoch, True
            self.converged_epoch = None
            return False
        if self.best_value is None or self._better(value, self.best_value):
            self.best_value, self.best_epoch = value, epoch
        self._window.append(value)
        if len(self._window) < self.window:
            return self.converged
        smoothed = sum(self._window) / self.window
        self._streak = self._streak + 1 if self._is_quiet(smoothed) else 0
        self._previous = smoothed
        ready = self._streak >= self.patience and epoch >= self.min_epochs
        if self.converged_epoch is None and ready:
            self.converged_epoch = epoch
        return self.converged

    def _is_quiet(self, smoothed: float) -> bool:
        """Whether ``smoothed`` is within the threshold of the reference; moves the reference."""
        if self.reference == "previous":
            ref = self._previous
            return ref is not None and self._size(smoothed - ref, ref) < self.threshold
        ref = self._reference
        if ref is None:
            self._reference = smoothed
            return False
        gain = smoothed - ref if self.goal == "max" else ref - smoothed
        if gain > 0 and self._size(gain, ref) >= self.threshold:
            self._reference = smoothed  # a real improvement: the best moves, the count restarts
            return False
        return True

    def _size(self, change: float, ref: float) -> float:
        if self.mode == "abs":
            return abs(change)
        return abs(change) / max(abs(ref), _EPS)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.goal == "max" else value < than

    @property
    def converged(self) -> bool:
        """Whether the criterion has been met (never True once the run diverged)."""
        return self.converged_epoch is not None and self.diverged_epoch is None

    @property
    def verdict(self) -> ConvergenceVerdict:
        """The verdict so far, as a run's History keeps it.

        The callback records it as :attr:`History.convergence
        <fmclassify.History.convergence>`: the epoch of convergence (None when not converged),
        the epochs watched, :attr:`reason` and the epoch whose weights were restored.

        Examples
        --------
        >>> det = ConvergenceDetector(threshold=0.01, patience=1)
        >>> [det.update(a) for a in [0.5, 0.8, 0.805]]
        [False, False, True]
        >>> det.verdict.epoch, det.verdict.epochs_watched
        (3, 3)
        """
        watched = self._final_epochs if self._final_epochs is not None else self._last_epoch
        return ConvergenceVerdict(epoch=self.converged_epoch if self.converged else None,
                                  epochs_watched=watched, reason=self.reason,
                                  restored_best_epoch=self.restored_epoch)

    @property
    def epochs_seen(self) -> int:
        """The last epoch given to :meth:`update` (the count of values when none was given)."""
        return self._last_epoch

    @property
    def reason(self) -> str:
        """A readable sentence: converged and why, not converged within N epochs, or diverged."""
        if self.diverged_epoch is not None:
            what = f"{self.metric} became non-finite" if self._nonfinite else "the run diverged"
            return (
                f"{what} at epoch {self.diverged_epoch}; a diverged run never counts as converged"
            )
        subject, predicate = self._describe_rule()
        if self.converged_epoch is not None:
            return f"converged at epoch {self.converged_epoch}: {subject} {predicate}"
        epochs = self._final_epochs if self._final_epochs is not None else self._last_epoch
        return f"not converged within {epochs} epochs: {subject} never {predicate}"

    def _describe_rule(self) -> tuple[str, str]:
        """Return the rule as a subject ("test_accuracy") and a predicate ("changed by ...")."""
        subject: str = self.metric
        if self.window > 1:
            subject = f"the {self.window}-epoch moving average of {self.metric}"
        unit = "" if self.mode == "abs" else " (relative)"
        ref = "the previous epoch" if self.reference == "previous" else "the best so far"
        epochs = "one epoch" if self.patience == 1 else f"{self.patience} consecutive epochs"
        return subject, f"changed by less than {self.threshold:g}{unit} from {ref} for {epochs}"

    def state_dict(self) -> dict[str, Any]:
        """Return the state of the machine (what a checkpoint saves).

        Plain numbers and lists, JSON-ready, except ``"best_state"``: with
        ``restore_best=True`` it holds the CPU tensors of the best epoch's weights (or None).
        """
        state: dict[str, Any] = {
            "window_values": list(self._window),
            "values_seen": self._values_seen,
            "last_epoch": self._last_epoch,
            "previous": self._previous,
            "reference_value": self._reference,
            "quiet_streak": self._streak,
            "converged_epoch": self.converged_epoch,
            "diverged_epoch": self.diverged_epoch,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "final_epochs": self._final_epochs,
            "nonfinite": self._nonfinite,
        }
        if self.restore_best:
            state["best_state"] = self._best_state
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`.

        Raises
        ------
        ConfigError
            If keys are missing or the window holds more values than ``window``.
        """
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ConfigError(
                f"ConvergenceDetector state is missing {', '.join(missing)}; "
                "pass a dict written by ConvergenceDetector.state_dict()"
            )
        values = [float(v) for v in state["window_values"]]
        if len(values) > self.window:
            raise ConfigError(
                f"ConvergenceDetector state holds {len(values)} window values but window="
                f"{self.window}; load it into a detector built with the same window"
            )
        self._window = deque(values, maxlen=self.window)
        self._values_seen = int(state["values_seen"])
        self._last_epoch = int(state["last_epoch"])
        self._previous = state["previous"]
        self._reference = state["reference_value"]
        self._streak = int(state["quiet_streak"])
        self.converged_epoch = state["converged_epoch"]
        self.diverged_epoch = state["diverged_epoch"]
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self._final_epochs = state["final_epochs"]
        self._nonfinite = bool(state.get("nonfinite", False))
        if self.restore_best:
            self._best_state = state.get("best_state")

    # -- the callback adapter -----------------------------------------------------------------

    def on_fit_start(self, run: RunContext) -> None:
        """Start fresh, unless the run resumes from a checkpoint.

        A resumed run (its History already holds trained epochs) keeps the state the trainer
        restored with :meth:`load_state_dict`; any other fit is judged on its own epochs.
        """
        if run.history.epochs_trained == 0:
            self.reset()

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Feed the record's metric to :meth:`update`; request a stop once converged."""
        value = watched_value(record, self.metric)
        if value is None:  # train_loss of an untrained epoch 0; the trainer does not pass it
            return
        was_best_epoch = self.best_epoch
        converged = self.update(value, record.epoch)
        if self.restore_best and self.best_epoch != was_best_epoch:
            self._best_state = _cpu_copy(run.model)
        if not converged:
            return
        run.history.record_convergence(self.verdict)  # callbacks after this one may read it
        if self.stop:
            run.request_stop(self.reason, status="converged")

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Restore the best weights if asked; record the verdict (``history.convergence``)."""
        self._final_epochs = history.epochs_trained
        if history.status == "diverged":
            self.diverged_epoch = history.diverged_epoch or self._last_epoch + 1
            self._nonfinite = False
            self.converged_epoch = None
        if self.restore_best and self._best_state is not None:
            run.model.load_state_dict(self._best_state)
            self.restored_epoch = self.best_epoch
        history.record_convergence(self.verdict)


def watched_value(record: EpochRecord, metric: str) -> float | None:
    """The value of ``metric`` in ``record``: a test metric from the validation split if any.

    Examples
    --------
    >>> from fmclassify.history import EpochRecord
    >>> r = EpochRecord(3, 0.5, 0.4, 0.86, 1.0, val_loss=0.45, val_accuracy=0.84)
    >>> watched_value(r, "test_accuracy"), watched_value(r, "train_loss")
    (0.84, 0.5)
    """
    if metric.startswith("test_"):
        held_out = getattr(record, "val_" + metric[len("test_"):])
        if held_out is not None:
            return float(held_out)
    value = getattr(record, metric)
    return None if value is None else float(value)


def _cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copy the model's state_dict to the CPU, detached (the weights keep changing)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _check_threshold(value: object) -> float:
    """``check_positive``, with what the number means when it is wrong."""
    try:
        return check_positive("threshold", value)
    except ConfigError as err:
        hint = "for accuracy it is a fraction (0.001 = 0.1 percentage point)"
        raise ConfigError(f"{err}; {hint}") from None
