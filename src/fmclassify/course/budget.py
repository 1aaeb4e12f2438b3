"""How much training the assignment report spends on each question (private).

:data:`BUDGETS` is the one definition of the ``quick`` and ``full`` budgets: the report
(:mod:`fmclassify.report` re-exports it) and the tutorial gallery read the same numbers, so a
page and the report trained on the same budget show the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fmclassify._checks import check_device, check_int, check_nonnegative
from fmclassify.exceptions import ConfigError

if TYPE_CHECKING:
    from fmclassify.data import ImageDataset

__all__ = ["BUDGETS", "RECIPE", "RECIPE_LR", "Budget"]


@dataclass(frozen=True)
class Budget:
    """How much training the report spends on each question.

    Parameters
    ----------
    name : str
        ``"quick"``, ``"full"``, or a name of your own.
    train_size : int or None
        Training images used (the first N of the training set); None for all of them. The
        test set is always used whole.
    epochs : int
        Epochs per run of Q1.1 and Q1.4.
    max_epochs : int, optional
        The cap of a convergence question (Q1.2's); by default (0) ``epochs``, for a course
        that has none.
    gradient_steps : int, default 100
        Steps traced for Q1.7.
    threshold, patience, window : float, int, int, default 0.001, 3, 3
        Q1.2's convergence rule (:class:`~fmclassify.ConvergenceDetector`): converged at the
        first epoch that ends ``patience`` epochs in a row in which the ``window``-epoch
        moving average of the test accuracy moved by less than ``threshold`` (a fraction:
        0.001 is 0.1 percentage point) from the previous epoch's average.
    recipe_epochs : int, default 15
        Epochs of the modern recipe's runs in the last section; 0 trains none (the section
        then says so), e.g. to time the course's own protocol alone.

    Examples
    --------
    >>> from fmclassify.report import BUDGETS
    >>> BUDGETS["full"].epochs, BUDGETS["full"].train_size
    (10, None)
    """

    name: str
    train_size: int | None
    epochs: int
    max_epochs: int = 0  # 0: the same as epochs (set when made)
    gradient_steps: int = 100
    threshold: float = 0.001
    patience: int = 3
    window: int = 3
    recipe_epochs: int = 15

    def __post_init__(self) -> None:
        if self.max_epochs == 0:  # not given: no convergence question caps anything
            object.__setattr__(self, "max_epochs", self.epochs)
        if self.train_size is not None:
            check_int("train_size", self.train_size)
        for name in ("epochs", "max_epochs", "gradient_steps", "patience", "window"):
            check_int(name, getattr(self, name))
        check_int("recipe_epochs", self.recipe_epochs, minimum=0)
        check_nonnegative("threshold", self.threshold)

    @staticmethod
    def named(name: str, device: str = "auto") -> Budget:
        """The budget of :data:`BUDGETS` called ``name``; ``"auto"`` picks one for ``device``.

        ``"auto"`` is ``full`` where the runs train on a GPU (the course's protocol takes
        about a minute there) and ``quick`` on the CPU.

        Raises
        ------
        ConfigError
            For a name that is neither ``"auto"`` nor a key of :data:`BUDGETS`.

        Examples
        --------
        >>> Budget.named("quick").train_size
        10000
        >>> Budget.named("auto", device="cpu").name
        'quick'
        """
        if name == "auto":
            name = "full" if check_device(device).type == "cuda" else "quick"
        if name not in BUDGETS:
            raise ConfigError(f"unknown budget {name!r}; choose auto, {' or '.join(BUDGETS)}")
        return BUDGETS[name]

    def select(self, train: ImageDataset) -> ImageDataset:
        """The training images this budget uses: the first ``train_size`` of ``train``."""
        if self.train_size is not None and self.train_size < len(train):
            return train.subset(self.train_size)
        return train

    def detector_config(self) -> dict[str, Any]:
        """Keyword arguments of Q1.2's :class:`~fmclassify.ConvergenceDetector`."""
        return {"threshold": self.threshold, "patience": self.patience, "window": self.window}

    def describe(self) -> str:
        """One sentence for the report's header."""
        images = "all training images" if self.train_size is None else (
            f"the first {self.train_size:,} training images")
        return (f"budget '{self.name}': {images}, {self.epochs} epochs per run for Q1.1 and "
                f"Q1.4, convergence runs capped at {self.max_epochs} epochs, "
                f"{self.gradient_steps} traced steps for Q1.7, "
                + (f"{self.recipe_epochs} epochs for the modern recipe" if self.recipe_epochs
                   else "no run of the modern recipe"))

    def rule(self) -> str:
        """Q1.2's convergence rule in words, with the threshold in percentage points."""
        average = ("the test accuracy" if self.window == 1 else
                   f"the {self.window}-epoch moving average of the test accuracy")
        times = "one epoch" if self.patience == 1 else f"{self.patience} epochs in a row"
        return (f"converged at the first epoch that ends {times} in which {average} moved "
                f"by less than {100 * self.threshold:g} points from the epoch before")


#: The two budgets. ``quick`` (the default) answers every question in about five minutes on
#: two CPU cores: a sixth of the training images, 5 epochs, and a looser convergence rule
#: (0.5 points) that such a subset meets within 30 epochs; ``full`` is the course's protocol:
#: all images, 10 epochs, convergence up to 600 epochs at 0.1 points.
BUDGETS: dict[str, Budget] = {
    "quick": Budget("quick", train_size=10_000, epochs=5, max_epochs=30, threshold=0.005,
                    patience=2, window=3, recipe_epochs=5),
    "full": Budget("full", train_size=None, epochs=10, max_epochs=600, recipe_epochs=15),
}

#: The modern recipe of the last section, as keyword arguments of the experiments (and of
#: :class:`~fmclassify.Trainer`), with :data:`RECIPE_LR` as its learning rate: the one the
#: gallery's "Training recipes" page explains and ``benchmarks/recipes.py`` trains on all of
#: Fashion-MNIST. Flips only: random crops and random erasing each cost the course's CNN
#: accuracy there (``benchmarks/README.md``).
RECIPE: dict[str, Any] = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                          "schedule": "one-cycle", "label_smoothing": 0.1,
                          "augment": ("flip",), "batch_size": 128}
RECIPE_LR = 0.05
