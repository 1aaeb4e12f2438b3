from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json

import pytest
import torch

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
        assert r["best_accuracy"] >= r["final_accuracy"] - 1e-12  # each run: best >= final
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
    assert isinstance(figs, fmc.plotting.FigureGrid) and isinstance(figs, dict)
    assert figs.to_png().startswith(b"\x89PNG")  # what a notebook shows: one picture
    assert sum(k.startswith("run-") for k in figs) == 2
    assert {"comparison-test_accuracy", "comparison-train_loss"} <= set(figs)
    lines = figs["comparison-test_accuracy"].axes[0].get_lines()
    assert len(lines) == 2


def test_saved_figures_have_readable_names(data, tmp_path):
    res = fmc.lr_sweep("base", lrs=(0.5, 0.05), epochs=1, seeds=(0, 1), data=data,
                       batch_size=32)
    figures = res.plot(kinds=("run", "comparison"))
    paths = figures.save(tmp_path / "figures")
    assert sorted(p.name for p in paths) == sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert {p.name for p in paths} == {
        "run-base-lr0.5-s0.png", "run-base-lr0.5-s1.png", "run-base-lr0.05-s0.png",
        "run-base-lr0.05-s1.png", "comparison-test_accuracy.png", "comparison-train_loss.png",
        "comparison-test_loss.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    svg = figures.save(tmp_path, format="svg")
    assert svg[0].suffix == ".svg" and b"<svg" in svg[0].read_bytes()[:500]


def test_run_names_tell_apart_what_the_short_name_does_not(data):
    plain = fmc.lr_sweep("base", lrs=(0.1,), epochs=1, data=data, batch_size=32)
    longer = fmc.lr_sweep("base", lrs=(0.1,), epochs=2, data=data, batch_size=32)
    both = fmc.ExperimentResult("lr_sweep", [*plain.runs, *longer.runs, plain.runs[0]], "lr")
    names = both.run_names()
    assert names == [plain.runs[0].spec.key, longer.runs[0].spec.key,
                     plain.runs[0].spec.key + "-2"]
    assert len(set(both.plot(kinds=("run",)))) == 3  # no figure overwrites another


def test_run_names_are_file_names_whatever_the_model_is_called(data, monkeypatch):
    from fmclassify import registry

    monkeypatch.setattr(registry, "_models", dict(registry._models))  # the test's name goes
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    fmc.register_model("my net/v2")(fmc.build_model("base").__class__)
    run = fmc.lr_sweep("base", lrs=(0.1,), epochs=1, data=data, batch_size=32).runs[0]
    odd = dataclasses.replace(run, spec=dataclasses.replace(run.spec, model="my net/v2"))
    assert fmc.ExperimentResult("lr_sweep", [odd], "lr").run_names() == ["my_net_v2-lr0.1-s0"]


def test_saving_figures_fails_before_writing_on_a_bad_name_or_format(data, tmp_path):
    figures = fmc.lr_sweep("base", lrs=(0.1,), epochs=1, data=data, batch_size=32).plot()
    with pytest.raises(ConfigError, match="unknown figure format 'pgn'; did you mean 'png'"):
        figures.save(tmp_path, format="pgn")
    with pytest.raises(ConfigError, match="dpi must be a finite number > 0, got 0"):
        figures.save(tmp_path, dpi=0)
    assert not any(tmp_path.iterdir())
    figures["a/b"] = figures["run-base-lr0.1-s0"]
    with pytest.raises(ConfigError, match="figure name 'a/b' is not a file name"):
        figures.save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


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
    assert rows[0.5]["converged_epoch"] == res.runs[0].history.convergence.epoch
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
    assert "gradients-base-lr0.1-s0" in res.plot()


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


def strip(history):
    return [dataclasses.replace(r, seconds=0.0) for r in history.records]


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_parallel_workers_equal_one_thread_runs_in_process_bit_for_bit(data):
    lrs = (0.5, 0.05, 1e6)
    kw = {"lrs": lrs, "epochs": 3, "seeds": (0, 1), "data": data, "batch_size": 32}
    parallel = fmc.lr_sweep("base", workers=2, **kw)
    with one_thread():
        alone = fmc.lr_sweep("base", workers=1, **kw)
    assert [r.spec.lr for r in parallel.runs] == [lr for lr in lrs for _ in (0, 1)]
    assert all(r.history.metadata["threads"] == 1 for r in parallel.runs)
    for a, b in zip(parallel.runs, alone.runs, strict=True):
        assert a.spec == b.spec
        assert strip(a.history) == strip(b.history)
        assert a.history.status == b.history.status
    assert parallel.runs[4].history.status == "diverged"


def test_seconds_are_each_runs_own_training_time(data):
    # evaluation takes 0.2 s here; a record's seconds must not include it (nor be shared out)
    slow_eval = {"lrs": (0.1, 0.05), "epochs": 1, "data": data, "batch_size": 64,
                 "workers": 2}
    with patch_eval_sleep(0.2):
        res = fmc.lr_sweep("slow-eval", **slow_eval)
    for run in res.runs:
        assert 0 < run.history.trained[0].seconds < 0.2


@contextlib.contextmanager
def patch_eval_sleep(seconds):
    import time

    from fmclassify import registry

    class SlowEval(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))

        def forward(self, x):
            if not self.training and len(x) > 2:
                time.sleep(seconds)
            return self.net(x)

    @fmc.register_model("slow-eval", description="sleeps in evaluation (tests)")
    def slow_eval(*, num_classes=4, in_channels=1, image_size=8):
        return SlowEval()

    try:
        yield
    finally:
        registry._unregister("slow-eval")


