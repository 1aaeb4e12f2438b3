"""Every table has a DataFrame: a sweep (per run, per run and epoch), the parameter report,
the interpretation's per-class table and the learning-rate finder's curve.

Each is checked for its columns, its rows (against the object's own numbers) and its dtypes;
and each names the ``pandas`` extra when pandas is missing.
"""

from __future__ import annotations

import sys

import pytest
import torch

import fmclassify as fmc
from fmclassify.exceptions import ConfigError
from fmclassify.history import EpochRecord, History
from fmclassify.interpret import Interpretation
from fmclassify.lr_find import LRFinderResult
from fmclassify.runs import RunResult, RunSpec

pd = pytest.importorskip("pandas", reason='DataFrames need pip install "fmclassify[pandas]"')


@pytest.fixture(scope="module")
def sweep():
    """lr 1e6 diverges in epoch 1; lr 0.05 trains: two seeds each."""
    from helpers import make_dataset

    data = make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")
    return fmc.lr_sweep("base", lrs=(1e6, 0.05), epochs=2, seeds=(0, 1), data=data,
                        batch_size=32)


CONFIG = ["run", "model", "lr", "epochs", "seed", "batch_size"]


def test_a_sweep_per_run_has_its_configuration_and_outcome_as_columns(sweep):
    frame = sweep.to_dataframe()
    assert len(frame) == 4 and list(frame.columns[:6]) == CONFIG
    assert list(frame["run"]) == [r.spec.key for r in sweep.runs]
    assert list(frame["lr"]) == [1e6, 1e6, 0.05, 0.05] and list(frame["seed"]) == [0, 1, 0, 1]
    assert {"momentum", "schedule", "augment", "ema", "val_split"} <= set(frame.columns)
    assert "detector" not in frame.columns and "tracer" not in frame.columns
    dtypes = frame.dtypes
    for name in ("lr", "momentum", "ema", "final_accuracy", "best_accuracy", "mean_accuracy",
                 "final_train_loss", "seconds_per_epoch"):
        assert dtypes[name] == "float64", name
    for name in ("epochs", "seed", "batch_size", "epochs_trained"):
        assert dtypes[name] == "int64", name
    for name in ("diverged_epoch", "converged_epoch", "parameters"):
        assert dtypes[name] == "Int64", name
    assert dtypes["unstable"] == "bool" and dtypes["nesterov"] == "bool"
    assert pd.api.types.is_string_dtype(dtypes["status"])
    diverged, trained = frame.iloc[0], frame.iloc[2]
    assert diverged["status"] == "diverged" and diverged["diverged_epoch"] == 1
    assert pd.isna(diverged["final_accuracy"])  # as in table(): no number from a blow-up
    history = sweep.runs[2].history
    assert trained["final_accuracy"] == history.final_accuracy
    assert trained["epochs_trained"] == 2 and pd.isna(trained["diverged_epoch"])


def test_a_sweep_per_run_groups_into_the_table(sweep):
    means = sweep.to_dataframe().groupby("lr", sort=False)["final_accuracy"].mean()
    for row in sweep.table():
        expected = row["final_accuracy"]
        assert (pd.isna(means[row["lr"]]) if expected is None
                else means[row["lr"]] == pytest.approx(expected))


def test_a_sweep_per_epoch_has_a_row_per_run_and_record(sweep):
    frame = sweep.to_dataframe(per="epoch")
    assert len(frame) == sum(len(r.history.records) for r in sweep.runs)
    assert list(frame.columns[:6]) == CONFIG
    assert {"epoch", "train_loss", "test_loss", "test_accuracy", "epoch_lr"} <= set(frame.columns)
    assert frame["epoch"].dtype == "int64" and frame["test_accuracy"].dtype == "float64"
    assert frame["lr"].dtype == "float64" and frame["seed"].dtype == "int64"
    run = sweep.runs[3]
    rows = frame[frame["run"] == run.spec.key]
    assert list(rows["epoch"]) == [r.epoch for r in run.history.records]
    assert list(rows["test_accuracy"]) == run.history.column("test_accuracy",
                                                             include_initial=True)
    assert set(rows["lr"]) == {0.05} and set(rows["seed"]) == {1}


def test_an_empty_result_and_a_recipe_give_typed_columns():
    h = History()
    h.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
    spec = RunSpec(model="base", lr=0.1, epochs=2, augment=("crop", "flip"), ema=0.99)
    row = fmc.ExperimentResult(kind="lr_sweep", runs=[RunResult(spec, h)]).to_dataframe()
    assert row["augment"][0] == "crop,flip" and row["ema"][0] == 0.99
    assert row["clip_grad_norm"].dtype == "float64"  # None: NaN, still a number column
    for per in ("run", "epoch"):
        empty = fmc.ExperimentResult(kind="lr_sweep").to_dataframe(per=per)
        assert len(empty) == 0 and list(empty.columns[:6]) == CONFIG


