"""Loggers: LivePlot's PNG file and rate limit, TensorBoard scalars read back, the CSV log."""

from __future__ import annotations

import csv
import math
import sys

import pytest
import torch

import fmclassify as fmc
from fmclassify.callbacks import RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.history import EpochRecord, History
from fmclassify.loggers import CSVLogger, LivePlot, TensorBoardLogger

PNG = b"\x89PNG\r\n\x1a\n"


def records(n: int = 3, *, val: bool = False) -> list[EpochRecord]:
    out = [EpochRecord(0, None, 2.3, 0.1, 0.0, val_loss=2.2 if val else None,
                       val_accuracy=0.12 if val else None)]
    for e in range(1, n + 1):
        out.append(EpochRecord(e, 1.0 / e, 1.1 / e, 0.5 + e / 10, 0.5, lr=0.1 / e,
                               val_loss=1.2 / e if val else None,
                               val_accuracy=0.4 + e / 10 if val else None))
    return out


def drive(callback, recs: list[EpochRecord]) -> History:
    """Call the hooks as the Trainer does: fit start after epoch 0, one call per epoch, end."""
    history = History(metadata={"model": "base", "lr": 0.1})
    history.append(recs[0])
    run = RunContext(model=torch.nn.Linear(2, 2), history=history, epochs=len(recs) - 1)
    callback.on_fit_start(run)
    for record in recs[1:]:
        run.epoch = record.epoch
        history.append(record)
        callback.on_epoch_end(run, record)
    history.status = "completed"
    callback.on_fit_end(run, history)
    return history


def test_loggers_need_no_gradients():
    for callback in (LivePlot(path="x.png"), CSVLogger("x.csv")):
        assert callback.needs_gradients is False and isinstance(callback, fmc.Callback)
    assert TensorBoardLogger.needs_gradients is False


def test_liveplot_outside_a_notebook_needs_a_path():
    with pytest.raises(ConfigError, match=r"LivePlot outside a notebook needs a file .* "
                                          r"LivePlot\(path='live.png'\)"):
        LivePlot()


@pytest.mark.parametrize("bad", [-1.0, math.nan, "fast"])
def test_liveplot_rejects_a_bad_interval(bad):
    with pytest.raises(ConfigError, match="every_seconds"):
        LivePlot(every_seconds=bad, path="x.png")


def test_liveplot_rewrites_the_png_after_every_epoch(tmp_path):
    live = LivePlot(every_seconds=0, path=tmp_path / "out" / "live.png")
    drive(live, records(3))
    assert live.redraws == 1 + 3 + 1  # fit start, each epoch, fit end
    assert (tmp_path / "out" / "live.png").read_bytes().startswith(PNG)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["live.png"]  # no stray .tmp


def test_liveplot_is_rate_limited_but_always_draws_at_fit_end(tmp_path):
    live = LivePlot(every_seconds=3600, path=tmp_path / "live.png")
    drive(live, records(5))
    assert live.redraws == 2  # fit start and fit end only


def test_liveplot_in_a_trainer_fit(tmp_path, tiny_data):
    live = LivePlot(every_seconds=0, path=tmp_path / "live.png")
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    fmc.Trainer(model, lr=0.1, epochs=2, progress=False, callbacks=[live]).fit(*tiny_data)
    assert live.redraws == 4 and (tmp_path / "live.png").read_bytes().startswith(PNG)


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_logs_one_scalar_per_epoch_per_tag(tmp_path):
    recs = records(3, val=True)
    drive(TensorBoardLogger(tmp_path / "tb"), recs)
    got = scalars(tmp_path / "tb")
    assert sorted(got) == ["Accuracy/test", "Accuracy/val", "LR", "Loss/test", "Loss/train",
                           "Loss/val"]
    assert [s for s, _ in got["Loss/test"]] == [0, 1, 2, 3]  # epoch 0 too: the untrained model
    assert [s for s, _ in got["Loss/train"]] == [1, 2, 3]  # nothing trained at epoch 0
    assert [s for s, _ in got["LR"]] == [1, 2, 3]
    for tag, field in [("Loss/test", "test_loss"), ("Accuracy/test", "test_accuracy"),
                       ("Loss/val", "val_loss"), ("Accuracy/val", "val_accuracy")]:
        assert [v for _, v in got[tag]] == pytest.approx([getattr(r, field) for r in recs])
    assert [v for _, v in got["Loss/train"]] == pytest.approx([1.0, 0.5, 1 / 3])


def test_tensorboard_leaves_out_what_a_run_has_not(tmp_path):
    drive(TensorBoardLogger(tmp_path / "tb"), [EpochRecord(0, None, 2.3, 0.1, 0.0),
                                               EpochRecord(1, 0.9, 0.8, 0.7, 1.0)])
    assert sorted(scalars(tmp_path / "tb")) == ["Accuracy/test", "Loss/test", "Loss/train"]


def test_tensorboard_in_a_trainer_fit(tmp_path, tiny_data):
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    history = fmc.Trainer(model, lr=0.1, epochs=2, progress=False,
                          callbacks=[TensorBoardLogger(tmp_path / "tb")]).fit(*tiny_data)
    got = scalars(tmp_path / "tb")
    assert [s for s, _ in got["Accuracy/test"]] == [0, 1, 2]
    assert [v for _, v in got["Accuracy/test"]] == pytest.approx(
        history.column("test_accuracy", include_initial=True))


def test_tensorboard_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r'pip install "fmclassify\[tensorboard\]"'):
        TensorBoardLogger("never-created")


def test_csv_logger_holds_every_record_after_each_epoch(tmp_path, tiny_data):
    path = tmp_path / "log.csv"
    seen: list[int] = []

    class Peek(fmc.CallbackBase):  # reads the file as a user tailing it would
        needs_gradients = False

        def on_epoch_end(self, run, record):
            with path.open() as fh:
                seen.append(len(list(csv.DictReader(fh))))

    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    history = fmc.Trainer(model, lr=0.1, epochs=3, progress=False,
                          callbacks=[CSVLogger(path), Peek()]).fit(*tiny_data)
    assert seen == [2, 3, 4]  # epoch 0 and each finished epoch
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["test_accuracy"]) for r in rows] == history.column(
        "test_accuracy", include_initial=True)
