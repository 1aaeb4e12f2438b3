"""What a course's report measured, as its questions read it (:class:`Answers`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fmclassify.exceptions import ConfigError

if TYPE_CHECKING:
    import torch

    from fmclassify.course.budget import Budget
    from fmclassify.data import ImageDataset
    from fmclassify.experiments import ExperimentResult
    from fmclassify.parameters import ParameterReport
    from fmclassify.runs import RunResult

__all__ = ["Answers", "Keyed", "result_name"]


class Keyed(Protocol):
    """What answers are looked up by: a question (anything with its ``key``)."""

    key: str


def result_name(question: Keyed, part: str = "") -> str:
    """The name of a question's experiment in ``results.json``: ``KEY`` or ``KEY_PART``."""
    return f"{question.key}_{part}" if part else question.key


@dataclass
class Answers:
    """Everything the report measured, as each question's methods read it.

    Handed to every question's ``measure``, ``write`` and ``summary``.

    Parameters
    ----------
    budget : Budget
        The budget the runs trained on.
    seeds : int
        Runs per configuration.
    train, test : ImageDataset
        The data, after the budget's selection.
    results : dict of str to ExperimentResult
        Every question's experiments, by :func:`result_name`; read them with
        ``answers[question]`` or :meth:`part`.
    params : dict of str to ParameterReport
        The course's models, counted (:func:`~fmclassify.count_parameters`).
    published : object or None
        The course's published numbers (:attr:`Course.published`) when the runs are on the
        course's own data set, else None: a table shows them only beside like runs.
    """

    budget: Budget
    seeds: int
    train: ImageDataset
    test: ImageDataset
    results: dict[str, ExperimentResult]
    params: dict[str, ParameterReport]
    published: Any = None
    device: str = "auto"
    _kept: dict[str, Any] = field(default_factory=dict, repr=False)
    _rebuild: Callable[[RunResult], tuple[torch.nn.Module, bool]] | None = field(
        default=None, repr=False)
    _has_weights: Callable[[RunResult], bool] | None = field(default=None, repr=False)

    def __getitem__(self, question: Keyed) -> ExperimentResult:
        """The main experiment of ``question`` (the part its ``plan`` names ``""``)."""
        return self.part(question)

    def part(self, question: Keyed, part: str = "") -> ExperimentResult:
        """The experiment ``part`` of ``question``.

        Raises
        ------
        ConfigError
            When ``question`` planned no such part (or is not in this course).
        """
        name = result_name(question, part)
        if name not in self.results:
            raise ConfigError(f"{question!r} has no experiment {part!r} in this report; it "
                              f"planned {sorted(self.results)}: read one of those")
        return self.results[name]

    def has(self, question: Keyed, part: str = "") -> bool:
        """Whether ``question`` planned (and so trained) the experiment ``part``."""
        return result_name(question, part) in self.results

    def keep(self, question: Keyed, value: Any) -> None:
        """Keep what ``question.measure`` found, for its section (:meth:`kept`)."""
        self._kept[question.key] = value

    def kept(self, question: Keyed) -> Any:
        """What ``question.measure`` kept; None when it kept nothing."""
        return self._kept.get(question.key)

    def trained_model(self, run: RunResult) -> tuple[torch.nn.Module, bool]:
        """The trained network of ``run``, and whether it came from its kept checkpoint.

        A run of an :class:`Experiment` with ``keep_weights=True`` keeps its last
        checkpoint: the network is restored from it and no epoch trains. Any other run is
        trained again, in this process, the same way (so within float rounding of it).
        """
        if self._rebuild is None:
            raise ConfigError("trained_model is available inside a course's report only")
        return self._rebuild(run)

    def weights_kept(self, run: RunResult) -> bool:
        """Whether ``run`` kept its last checkpoint (:attr:`Experiment.keep_weights`)."""
        return self._has_weights is not None and self._has_weights(run)

    def budget_note(self) -> str:
        """How our runs differ from the course's, in one line (a note under each table)."""
        images = (f"the first {len(self.train):,} training images" if self.budget.train_size
                  else f"all {len(self.train):,} training images")
        theirs = getattr(self.published, "runs", None)
        return (f"Ours: mean ± standard deviation over {self.seeds} seed"
                f"{'s' if self.seeds > 1 else ''} on {images}"
                + (f"; the course: {theirs}" if theirs else "")
                + ". A seed that diverged gives no number to a mean.")
