from __future__ import annotations

import json
import math

import pytest

from fmclassify.history import EpochRecord, History


def make(accs, status="completed", **meta):
    h = History(metadata={"model": "base", "lr": 0.1, **meta}, status=status)
    h.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
    for i, a in enumerate(accs, 1):
        h.append(EpochRecord(i, 1.0 / i, 1.1 / i, a, 2.0))
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
    h = make([0.8, 0.85], converged_epoch=2, versions={"torch": "x"})
    h.reason = "why"
    path = h.to_json(tmp_path / "sub" / "h.json")
    back = History.from_json(path)
    assert back == h
    assert json.loads(path.read_text())["format"] == "fmclassify.history/1"
    assert not list(path.parent.glob("*.tmp"))


def test_infinite_test_loss_is_written_as_valid_json(tmp_path):
    h = History()
    h.append(EpochRecord(0, None, math.inf, 0.1, 0.0))
    with pytest.raises(ValueError):  # allow_nan=False: never write invalid JSON silently
        h.to_json(tmp_path / "h.json")


def test_from_dict_rejects_foreign_data():
    with pytest.raises(ValueError, match="not an fmclassify history"):
        History.from_dict({"records": []})
    with pytest.raises(ValueError, match="unknown status 'odd'"):
        History.from_dict({"format": "fmclassify.history/1", "status": "odd"})


@pytest.mark.parametrize(("accs", "unstable"), [
    ([0.80, 0.84, 0.86, 0.87], False),       # healthy
    ([0.55, 0.62, 0.66, 0.70], False),       # slow but steady (small lr)
    ([0.10, 0.19, 0.11, 0.18], True),        # under twice chance: lr 1 thrashing
    ([0.30, 0.12, 0.25, 0.28], True),        # falls 18 points in one epoch
    ([0.80], False),                         # one epoch says nothing
])
def test_unstable_rule(accs, unstable):
    assert make(accs).unstable is unstable


def test_describe_status():
    assert make([0.8]).describe_status() == "completed"
    d = make([0.8], status="diverged")
    d.diverged_epoch = 2
    assert d.describe_status() == "diverged at epoch 2"
    assert make([0.8, 0.81], status="converged", converged_epoch=2).describe_status() == (
        "converged at epoch 2")
    assert make([0.8, 0.81], not_converged_within=2).describe_status() == (
        "not converged within 2")
    assert make([0.1, 0.12, 0.1]).describe_status() == "completed (unstable)"
