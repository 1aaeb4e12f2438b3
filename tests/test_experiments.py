from __future__ import annotations

import json

import pytest

import fmclassify as fmc
from fmclassify.exceptions import ConfigError
from fmclassify.experiments import RunStore
from fmclassify.training import Trainer
from helpers import make_dataset


@pytest.fixture
def data():
    return make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")


def test_lr_sweep_table_with_seeds(data):
    res = fmc.lr_sweep("base", lrs=(0.5, 0.05), epochs=2, seeds=(0, 1), data=data, batch_size=32)
    assert len(res.runs) == 4
    rows = res.table()
    assert [r["lr"] for r in rows] == [0.5, 0.05]
    for r in rows:
        assert r["seeds"] == 2
        runs = [x.history for x in res.runs if x.spec.lr == r["lr"]]
        finals = [h.final_accuracy for h in runs]
        assert r["final_accuracy"] == pytest.approx(sum(finals) / 2)
        assert r["final_accuracy_std"] is not None
        assert r["mean_accuracy"] == pytest.approx(sum(h.mean_accuracy for h in runs) / 2)
        assert r["best_accuracy"] >= r["final_accuracy"] - 1e-12 or r["seeds"] > 1
        assert r["parameters"] == runs[0].metadata["parameters"]
    md = res.to_markdown()
    assert md.splitlines()[0].startswith("| Learning rate | Final accuracy | Best accuracy")
    assert " ± " in md
    payload = json.loads(res.to_json())
    assert payload["kind"] == "lr_sweep" and len(payload["runs"]) == 4


def test_sweep_reports_divergence_by_name(data):
    res = fmc.lr_sweep("base", lrs=(1e6,), epochs=2, data=data, batch_size=32)
    row = res.table()[0]
    assert row["status"] == "diverged at epoch 1" and row["diverged"] == 1
    assert row["final_accuracy"] is None
    assert "n/a" in res.to_markdown()


def test_plot_returns_per_run_and_comparison_figures(data):
    res = fmc.lr_sweep("base", lrs=(0.5, 0.05), epochs=2, data=data, batch_size=32)
    figs = res.plot()
    assert sum(k.startswith("run-") for k in figs) == 2
    assert {"comparison-test_accuracy", "comparison-train_loss"} <= set(figs)
    lines = figs["comparison-test_accuracy"].axes[0].get_lines()
    assert len(lines) == 2


def test_store_reuses_finished_runs(data, tmp_path, monkeypatch):
    first = fmc.lr_sweep("base", lrs=(0.1,), epochs=2, data=data, store=tmp_path, batch_size=32)
    assert len(list(tmp_path.glob("*.json"))) == 1 and not list(tmp_path.glob("*.ckpt"))

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "fit", no_training)
    again = fmc.lr_sweep("base", lrs=(0.1,), epochs=2, data=data, store=RunStore(tmp_path),
                         batch_size=32)
    assert again.runs[0].history == first.runs[0].history


def test_convergence_study_reports_each_lr(data):
    det = fmc.ConvergenceDetector(threshold=0.05, patience=1)
    res = fmc.convergence_study("base", lrs=(0.5, 1e-5), max_epochs=4, detector=det, data=data,
                                batch_size=32)
    rows = {r["lr"]: r for r in res.table()}
    assert rows[0.5]["status"].startswith("converged at epoch")
    assert rows[0.5]["converged_epoch"] == res.runs[0].history.metadata["converged_epoch"]
    # lr 1e-5 barely moves the weights: its accuracy stops changing at once (slow, not unstable)
    assert rows[1e-5]["status"] == "converged at epoch 2"  # epoch 1 has no previous epoch
    assert "Converged at epoch" in res.to_markdown()


def test_compare_models_counts_parameters(data):
    res = fmc.compare_models(("base", "wider"), lr=0.1, epochs=1, data=data, batch_size=32)
    rows = {r["model"]: r for r in res.table()}
    for name in ("base", "wider"):
        model = fmc.build_model(name, num_classes=4, image_size=8)
        assert rows[name]["parameters"] == fmc.count_parameters(model).trainable


def test_gradient_study_traces_steps(data):
    res = fmc.gradient_study("base", lrs=(0.1,), steps=5, data=data, batch_size=32)
    run = res.runs[0]
    assert len(run.gradients["values"]) == 5
    row = res.table()[0]
    assert row["gradient_steps"] == 5 and row["gradient_first"] == run.gradients["values"][0]
    assert "gradients-" + run.spec.key in res.plot()


