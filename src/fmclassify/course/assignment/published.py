"""The assignment's published numbers, as data: what the course measured for Q1.1-Q1.7.

One run each, on Fashion-MNIST's test set, batch 64, plain SGD, the quickstart's loop. The
report prints each of them beside the number it measured for the same question, and says where
its own protocol differs from the course's. Accuracies are fractions, as everywhere in
fmclassify; the course printed them in percent.

Nothing else in the package states these numbers: a test, a docs page or a table that needs
one reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PUBLISHED",
    "Published",
    "PublishedConvergence",
    "PublishedModel",
    "PublishedSweep",
]


@dataclass(frozen=True)
class PublishedSweep:
    """Q1.1, one learning rate: the accuracy after the last epoch and the mean over epochs."""

    final_accuracy: float
    mean_accuracy: float


@dataclass(frozen=True)
class PublishedConvergence:
    """Q1.2, one learning rate: the epoch the course called converged, and its accuracy."""

    epochs: int
    accuracy: float


@dataclass(frozen=True)
class PublishedModel:
    """Q1.4, one model: its trainable parameters and the mean test accuracy over the epochs."""

    parameters: int
    mean_accuracy: float


@dataclass(frozen=True)
class Published:
    """Everything the course published for Q1.1-Q1.7, and how it measured it.

    Attributes
    ----------
    dataset : str
        The data set the numbers belong to; the report shows them only beside runs on it.
    epochs : int
        Epochs of every Q1.1 and Q1.4 run.
    models_lr : float
        The learning rate of Q1.4.
    sweep, convergence : dict
        Per learning rate (Q1.1, Q1.2).
    models : dict
        Per model name (Q1.4).
    convergence_rule, models_column : str
        What the course left unsaid or measured its own way, in the words the report prints.
    gradient_hint : str
        The course's hint for Q1.7, quoted.
    runs : str
        How the course measured every number, for the note under each table.
    """

    dataset: str
    epochs: int
    models_lr: float
    sweep: dict[float, PublishedSweep]
    convergence: dict[float, PublishedConvergence]
    models: dict[str, PublishedModel]
    convergence_rule: str
    models_column: str
    gradient_hint: str
    runs: str = "one run on all 60,000"


#: The course's numbers (Fashion-MNIST, test set, batch 64, plain SGD, one run each).
PUBLISHED = Published(
    dataset="fashion-mnist",
    epochs=10,
    models_lr=0.1,
    sweep={
        1.0: PublishedSweep(final_accuracy=0.110, mean_accuracy=0.2181),
        0.1: PublishedSweep(final_accuracy=0.872, mean_accuracy=0.8468),
        0.01: PublishedSweep(final_accuracy=0.834, mean_accuracy=0.8038),
        0.001: PublishedSweep(final_accuracy=0.705, mean_accuracy=0.6343),
    },
    convergence={
        1.0: PublishedConvergence(epochs=30, accuracy=0.1983),
        0.1: PublishedConvergence(epochs=204, accuracy=0.9018),
        0.01: PublishedConvergence(epochs=352, accuracy=0.8913),
        0.001: PublishedConvergence(epochs=597, accuracy=0.8873),
    },
    models={
        "base": PublishedModel(parameters=669_706, mean_accuracy=0.8468),
        "deeper": PublishedModel(parameters=1_475_338, mean_accuracy=0.8679),
        "wider": PublishedModel(parameters=1_557_330, mean_accuracy=0.8749),
    },
    convergence_rule=("the course does not state its convergence rule, so its epoch counts "
                      "and ours answer the question by different rules"),
    models_column=("the course's Q1.4 column is the mean test accuracy over its 10 epochs "
                   "(its \"Avg Accuracy\"), so ours beside it is the same mean"),
    gradient_hint="the mean of the gradients should be decreased",
)
