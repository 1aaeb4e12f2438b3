"""fmclassify: the small-image classification course as a library.

Train the course's models on Fashion-MNIST (or MNIST, KMNIST, CIFAR-10), detect convergence,
count parameters layer by layer with their formulas, trace gradients, and reproduce every table
and figure of the assignment.

Examples
--------
>>> import fmclassify as fmc
>>> model = fmc.build_model("base", seed=0)
>>> fmc.count_parameters(model).trainable
669706
"""

from __future__ import annotations

from fmclassify import _version
from fmclassify.activations import ActivationStats
from fmclassify.callbacks import Callback, CallbackBase, RunContext
from fmclassify.clusters import dask_executor
from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import ImageDataset, list_datasets, load_dataset
from fmclassify.exceptions import (
    CheckpointError,
    ConfigError,
    CorruptDataError,
    DataError,
    DataNotFoundError,
    FmClassifyError,
    OutputError,
    ParameterCountError,
    RunFailedError,
    UnknownDatasetError,
    UnknownModelError,
    WorkerLostError,
)
from fmclassify.executors import DataRef
from fmclassify.experiments import (
    ExperimentResult,
    GroupRow,
    RunOptions,
    compare_models,
    compare_models_specs,
    convergence_study,
    convergence_study_specs,
    gradient_study,
    gradient_study_specs,
    lr_sweep,
    lr_sweep_specs,
)
from fmclassify.gradients import GradientTracer
from fmclassify.history import ConvergenceVerdict, EpochRecord, History
from fmclassify.interpret import Interpretation, interpret
from fmclassify.loggers import CSVLogger, LivePlot, TensorBoardLogger
from fmclassify.lr_find import LRFinderResult, lr_find
from fmclassify.models import MLP, CourseCNN
from fmclassify.parameters import (
    ParameterComparison,
    ParameterReport,
    ParameterRow,
    compare_parameters,
    count_parameters,
    register_parameter_rule,
)
from fmclassify.recipes import Recipe
from fmclassify.registry import ModelSpec, build_model, list_models, register_model
from fmclassify.runs import RunResult, RunSpec, RunStore, run_many
from fmclassify.training import Trainer, TrainingInterrupted, fit_together

#: The version of fmclassify, a PEP 440 string such as ``"0.1.0"`` (it lives in
#: ``fmclassify._version``, which imports nothing, so any module can read it without a cycle).
__version__ = _version.__version__

__all__ = [
    "MLP",
    "ActivationStats",
    "CSVLogger",
    "Callback",
    "CallbackBase",
    "CheckpointError",
    "ConfigError",
    "ConvergenceDetector",
    "ConvergenceVerdict",
    "CorruptDataError",
    "CourseCNN",
    "DataError",
    "DataNotFoundError",
    "DataRef",
    "EpochRecord",
    "ExperimentResult",
    "FmClassifyError",
    "GradientTracer",
    "GroupRow",
    "History",
    "ImageDataset",
    "Interpretation",
    "LRFinderResult",
    "LivePlot",
    "ModelSpec",
    "OutputError",
    "ParameterComparison",
    "ParameterCountError",
    "ParameterReport",
    "ParameterRow",
    "Recipe",
    "RunContext",
    "RunFailedError",
    "RunOptions",
    "RunResult",
    "RunSpec",
    "RunStore",
    "TensorBoardLogger",
    "Trainer",
    "TrainingInterrupted",
    "UnknownDatasetError",
    "UnknownModelError",
    "WorkerLostError",
    "__version__",
    "build_model",
    "compare_models",
    "compare_models_specs",
    "compare_parameters",
    "convergence_study",
    "convergence_study_specs",
    "count_parameters",
    "dask_executor",
    "fit_together",
    "gradient_study",
    "gradient_study_specs",
    "interpret",
    "list_datasets",
    "list_models",
    "load_dataset",
    "lr_find",
    "lr_sweep",
    "lr_sweep_specs",
    "register_model",
    "register_parameter_rule",
    "run_many",
]
