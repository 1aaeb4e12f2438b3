"""ExperimentResult.rows() and table(): typed rows whose dicts are exactly the old table's.

The golden file ``golden/summary_tables.json`` holds, for each kind of experiment (an lr sweep,
a convergence study, a model comparison, a gradient study; one seed and two; diverged, failed
and unconverged runs), the runs as the code before the typed rows wrote them (History JSON
with the convergence verdict in its metadata) and the table that code made of them. Reading
those runs back and summarising them must give the same table, key for key, in the same order,
with the same values and types (compared as JSON text, so 10 and 10.0 differ).

Regenerate it with ``FMCLASSIFY_REGEN_GOLDEN=1 pytest tests/test_summary_rows.py``: it trains
the tiny runs again with the current code (the old-format runs are then lost; the History
tests keep an old-format file of their own).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fmclassify as fmc
from fmclassify.history import History
from fmclassify.runs import RunResult, RunSpec
from helpers import make_dataset

GOLDEN = Path(__file__).parent / "golden" / "summary_tables.json"
REGEN = os.environ.get("FMCLASSIFY_REGEN_GOLDEN") == "1"


def _failed(model: str, lr: float, epochs: int, seed: int) -> RunResult:
    """A run that failed on a worker, shaped as fmclassify.runs records one."""
    spec = RunSpec(model, lr, epochs, seed, batch_size=32)
    return RunResult(spec, History(status="failed", reason="RuntimeError: boom (on h, pid 1)",
                                   metadata={"model": model, "lr": lr, "epochs": epochs,
                                             "seed": seed, "batch_size": 32, "host": "h"}))


def make_cases() -> dict[str, fmc.ExperimentResult]:
    """Tiny experiments of every kind, trained on synthetic data (a few seconds)."""
    data = make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")
    kw = {"data": data, "batch_size": 32, "workers": 1}
    cases: dict[str, fmc.ExperimentResult] = {}
    for n in (1, 2):
        seeds = tuple(range(n))
        # lr 20: unstable in seed 0, diverged in seed 1
        sweep = fmc.lr_sweep("base", lrs=(1e6, 20, 0.5, 0.05), epochs=3, seeds=seeds, **kw)
        sweep.runs.append(_failed("base", 0.01, 3, 0))  # a group of its own: only a failure
        if n == 2:
            sweep.runs.append(_failed("base", 0.05, 3, 7))  # two seeds and a failure
        cases[f"lr_sweep_{n}_seeds"] = sweep
        detector = fmc.ConvergenceDetector(threshold=0.05, patience=1)
        cases[f"convergence_study_{n}_seeds"] = fmc.convergence_study(
            "base", lrs=(1e6, 20, 0.5, 1e-5), max_epochs=4, detector=detector, seeds=seeds,
            **kw)
        never = fmc.ConvergenceDetector(threshold=1e-9, patience=2, metric="train_loss",
                                        restore_best=True)
        cases[f"convergence_unconverged_{n}_seeds"] = fmc.convergence_study(
            "base", lrs=(0.5,), max_epochs=3, detector=never, seeds=seeds, **kw)
        cases[f"compare_models_{n}_seeds"] = fmc.compare_models(
            ("base", "wider"), lr=0.1, epochs=2, seeds=seeds, **kw)
        cases[f"gradient_study_{n}_seeds"] = fmc.gradient_study(
            "base", lrs=(1e6, 0.1), steps=5, seeds=seeds, **kw)
    # one group, two seeds: one converged, the other not within its budget
    converged = fmc.convergence_study("base", lrs=(0.5,), max_epochs=3, detector=detector,
                                      seeds=(0,), **kw)
    unconverged = fmc.convergence_study("base", lrs=(0.5,), max_epochs=3, detector=never,
                                        seeds=(1,), **kw)
    cases["convergence_mixed"] = fmc.ExperimentResult(
        "convergence_study", converged.runs + unconverged.runs, group_by="lr")
    cases["compare_models_diverged"] = fmc.compare_models(("base", "wider"), lr=1e6, epochs=2,
                                                          **kw)
    return cases


def write_golden() -> None:
    cases = {name: {"kind": r.kind, "group_by": r.group_by,
                    "runs": [run.to_dict() for run in r.runs], "table": r.table()}
             for name, r in make_cases().items()}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(cases, indent=1, allow_nan=False) + "\n", encoding="utf-8")


if REGEN:
    write_golden()
GOLDEN_CASES = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}


def as_json(value: object) -> str:
    """JSON text that tells 10 from 10.0 and keeps the key order."""
    return json.dumps(value, allow_nan=False)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_table_is_the_golden_table(name: str) -> None:
    case = GOLDEN_CASES[name]
    result = fmc.ExperimentResult(case["kind"], [RunResult.from_dict(r) for r in case["runs"]],
                                  group_by=case["group_by"])
    assert as_json(result.table()) == as_json(case["table"])
    assert [r.to_dict() for r in result.rows()] == result.table()


def result_of(name: str) -> fmc.ExperimentResult:
    case = GOLDEN_CASES[name]
    return fmc.ExperimentResult(case["kind"], [RunResult.from_dict(r) for r in case["runs"]],
                                group_by=case["group_by"])


def test_rows_read_as_attributes_under_the_tables_names() -> None:
    one = result_of("lr_sweep_1_seeds").rows()
    assert [r.lr for r in one] == [1e6, 20.0, 0.5, 0.05, 0.01] and one[0].model is None
    assert one[2].final_accuracy is not None and one[2].final_accuracy_std is None  # one seed
    assert one[0].status == "diverged at epoch 1" and one[0].final_accuracy is None
    assert one[0].converged is None and one[0].gradient_steps is None  # not in this table
    two = {r.lr: r for r in result_of("lr_sweep_2_seeds").rows()}
    assert two[0.5].seeds == 2 and two[0.5].final_accuracy_std is not None
    assert two[20.0].diverged == 1 and two[20.0].unstable == 1
    assert two[20.0].final_accuracy_std is None  # one seed of two gave a number
    models = result_of("compare_models_2_seeds").rows()
    assert [(r.group_by, r.model, r.lr) for r in models] == [("model", "base", None),
                                                            ("model", "wider", None)]
    assert all(isinstance(r.parameters, int) and r.parameters > 0 for r in models)


def test_convergence_and_gradient_columns_are_typed_too() -> None:
    mixed = result_of("convergence_mixed").rows()[0]
    assert (mixed.converged, mixed.converged_epoch, mixed.converged_epoch_std) == (1, 2.0, None)
    assert mixed.outcome == ("converged in 1 of 2 seeds; not converged within 3 epochs in 1 of "
                             "2 seeds")
    traced = {r.lr: r for r in result_of("gradient_study_2_seeds").rows()}
    assert traced[0.1].gradient_steps == 5 and traced[0.1].gradient_nonfinite == 0
    assert traced[0.1].gradient_first_std is not None
    assert traced[1e6].gradient_nonfinite_step == 3 and traced[1e6].gradient_first is None


def test_the_row_class_is_public() -> None:
    from fmclassify import experiments, results

    assert fmc.GroupRow is experiments.GroupRow is results.GroupRow
    assert "GroupRow" in fmc.__all__ and "GroupRow" in experiments.__all__
    assert "ConvergenceVerdict" in fmc.__all__
