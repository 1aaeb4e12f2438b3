from __future__ import annotations

import dataclasses
import json
import math

import pytest

from fmclassify.history import ConvergenceVerdict, EpochRecord, History


def make(accs, status="completed", losses=None, convergence=None, **meta):
    h = History(metadata={"model": "base", "lr": 0.1, "num_classes": 10, **meta}, status=status,
                convergence=convergence)
    h.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
    losses = losses or [1.0 / i for i in range(1, len(accs) + 1)]
    for i, (a, loss) in enumerate(zip(accs, losses, strict=True), 1):
        h.append(EpochRecord(i, loss, 1.1 / i, a, 2.0))
    return h


def test_columns_and_summaries():
    h = make([0.8, 0.85, 0.84])
    assert h.column("test_accuracy") == [0.8, 0.85, 0.84]
    assert h.column("test_accuracy", include_initial=True) == [0.1, 0.8, 0.85, 0.84]
    assert h.final_accuracy == 0.84
    assert h.best_accuracy == 0.85
    assert h.mean_accuracy == pytest.approx((0.8 + 0.85 + 0.84) / 3)
    assert h.epochs_trained == 3
    assert h.seconds_per_epoch == 2.0


def test_unknown_column_lists_fields():
    with pytest.raises(KeyError, match="unknown column 'acc'; available: epoch, train_loss"):
        make([0.8]).column("acc")


def test_epochs_must_increase():
    h = make([0.8])
    with pytest.raises(ValueError, match="epoch 1 does not follow epoch 1"):
        h.append(EpochRecord(1, 0.1, 0.1, 0.9, 1.0))


def test_json_round_trip_is_exact(tmp_path):
    h = make([0.8, 0.85], versions={"torch": "x"})
    h.record_convergence(ConvergenceVerdict(2, 2, "converged at epoch 2: ...", 1))
    h.reason = "why"
    path = h.to_json(tmp_path / "sub" / "h.json")
    back = History.from_json(path)
    assert back == h
    assert json.loads(path.read_text())["format"] == "fmclassify.history/1"
    assert not list(path.parent.glob("*.tmp"))


def test_infinite_test_loss_is_written_as_valid_json(tmp_path):
    h = History()
    h.append(EpochRecord(0, None, math.inf, 0.1, 0.0))
    path = h.to_json(tmp_path / "h.json")
    assert json.loads(path.read_text())["records"][0]["test_loss"] is None  # strict JSON
    assert History.from_json(path).records[0].test_loss == math.inf  # and back as inf


def test_from_dict_rejects_foreign_data():
    with pytest.raises(ValueError, match="not an fmclassify history"):
        History.from_dict({"records": []})
    with pytest.raises(ValueError, match="unknown status 'odd'"):
        History.from_dict({"format": "fmclassify.history/1", "status": "odd"})


@pytest.mark.parametrize(("accs", "losses", "unstable"), [
    ([0.80, 0.84, 0.86, 0.87], [0.6, 0.4, 0.35, 0.33], False),  # healthy
    ([0.18, 0.32, 0.43, 0.49], [2.29, 2.27, 2.24, 2.2], False),  # lr too small: slow, not unstable
    ([0.80, 0.72, 0.84, 0.83], [0.6, 0.5, 0.45, 0.4], False),    # an 8-point dip on a subset
    ([0.30, 0.12, 0.25, 0.28], [1.9, 1.8, 1.8, 1.8], True),      # falls 18 points in one epoch
    ([0.23, 0.10, 0.10, 0.10], [3.27, 2.34, 2.31, 2.31], True),  # lr 1: worse than guessing
    ([0.80], [0.6], False),                                       # one epoch, healthy
    ([0.11], [2.9], True),                                        # one epoch, worse than guessing
])
def test_unstable_rule(accs, losses, unstable):
    assert make(accs, losses=losses).unstable is unstable