@pytest.mark.parametrize(("call", "message"), [
    (lambda d: fmc.lr_sweep(lrs=(), data=d), "lrs must not be empty"),
    (lambda d: fmc.lr_sweep(seeds=(), data=d), "seeds must not be empty"),
    (lambda d: fmc.compare_models(models=(), data=d), "models must not be empty"),
    (lambda d: fmc.lr_sweep(lrs=(-1,), data=d), "lr must be a finite number > 0, got -1"),
])
def test_bad_experiment_arguments(data, call, message):
    with pytest.raises(ConfigError, match=message):
        call(data)


def close_histories(a, b):
    assert a.status == b.status and a.diverged_epoch == b.diverged_epoch
    assert len(a.records) == len(b.records)
    for ra, rb in zip(a.records, b.records, strict=True):
        assert ra.epoch == rb.epoch
        assert ra.test_accuracy == pytest.approx(rb.test_accuracy, abs=1 / 128)
        if ra.train_loss is not None:
            assert ra.train_loss == pytest.approx(rb.train_loss, rel=1e-3)


def test_sweep_trained_together_matches_sequential_runs(data):
    lrs = (0.5, 0.05, 1e6)
    together = fmc.lr_sweep("base", lrs=lrs, epochs=3, data=data, batch_size=32)
    apart = fmc.lr_sweep("base", lrs=lrs, epochs=3, data=data, batch_size=32, together=False)
    assert [r.spec.lr for r in together.runs] == list(lrs)
    assert all(r.history.metadata.get("trained_together") == 3 for r in together.runs)
    assert not any("trained_together" in r.history.metadata for r in apart.runs)
    for a, b in zip(together.runs, apart.runs, strict=True):
        close_histories(a.history, b.history)
    assert together.runs[2].history.status == "diverged"


def test_seed_repeats_are_trained_together_too(data):
    kw = {"lrs": (0.5, 0.05), "epochs": 2, "seeds": (0, 1), "data": data, "batch_size": 32}
    together = fmc.lr_sweep("base", **kw)
    apart = fmc.lr_sweep("base", together=False, **kw)
    assert all(r.history.metadata.get("trained_together") == 4 for r in together.runs)
    for a, b in zip(together.runs, apart.runs, strict=True):
        assert a.spec == b.spec
        close_histories(a.history, b.history)
    models = fmc.compare_models(("base",), epochs=1, seeds=(0, 1, 2), data=data, batch_size=32)
    assert all(r.history.metadata.get("trained_together") == 3 for r in models.runs)


def test_runs_that_cannot_be_trained_together_say_why(data):
    res = fmc.lr_sweep("base", lrs=(0.5, 0.05), epochs=1, data=data, batch_size=32,
                       optimizer="adam")
    assert res.notes == ["2 runs of base were trained one by one, not together: only plain "
                         "MLPs trained with plain SGD can be (optimizer 'adam' is not plain SGD)"]
    assert res.to_markdown().endswith("\n\nNote: " + res.notes[0])
    assert json.loads(res.to_json())["notes"] == res.notes
    asked = fmc.lr_sweep("base", lrs=(0.5, 0.05), epochs=1, data=data, batch_size=32,
                         fused=False)
    assert asked.notes == [] and "Note:" not in asked.to_markdown()


def test_convergence_study_together_stops_each_run_on_its_own(data):
    det = fmc.ConvergenceDetector(threshold=0.05, patience=1)
    kw = {"lrs": (0.5, 1e-5, 0.05), "max_epochs": 5, "detector": det, "data": data,
          "batch_size": 32}
    together = fmc.convergence_study("base", **kw)
    apart = fmc.convergence_study("base", together=False, **kw)
    for a, b in zip(together.runs, apart.runs, strict=True):
        close_histories(a.history, b.history)
        assert a.history.metadata.get("converged_epoch") == b.history.metadata.get(
            "converged_epoch")
    assert together.runs[0].history.metadata["trained_together"] == 3


def test_gradient_tracer_runs_are_never_batched(data):
    res = fmc.gradient_study("base", lrs=(0.1, 0.01), steps=3, data=data, batch_size=32)
    assert not any("trained_together" in r.history.metadata for r in res.runs)
