"""Runs as plain data: the configuration of one run, its result, and the folder that keeps them.

A :class:`RunSpec` is the whole configuration of one run, names and numbers only, so it can be
hashed into a store key, written to JSON and sent to another process (:mod:`fmclassify.runs`
trains them). A :class:`RunResult` is what comes back: the spec, its History and an optional
gradient trace. A :class:`RunStore` keeps finished runs as JSON and unfinished ones'
checkpoints, keyed by the spec.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from fmclassify._checks import check_choice, check_int, check_lr, check_seed
from fmclassify._io import atomic_write_bytes, dumps_json, make_folder
from fmclassify.exceptions import ConfigError
from fmclassify.history import VERDICT_METADATA_KEYS, History, completed_reason
from fmclassify.recipes import Recipe
from fmclassify.registry import get_model_spec
from fmclassify.steps import STEPS

__all__ = ["RECIPE_FIELDS", "RunResult", "RunSpec", "RunStore"]

#: The recipe arguments of :class:`~fmclassify.Trainer` that a :class:`RunSpec` carries.
RECIPE_FIELDS = tuple(f.name for f in fields(Recipe))


@dataclass(frozen=True)
class RunSpec:
    """The full configuration of one run; two equal specs give the same numbers.

    Parameters
    ----------
    model : str
        Registered model name.
    lr : float
        Learning rate.
    epochs : int
        Epoch budget.
    seed : int
        Seeds the weights, the shuffling, augmentation and dropout.
    batch_size, shuffle, step
        As for :class:`~fmclassify.Trainer`.
    optimizer, momentum, nesterov, weight_decay, schedule, warmup_epochs, label_smoothing, \