def test_describe_status():
    assert make([0.8]).describe_status() == "completed"
    d = make([0.8], status="diverged")
    d.diverged_epoch = 2
    assert d.describe_status() == "diverged at epoch 2"
    assert make([0.8, 0.81], status="converged",
                convergence=ConvergenceVerdict(2, 2)).describe_status() == "converged at epoch 2"
    assert make([0.8, 0.81], convergence=ConvergenceVerdict(None, 2)).describe_status() == (
        "not converged within 2")
    assert make([0.8, 0.81], convergence=ConvergenceVerdict(1, 2)).describe_status() == (
        "completed")  # converged at 1 without stopping (stop=False): the run went on
    assert make([0.1, 0.12, 0.1], losses=[2.5, 2.3, 2.3]).describe_status() == (
        "completed (unstable)")
    dead = make([0.1, 0.1, 0.1], losses=[3.1, 2.31, 2.31], status="converged",
                convergence=ConvergenceVerdict(3, 3))
    assert dead.describe_status() == "converged at epoch 3 (unstable)"


def with_val(n=3):
    h = make([0.8, 0.85, 0.86][:n], batch_size=64, seed=0, versions={"torch": "x"})
    recs = [h.records[0]] + [
        EpochRecord(r.epoch, r.train_loss, r.test_loss, r.test_accuracy, r.seconds, lr=0.1,
                    val_loss=r.test_loss + 0.1, val_accuracy=r.test_accuracy - 0.01)
        for r in h.trained]
    h.records = recs
    return h


def test_str_is_a_table_with_status_and_settings():
    h = make([0.8, 0.85])
    h.reason = "used the whole budget of 2 epochs"
    lines = str(h).splitlines()
    assert lines[0] == "History of model=base, lr=0.1: completed, 2 epochs trained"
    assert lines[1].split() == ["epoch", "train", "loss", "test", "loss", "test", "acc", "(%)",
                                "seconds"]  # no val or lr columns for a run without them
    assert lines[2].split() == ["0", "-", "2.3000", "10.00", "0.0"]
    assert lines[4].split() == ["2", "0.5000", "0.5500", "85.00", "2.0"]
    assert lines[5:] == ["used the whole budget of 2 epochs",
                         "final test accuracy 85.00%, best 85.00%",
                         "model=base, lr=0.1 (+1 more in .metadata)"]


def test_val_and_lr_columns_appear_when_recorded():
    header = str(with_val()).splitlines()[1]
    assert "val loss" in header and "val acc (%)" in header and " lr " in header
    assert str(with_val()).splitlines()[3].split()[-4:] == ["1.2000", "79.00", "0.1", "2.0"]


def test_long_runs_show_first_and_last_epochs():
    h = make([0.5] * 40)
    lines = str(h).splitlines()
    assert lines[2].split()[0] == "0" and lines[12].split()[0] == "..."
    assert lines[22].split()[0] == "40"
    assert "21 epochs not shown" in str(h)


def test_repr_html_escapes_and_matches_the_text():
    h = make([0.8], model="<b>net</b>")
    h.reason = "a & b"
    page = h._repr_html_()
    assert page.startswith("<div>") and "<table>" in page and "<b>" not in page
    assert "&lt;b&gt;net&lt;/b&gt;" in page and "a &amp; b" in page
    assert page.count("<tr>") == 1 + 2  # header, epoch 0, epoch 1
    assert "<td style=\"text-align:right\">80.00</td>" in page


def test_repr_pretty_prints_the_table():
    from IPython.lib.pretty import pretty

    h = make([0.8])
    assert pretty(h) == str(h)


