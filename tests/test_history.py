from __future__ import annotations

import json
import math

import pytest

from fmclassify.history import EpochRecord, History


def make(accs, status="completed", losses=None, **meta):
    h = History(metadata={"model": "base", "lr": 0.1, "num_classes": 10, **meta}, status=status)
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
    assert make([0.8, 0.81], status="converged", converged_epoch=2).describe_status() == (
        "converged at epoch 2")
    assert make([0.8, 0.81], not_converged_within=2).describe_status() == (
        "not converged within 2")
    assert make([0.1, 0.12, 0.1], losses=[2.5, 2.3, 2.3]).describe_status() == (
        "completed (unstable)")
    dead = make([0.1, 0.1, 0.1], losses=[3.1, 2.31, 2.31], status="converged", converged_epoch=3)
    assert dead.describe_status() == "converged at epoch 3 (unstable)"