clip_grad_norm, augment, val_split, precision, ema
        The recipe, as for :class:`~fmclassify.Trainer`, by name (no callables: a spec is
        stored and sent to other processes as data).
    detector : tuple of (str, value) pairs, optional
        Keyword arguments of a :class:`~fmclassify.ConvergenceDetector`.
    tracer : tuple of (str, value) pairs, optional
        Keyword arguments of a :class:`~fmclassify.GradientTracer`.
    data : str
        Identifies the data: name, sizes and checksum (:func:`data_id`).

    Raises
    ------
    ConfigError
        For any value the Trainer would refuse, checked when the spec is made.

    Examples
    --------
    >>> spec = RunSpec("base", lr=0.1, epochs=10, seed=1, momentum=0.9)
    >>> spec.label, spec.key.startswith("base-lr0.1-e10-s1-")
    ('base lr=0.1', True)
    """

    model: str
    lr: float
    epochs: int
    seed: int = 0
    batch_size: int = 64
    shuffle: bool = True
    step: str = "auto"
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str | None = None
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    augment: tuple[str, ...] | None = None
    val_split: float | int | None = None
    precision: str = "fp32"
    ema: float | None = None
    detector: tuple[tuple[str, Any], ...] | None = None
    tracer: tuple[tuple[str, Any], ...] | None = None
    data: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be a registered model name, got {self.model!r}")
        get_model_spec(self.model)  # an unknown name fails here, listing the close ones
        check_lr(self.lr)
        check_int("epochs", self.epochs)
        check_seed(self.seed)
        check_int("batch_size", self.batch_size)
        check_choice("step", self.step, STEPS)
        for name in ("optimizer", "schedule"):
            if callable(getattr(self, name)):
                raise ConfigError(f"{name} must be a name in a sweep (runs are stored and sent "
                                  "as data); train a callable with fmclassify.Trainer directly")
        if self.augment is not None:
            if isinstance(self.augment, str) or any(not isinstance(a, str) for a in self.augment):
                raise ConfigError("augment must be a tuple of names such as ('flip', 'crop') in "
                                  "a sweep; train callables with fmclassify.Trainer directly")
            object.__setattr__(self, "augment", tuple(self.augment))
        Recipe(**self.recipe_kwargs()).check_budget(self.epochs)

    def recipe_kwargs(self) -> dict[str, Any]:
        """The recipe arguments of the Trainer."""
        return {name: getattr(self, name) for name in RECIPE_FIELDS}

    @property
    def key(self) -> str:
        """A file-name-safe key: readable prefix plus a hash of the whole configuration."""
        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        return f"{self.model}-lr{self.lr:g}-e{self.epochs}-s{self.seed}-{digest}"

    @property
    def label(self) -> str:
        """A short label for legends: ``"base lr=0.1"``."""
        return f"{self.model} lr={self.lr:g}"


@dataclass
class RunResult:
    """One finished (or ended) run: its spec, History and optional gradient trace.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.run_many([RunSpec("base", lr=0.1, epochs=1)], data)[0]  # doctest: +SKIP
    >>> result.history.final_accuracy                                        # doctest: +SKIP
    """

    spec: RunSpec
    history: History
    gradients: dict[str, Any] | None = None

    def first_epochs(self, spec: RunSpec) -> RunResult | None:
        """The first epochs of this run as the run of ``spec``, when ``spec``'s run begins it.

        A run of E epochs at a constant learning rate is, epoch for epoch, the beginning of
        any longer run with the same configuration: nothing it computes depends on the
        budget, and a :class:`~fmclassify.ConvergenceDetector` only watches (it stops a run,
        it does not change one). So when this run has ``spec``'s configuration but for more
        epochs or a detector (Q1.2's convergence runs), and trained at least E epochs or
        diverged within them, its History up to epoch E is what training ``spec`` records,
        bit for bit but for the seconds of each epoch: status ``"completed"`` (or
        ``"diverged"``), the budget E in its metadata, the detector's verdict left out.

        Returns None for any other pair, and always for a ``spec`` with a schedule (its rate
        depends on the budget), a detector or a gradient tracer, or when this run's detector
        restored its best weights.

        Examples
        --------
        >>> long = RunResult(RunSpec("base", lr=0.1, epochs=20), History(status="completed"))
        >>> long.first_epochs(RunSpec("base", lr=0.1, epochs=10, schedule="cosine")) is None
        True
        """
        if not _may_begin_another(spec) or self.gradients is not None:
            return None
        if dict(self.spec.detector or ()).get("restore_best") or self.spec.epochs < spec.epochs:
            return None
        if replace(self.spec, epochs=spec.epochs, detector=None) != spec:
            return None
        h = self.history
        # the detector's verdict (History.convergence, left at None) and its metadata mirror
        metadata = {k: v for k, v in h.metadata.items() if k not in VERDICT_METADATA_KEYS}
        metadata["epochs"] = spec.epochs
        if h.status == "diverged" and h.diverged_epoch is not None and (
                h.diverged_epoch <= spec.epochs):
            return RunResult(spec, History(list(h.records), "diverged", metadata, h.reason,
                                           h.diverged_epoch))
        if h.status not in ("completed", "converged", "stopped", "diverged"):
            return None
        records = [r for r in h.records if r.epoch <= spec.epochs]
        if sum(r.epoch > 0 for r in records) < spec.epochs:
            return None
        return RunResult(spec, History(records, "completed", metadata,
                                       completed_reason(spec.epochs)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back."""
        return {"spec": asdict(self.spec), "history": self.history.to_dict(),
                "gradients": self.gradients}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild a result written by :meth:`to_dict`."""
        raw = dict(data["spec"])
        for k in ("detector", "tracer"):
            if raw.get(k) is not None:
                raw[k] = tuple((a, _freeze(b)) for a, b in raw[k])
        if raw.get("augment") is not None:
            raw["augment"] = tuple(raw["augment"])
        return cls(RunSpec(**raw), History.from_dict(data["history"]), data.get("gradients"))


def _read(path: Path) -> RunResult:
    with open(path, encoding="utf-8") as fh:
        return RunResult.from_dict(json.load(fh))


def _may_begin_another(spec: RunSpec) -> bool:
    """Whether ``spec``'s run may be the beginning of a longer run (see first_epochs)."""
    return spec.schedule is None and spec.detector is None and spec.tracer is None


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class RunStore:
    """A folder of finished runs (``KEY.json``) and unfinished ones' checkpoints (``KEY.ckpt``).

    Parameters
    ----------
    folder : path-like
        Created if missing; :class:`~fmclassify.OutputError` when it cannot be.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> store = RunStore("runs")                                             # doctest: +SKIP
    >>> fmc.lr_sweep(lrs=(0.1,), epochs=2, store=store)   # trains, then reuses  # doctest: +SKIP
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = make_folder(folder)  # OutputError when it cannot be: before any run

    def json_path(self, spec: RunSpec) -> Path:
        """Where the finished run of ``spec`` is stored."""
        return self.folder / f"{spec.key}.json"

    def checkpoint_path(self, spec: RunSpec) -> Path:
        """Where the unfinished run of ``spec`` keeps its checkpoint."""
        return self.folder / f"{spec.key}.ckpt"

    def load(self, spec: RunSpec) -> RunResult | None:
        """The stored result of ``spec``, or None when it has not finished.

        A run not stored under its own key may still be read from a longer stored run that
        it begins: see :meth:`load_prefix`.
        """
        path = self.json_path(spec)
        if path.exists():
            return _read(path)
        return self.load_prefix(spec)

    def load_prefix(self, spec: RunSpec) -> RunResult | None:
        """``spec``'s run read from the first epochs of a longer stored run, or None.

        Any stored run of ``spec``'s model, learning rate and seed with at least as many
        epochs is asked :meth:`RunResult.first_epochs`; the first that begins ``spec``'s run
        gives it. Such a result has no checkpoint of its own.
        """
        if not _may_begin_another(spec):
            return None
        head = glob.escape(f"{spec.model}-lr{spec.lr:g}-e")
        for path in sorted(self.folder.glob(f"{head}*-s{spec.seed}-*.json")):
            epochs = path.name[len(f"{spec.model}-lr{spec.lr:g}-e"):].split("-s", 1)[0]
            if not epochs.isdigit() or int(epochs) < spec.epochs:
                continue
            try:
                begun = _read(path).first_epochs(spec)
            except (ValueError, KeyError, TypeError, ConfigError):
                continue  # another run's file, unreadable or of an older format: not this run's
            if begun is not None:
                return begun
        return None

    def save(self, result: RunResult) -> Path:
        """Store a finished run atomically and drop its checkpoint.

        Raises
        ------
        OutputError
            When the file cannot be written (no space left, ...); the checkpoint is kept, so
            the run resumes from it next time.
        """
        path = atomic_write_bytes(self.json_path(result.spec),
                                  dumps_json(result.to_dict()).encode())
        self.checkpoint_path(result.spec).unlink(missing_ok=True)
        return path