def test_to_csv_holds_every_record(tmp_path):
    import csv

    h = with_val()
    path = h.to_csv(tmp_path / "sub" / "h.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds",
                             "lr", "val_loss", "val_accuracy"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert rows[0]["train_loss"] == "" and rows[0]["lr"] == ""  # None as an empty cell
    back = [float(r["val_loss"]) for r in rows[1:]]
    assert back == h.column("val_loss")  # full precision
    assert not list(path.parent.glob("*.tmp"))


def test_to_dataframe_holds_every_record():
    h = with_val()
    frame = h.to_dataframe()
    assert list(frame["epoch"]) == [0, 1, 2, 3]
    assert list(frame["test_accuracy"]) == h.column("test_accuracy", include_initial=True)
    assert math.isnan(frame["train_loss"][0]) and math.isnan(frame["lr"][0])
    assert frame["lr"].dtype == "float64"
    assert len(History().to_dataframe().columns) == 8


def test_to_dataframe_without_pandas_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r'pip install "fmclassify\[pandas\]"'):
        make([0.8]).to_dataframe()


def with_ema(averaged, raw):
    """A run with EMA: ``averaged`` test accuracies of the average, ``raw`` of the weights."""
    h = make(averaged, ema=0.999)
    h.records = [dataclasses.replace(r, raw_test_loss=r.test_loss, raw_test_accuracy=a)
                 for r, a in zip(h.records, [0.1, *raw], strict=True)]
    return h


def test_the_instability_rule_reads_the_raw_weights_under_ema():
    lagging = with_ema([0.57, 0.45, 0.6], raw=[0.8, 0.83, 0.85])  # the average lags, fine
    assert not lagging.unstable and lagging.describe_status() == "completed"
    thrashing = with_ema([0.6, 0.62, 0.63], raw=[0.8, 0.55, 0.82])  # the weights fell 25 points
    assert thrashing.unstable
    assert make([0.57, 0.45, 0.6]).unstable  # without EMA, the test accuracy is the raw one
    assert [r.trained_accuracy for r in lagging.trained] == [0.8, 0.83, 0.85]


def test_raw_fields_round_trip_and_old_histories_still_load(tmp_path):
    h = with_ema([0.7, 0.8], raw=[0.78, 0.84])
    back = History.from_json(h.to_json(tmp_path / "h.json"))
    assert back == h and back.records[-1].raw_test_accuracy == 0.84
    old = h.to_dict()
    for record in old["records"]:  # a history written before the raw fields existed
        for key in ("raw_test_loss", "raw_test_accuracy", "raw_val_loss", "raw_val_accuracy"):
            del record[key]
    loaded = History.from_dict(old)
    assert [r.raw_test_accuracy for r in loaded] == [None, None, None]
    assert loaded.column("test_accuracy") == [0.7, 0.8]