def test_a_store_resumes_each_parallel_run_on_its_own(data, tmp_path):
    kw = {"lrs": (0.5, 0.05), "epochs": 3, "data": data, "batch_size": 32, "workers": 2}
    first = fmc.lr_sweep("base", store=tmp_path, **kw)
    assert len(list(tmp_path.glob("*.json"))) == 2
    seen = []
    again = fmc.lr_sweep("base", store=tmp_path, on_run=seen.append, **kw)
    assert len(seen) == 2  # read back, nothing trained
    for a, b in zip(first.runs, again.runs, strict=True):
        assert a.history.records == b.history.records


def test_bad_arguments_fail_before_the_data_is_loaded(monkeypatch):
    from fmclassify import experiments

    def no_loading(*args, **kwargs):
        raise AssertionError("the data was loaded before the arguments were checked")

    monkeypatch.setattr(experiments, "load_dataset", no_loading)
    with pytest.raises(fmc.UnknownModelError, match="did you mean 'wider'"):
        fmc.compare_models(("base", "wdier"))
    with pytest.raises(ConfigError, match="lr must be a finite number > 0, got -1"):
        fmc.lr_sweep(lrs=(0.1, -1))
    with pytest.raises(ConfigError, match="unknown option 'momentm'"):
        fmc.lr_sweep(momentm=0.9)
    with pytest.raises(ConfigError, match="momentum must be >= 0 and < 1"):
        fmc.gradient_study(momentum=2.0)
    with pytest.raises(ConfigError, match="seeds must be distinct"):
        fmc.convergence_study(seeds=(0, 0))
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        fmc.lr_sweep(workers=0)
    with pytest.raises(ConfigError, match="optimizer must be a name in a sweep"):
        fmc.lr_sweep(optimizer=lambda params: None)


def test_recipes_go_through_the_experiments_and_the_store(data, tmp_path):
    recipe = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine",
              "augment": ("flip",), "val_split": 0.1, "label_smoothing": 0.1}
    res = fmc.lr_sweep("base", lrs=(0.05,), epochs=2, data=data, batch_size=32,
                       store=tmp_path, **recipe)
    run = res.runs[0]
    for key, value in recipe.items():
        assert getattr(run.spec, key) == value
        assert run.history.metadata[key] == (list(value) if isinstance(value, tuple) else value)
    assert run.history.trained[0].val_accuracy is not None
    other = fmc.lr_sweep("base", lrs=(0.05,), epochs=2, data=data, batch_size=32,
                         store=tmp_path, **{**recipe, "momentum": 0.8})
    assert other.runs[0].spec.key != run.spec.key  # the recipe is part of the key
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_gradient_study_traces_through_autograd(data):
    res = fmc.gradient_study("base", lrs=(0.1, 0.01), steps=3, data=data, batch_size=32)
    for run in res.runs:
        assert run.history.metadata["step"].startswith("fused (autograd in epochs where")
        assert len(run.gradients["values"]) == 3