def test_per_must_be_run_or_epoch(sweep):
    with pytest.raises(ConfigError, match=r"unknown per 'runs'; did you mean 'run'\?"):
        sweep.to_dataframe(per="runs")


def test_the_parameter_report_has_a_row_per_layer():
    report = fmc.count_parameters(fmc.build_model("deeper"))
    frame = report.to_dataframe()
    assert list(frame.columns) == ["layer", "type", "formula", "analytic", "numel", "counted",
                                   "trainable", "requires_grad", "status"]
    assert list(frame["layer"]) == [r.name for r in report.rows]
    assert frame["counted"].sum() == report.total and frame["trainable"].sum() == report.trainable
    assert frame.loc[0, "type"] == "Conv2d" and frame.loc[0, "numel"] == 320
    assert frame.loc[0, "formula"] == report.rows[0].formula_text
    for name in ("numel", "counted", "trainable"):
        assert frame[name].dtype == "int64"
    assert frame["analytic"].dtype == "Int64"


def test_the_parameter_report_with_an_input_size_adds_shapes_and_mult_adds():
    report = fmc.count_parameters(fmc.build_model("base"), input_size=(1, 1, 28, 28))
    frame = report.to_dataframe()
    assert list(frame.columns[-2:]) == ["output_shape", "mult_adds"]
    assert frame["mult_adds"].dtype == "Int64"
    assert list(frame["output_shape"]) == [r.output_shape for r in report.rows]


def test_a_layer_without_a_rule_has_no_formula_and_no_analytic_count():
    class Weird(torch.nn.Module):  # holds a parameter no rule knows
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))

    holder = torch.nn.Sequential(Weird())
    row = fmc.count_parameters(holder).to_dataframe().iloc[0]
    assert row["status"] == "no rule" and row["numel"] == 3
    assert pd.isna(row["formula"]) and pd.isna(row["analytic"])


def test_the_interpretation_has_a_row_per_class():
    ds = fmc.ImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
                          torch.tensor([0, 1, 1, 2]), classes=("a", "b", "c"))
    logits = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    interp = Interpretation(logits, ds)
    frame = interp.to_dataframe()
    assert list(frame.columns) == ["class", "accuracy", "precision", "recall", "f1", "support"]
    assert list(frame["class"]) == ["a", "b", "c"] and list(frame["support"]) == [1, 2, 1]
    assert frame["recall"].tolist() == [1.0, 0.5, 1.0]
    assert frame["precision"].tolist() == [0.5, 1.0, 1.0]
    assert frame.to_dict("records") == interp.per_class()
    assert frame["support"].dtype == "int64"
    assert all(frame[c].dtype == "float64" for c in ("accuracy", "precision", "recall", "f1"))


def test_the_lr_finder_curve_has_a_row_per_step():
    result = LRFinderResult(lrs=[1e-3, 1e-2, 1e-1], losses=[2.3, 2.0, 2.6],
                            smoothed=[2.3, 2.15, 2.3], suggestions={"valley": 1e-2})
    frame = result.to_dataframe()
    assert list(frame.columns) == ["step", "lr", "loss", "smoothed"]
    assert list(frame["step"]) == [1, 2, 3] and list(frame["lr"]) == result.lrs
    assert list(frame["loss"]) == result.losses and list(frame["smoothed"]) == result.smoothed
    assert frame["step"].dtype == "int64"
    assert all(frame[c].dtype == "float64" for c in ("lr", "loss", "smoothed"))


@pytest.mark.parametrize("make", [
    lambda: fmc.ExperimentResult(kind="lr_sweep"),
    lambda: fmc.count_parameters(fmc.build_model("base")),
    lambda: LRFinderResult(lrs=[0.1], losses=[2.0], smoothed=[2.0], suggestions={}),
    lambda: Interpretation(
        torch.zeros(1, 2), fmc.ImageDataset(torch.zeros(1, 1, 2, 2, dtype=torch.uint8),
                                            torch.tensor([0]), classes=("a", "b"))),
], ids=["ExperimentResult", "ParameterReport", "LRFinderResult", "Interpretation"])
def test_without_pandas_the_error_names_the_extra(monkeypatch, make):
    table = make()
    monkeypatch.setitem(sys.modules, "pandas", None)
    name = type(table).__name__
    with pytest.raises(ImportError, match=rf'{name}.to_dataframe needs pandas; install it with '
                                          r'pip install "fmclassify\[pandas\]"'):
        table.to_dataframe()