def test_raw_columns_appear_in_the_table_csv_and_dataframe_only_with_ema(tmp_path):
    import csv

    h = with_ema([0.7, 0.8], raw=[0.78, 0.84])
    lines = str(h).splitlines()
    assert "raw test acc (%)" in lines[1] and "raw val acc" not in lines[1]
    assert lines[3].split()[-2:] == ["78.00", "2.0"]  # raw accuracy, seconds
    assert ("test and val columns evaluate the EMA of the weights (decay 0.999); raw columns "
            "the trained weights") in lines
    with h.to_csv(tmp_path / "h.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[-3:] == ["val_accuracy", "raw_test_loss", "raw_test_accuracy"]
    assert float(rows[2]["raw_test_accuracy"]) == 0.84  # no split: no raw_val columns
    frame = h.to_dataframe()
    assert list(frame["raw_test_accuracy"]) == [0.1, 0.78, 0.84]
    assert frame["raw_test_loss"].dtype == "float64" and "raw_val_loss" not in frame.columns
    assert "raw_test_accuracy" not in make([0.8]).to_dataframe().columns


# -- the convergence verdict: typed, and read from files written before it was ---------------

#: A History file as fmclassify wrote it before the verdict was typed (History.to_dict then):
#: a ConvergenceDetector's verdict in the metadata, no "convergence" entry.
OLD_CONVERGED = {
    "format": "fmclassify.history/1",
    "status": "converged",
    "reason": "converged at epoch 2: test_accuracy changed by less than 0.05 from the previous "
              "epoch for one epoch",
    "diverged_epoch": None,
    "metadata": {"model": "base", "lr": 0.5, "epochs": 4, "seed": 0, "num_classes": 4,
                 "converged_epoch": 2},
    "records": [
        {"epoch": 0, "train_loss": None, "test_loss": 1.39, "test_accuracy": 0.25,
         "seconds": 0.0, "lr": None, "val_loss": None, "val_accuracy": None},
        {"epoch": 1, "train_loss": 0.71, "test_loss": 0.05, "test_accuracy": 1.0,
         "seconds": 0.01, "lr": 0.5, "val_loss": None, "val_accuracy": None},
        {"epoch": 2, "train_loss": 0.03, "test_loss": 0.01, "test_accuracy": 1.0,
         "seconds": 0.01, "lr": 0.5, "val_loss": None, "val_accuracy": None},
    ],
}


def old_file(tmp_path, status="completed", **metadata):
    """An old-format History file; ``metadata`` replaces the verdict keys."""
    data = json.loads(json.dumps(OLD_CONVERGED))
    meta = {k: v for k, v in data["metadata"].items() if k != "converged_epoch"}
    data.update(status=status, metadata={**meta, **metadata})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def test_an_old_file_reads_its_verdict_from_the_metadata(tmp_path):
    converged = History.from_json(old_file(tmp_path, "converged", converged_epoch=2))
    assert converged.convergence == ConvergenceVerdict(epoch=2, epochs_watched=2)
    assert converged.describe_status() == "converged at epoch 2"
    assert converged.metadata["converged_epoch"] == 2  # the metadata is left as it was
    within = History.from_json(old_file(tmp_path, not_converged_within=2, restored_best_epoch=1))
    assert within.convergence == ConvergenceVerdict(None, 2, restored_best_epoch=1)
    assert within.describe_status() == "not converged within 2"
    assert History.from_json(old_file(tmp_path)).convergence is None  # no detector watched


def test_the_verdict_round_trips_and_none_stays_none(tmp_path):
    h = History.from_json(old_file(tmp_path, "converged", converged_epoch=2))
    h.record_convergence(ConvergenceVerdict(2, 2, "converged at epoch 2: ..."))
    path = h.to_json(tmp_path / "new.json")
    assert json.loads(path.read_text())["convergence"] == {
        "epoch": 2, "epochs_watched": 2, "reason": "converged at epoch 2: ...",
        "restored_best_epoch": None}
    assert History.from_json(path) == h
    # a file of today with no verdict has none, whatever its metadata holds
    h.convergence = None
    assert History.from_json(h.to_json(tmp_path / "none.json")).convergence is None


def test_record_convergence_mirrors_the_verdict_into_the_metadata():
    h = make([0.8, 0.81], status="converged")
    h.record_convergence(ConvergenceVerdict(2, 2, restored_best_epoch=2))
    assert h.metadata["converged_epoch"] == 2 and h.metadata["restored_best_epoch"] == 2
    h.status = "diverged"
    h.record_convergence(ConvergenceVerdict(None, 2))  # a diverged run never converged
    assert not set(h.metadata) & {"converged_epoch", "not_converged_within",
                                  "restored_best_epoch"}
    h.status = "completed"
    h.record_convergence(ConvergenceVerdict(None, 2))
    assert h.metadata["not_converged_within"] == 2 and "converged_epoch" not in h.metadata
    h.record_convergence(None)
    assert h.convergence is None and "not_converged_within" not in h.metadata


def test_a_malformed_verdict_is_a_value_error():
    data = make([0.8]).to_dict()
    data["convergence"] = {"epoch": 1}
    with pytest.raises(ValueError, match="malformed convergence verdict in history"):
        History.from_dict(data)