def test_spec_builders_plan_the_runs_the_call_trains_and_train_nothing(data, tmp_path):
    specs = fmc.lr_sweep_specs("base", (0.5, 0.05), 2, seeds=(0, 1))
    assert [(s.lr, s.seed) for s in specs] == [(0.5, 0), (0.5, 1), (0.05, 0), (0.05, 1)]
    options = fmc.RunOptions(data=data, store=tmp_path, workers=1)
    planned = options.planned(specs)
    assert [dataclasses.replace(s, data="") for s in planned] == specs
    assert all(s.data.startswith(data[0].name + ":") for s in planned)  # the data's fingerprint
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written
    assert [r.spec for r in options.run(specs)] == planned  # one call trains them
    trained = []
    result = fmc.lr_sweep("base", (0.5, 0.05), 2, seeds=(0, 1), data=data, store=tmp_path,
                          workers=1, on_run=lambda r: trained.append(r.spec.key))
    assert trained == [s.key for s in planned]  # every one read back from the store
    assert [r.spec for r in result.runs] == planned


def test_each_experiment_trains_its_spec_builders_runs(data):
    kw = {"seeds": (0, 1), "batch_size": 32, "momentum": 0.5}
    detector = fmc.ConvergenceDetector(threshold=0.5, patience=1, window=1)
    calls = [
        (fmc.lr_sweep, fmc.lr_sweep_specs, ("base", (0.1, 0.01), 1)),
        (fmc.convergence_study, fmc.convergence_study_specs, ("base", (0.1,), 3, detector)),
        (fmc.compare_models, fmc.compare_models_specs, (("base", "wider"), 0.1, 1)),
    ]
    for experiment, specs, args in calls:
        result = experiment(*args, data=data, workers=1, **kw)
        assert [dataclasses.replace(r.spec, data="") for r in result.runs] == specs(*args, **kw)
        assert all(" of 2 seeds" in row["outcome"] for row in result.table())
    result = fmc.gradient_study("base", (0.1,), 10, data=data, workers=1, **kw)
    planned = fmc.gradient_study_specs("base", (0.1,), 10, train_size=len(data[0]), **kw)
    assert [dataclasses.replace(r.spec, data="") for r in result.runs] == planned
    assert planned[0].epochs == 2  # 10 steps of 32 images: 320 of 256 training images


@pytest.mark.parametrize(("call", "message"), [
    (lambda: fmc.lr_sweep_specs(lrs=()), "lrs must not be empty"),
    (lambda: fmc.lr_sweep_specs(seeds=(0, 0)), "seeds must be distinct"),
    (lambda: fmc.lr_sweep_specs(lrs=(0.1, -1)), "lr must be a finite number > 0, got -1"),
    (lambda: fmc.lr_sweep_specs(lrr=0.1), "unknown option 'lrr'"),
    (lambda: fmc.compare_models_specs(("base", "wdier")), "did you mean 'wider'"),
    (lambda: fmc.compare_models_specs(models=()), "models must not be empty"),
    (lambda: fmc.convergence_study_specs(detector=0.001),
     "detector must be a ConvergenceDetector, got float"),
    (lambda: fmc.convergence_study_specs(max_epochs=0), "epochs must be an integer >= 1, got 0"),
    (lambda: fmc.gradient_study_specs(momentum=2.0, train_size=10),
     "momentum must be >= 0 and < 1"),
    (lambda: fmc.gradient_study_specs(steps=0, train_size=10),
     "steps must be an integer >= 1, got 0"),
    (lambda: fmc.gradient_study_specs(train_size=0), "train_size must be an integer >= 1, got 0"),
    (lambda: fmc.RunOptions(workers=0), "workers must be an integer >= 1, got 0"),
    (lambda: fmc.RunOptions(on_error="ignore"), "unknown on_error 'ignore'"),
    (lambda: fmc.RunOptions(executor="dask"), "executor must be a concurrent.futures.Executor"),
])
def test_spec_builders_and_run_options_check_as_the_experiments_do(call, message):
    with pytest.raises(fmc.FmClassifyError, match=message):  # ConfigError, UnknownModelError
        call()


def test_run_options_are_one_frozen_typed_object():
    options = fmc.RunOptions(workers=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.workers = 3
    with pytest.raises(TypeError):
        fmc.RunOptions(None)  # keyword-only: the names say what each option is
    names = [f.name for f in dataclasses.fields(fmc.RunOptions)]
    for experiment in (fmc.lr_sweep, fmc.convergence_study, fmc.compare_models,
                       fmc.gradient_study):
        keyword_only = [p.name for p in inspect.signature(experiment).parameters.values()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY]
        assert keyword_only == names  # each experiment takes them by the same names
