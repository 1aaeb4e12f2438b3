"""ConvergenceDetector: scripted metric sequences, the callback adapter, one real-data run."""

from __future__ import annotations

import copy
import json
import math
import time

import pytest
import torch

from fmclassify.callbacks import RunContext
from fmclassify.convergence import ConvergenceDetector
from fmclassify.exceptions import ConfigError
from fmclassify.history import ConvergenceVerdict, EpochRecord, History


def feed(det: ConvergenceDetector, values: list[float]) -> list[bool]:
    return [det.update(v) for v in values]


# -- the pure state machine -----------------------------------------------------------------


def test_immediate_convergence_patience_one() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=1)
    # epoch 1 has nothing to compare with; epoch 2 is the first change (0.0)
    assert feed(det, [0.8, 0.8, 0.8]) == [False, True, True]
    assert det.converged and det.converged_epoch == 2
    assert det.reason == (
        "converged at epoch 2: test_accuracy changed by less than 0.001 from the previous epoch "
        "for one epoch"
    )


def test_patience_counts_consecutive_quiet_epochs() -> None:
    # changes: -, 0.1, 0.0005, 0.0005, 0.01, 0.0005, 0.0005, 0.0005
    values = [0.70, 0.80, 0.8005, 0.8010, 0.8110, 0.8115, 0.8120, 0.8125]
    two = ConvergenceDetector(threshold=0.001, patience=2)
    feed(two, values)
    assert two.converged_epoch == 4  # the first run of two quiet epochs ends at epoch 4
    three = ConvergenceDetector(threshold=0.001, patience=3)
    feed(three, values)
    assert three.converged_epoch == 8  # the 2-epoch streak broke at epoch 5; 6, 7, 8 make 3
    four = ConvergenceDetector(threshold=0.001, patience=4)
    feed(four, values)
    assert not four.converged and four.converged_epoch is None


def test_change_equal_to_threshold_is_not_quiet() -> None:
    det = ConvergenceDetector(threshold=0.25, patience=1)
    assert feed(det, [1.0, 1.25, 1.5]) == [False, False, False]  # "smaller than", strictly


def test_never_converging_says_so_with_the_epoch_count() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=3)
    assert not any(feed(det, [0.5 + 0.01 * i for i in range(20)]))
    assert not det.converged and det.converged_epoch is None
    assert det.reason == (
        "not converged within 20 epochs: test_accuracy never changed by less than 0.001 from "
        "the previous epoch for 3 consecutive epochs"
    )


NOISE = [0.002, -0.002, 0.0]  # period 3: a 3-epoch moving average cancels it exactly


def noisy_plateau(n: int) -> list[float]:
    return [0.70, 0.78, 0.82] + [0.85 + NOISE[i % 3] for i in range(n)]


def test_noisy_plateau_without_window_never_converges() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=3)
    feed(det, noisy_plateau(30))
    assert not det.converged  # each epoch moves by 0.002 or 0.004


def test_noisy_plateau_with_window_converges() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=3, window=3)
    feed(det, noisy_plateau(30))
    # smoothed values exist from epoch 3; the plateau's averages are all 0.85 from epoch 6
    # (values 4..6); changes at 7, 8, 9 are quiet (epoch 6's change from epoch 5's average,
    # 0.84, is not)
    assert det.converged_epoch == 9
    assert det.reason == (
        "converged at epoch 9: the 3-epoch moving average of test_accuracy changed by less "
        "than 0.001 from the previous epoch for 3 consecutive epochs"
    )


def test_window_delays_the_first_change() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=1, window=3)
    # first smoothed value at epoch 3, first change at epoch 4
    assert feed(det, [0.8] * 5) == [False, False, False, True, True]


def test_min_epochs_holds_back_the_verdict() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=1, min_epochs=5)
    assert feed(det, [0.8] * 6) == [False, False, False, False, True, True]
    assert det.converged_epoch == 5


def test_abs_and_rel_modes_differ_on_small_values() -> None:
    losses = [0.3000, 0.2995, 0.2990, 0.2985]  # moves 0.0005 per epoch, 0.17 % of 0.3
    absolute = ConvergenceDetector(threshold=0.001, patience=2, metric="test_loss")
    relative = ConvergenceDetector(threshold=0.001, patience=2, metric="test_loss", mode="rel")
    feed(absolute, losses)
    feed(relative, losses)
    assert absolute.converged_epoch == 3
    assert not relative.converged


def test_abs_and_rel_modes_differ_on_large_values() -> None:
    losses = [10.000, 10.005, 10.010, 10.015]  # moves 0.005 per epoch, 0.05 % of 10
    absolute = ConvergenceDetector(threshold=0.001, patience=2, metric="test_loss")
    relative = ConvergenceDetector(threshold=0.001, patience=2, metric="test_loss", mode="rel")
    feed(absolute, losses)
    feed(relative, losses)
    assert not absolute.converged
    assert relative.converged_epoch == 3
    assert "(relative)" in relative.reason


def test_rel_mode_with_a_zero_reference_does_not_divide_by_zero() -> None:
    det = ConvergenceDetector(threshold=0.5, patience=1, mode="rel", metric="test_loss")
    assert feed(det, [0.0, 0.0, 1e-3]) == [False, True, True]


def creeping(n: int) -> list[float]:
    return [0.80 + 0.0005 * i for i in range(n)]  # gains 0.05 point per epoch, for ever


def test_creeping_metric_converges_against_previous_epoch() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=3, reference="previous")
    feed(det, creeping(40))
    assert det.converged_epoch == 4


def test_creeping_metric_does_not_converge_against_best() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=3, reference="best")
    feed(det, creeping(40))
    assert not det.converged
    assert "from the best so far" in det.reason


def test_best_reference_counts_a_drop_as_no_progress() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=3, reference="best")
    # peaks at epoch 2, then only worse or within 0.001 of the peak
    feed(det, [0.80, 0.85, 0.84, 0.8505, 0.83])
    assert det.converged_epoch == 5


def test_best_reference_follows_the_goal_for_losses() -> None:
    falling = [1.0, 0.8, 0.6, 0.4, 0.2]
    as_loss = ConvergenceDetector(threshold=0.001, patience=2, metric="test_loss", reference="best")
    assert as_loss.goal == "min"
    feed(as_loss, falling)
    assert not as_loss.converged  # every epoch improves the loss by 0.2
    wrong_way = ConvergenceDetector(
        threshold=0.001, patience=2, metric="test_loss", reference="best", goal="max"
    )
    feed(wrong_way, falling)
    assert wrong_way.converged_epoch == 3  # read as a score, it never improves


@pytest.mark.parametrize(
    ("metric", "goal"), [("test_accuracy", "max"), ("test_loss", "min"), ("train_loss", "min")]
)
def test_goal_is_inferred_from_the_metric(metric: str, goal: str) -> None:
    assert ConvergenceDetector(metric=metric).goal == goal  # type: ignore[arg-type]


def test_divergence_is_never_convergence() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=1, metric="train_loss", stop=False)
    assert feed(det, [0.5, 0.5, math.inf, 0.5, 0.5]) == [False, True, False, False, False]
    assert not det.converged and det.converged_epoch is None
    assert det.diverged_epoch == 3
    assert det.reason == (
        "train_loss became non-finite at epoch 3; a diverged run never counts as converged"
    )


def test_nan_marks_divergence_too() -> None:
    det = ConvergenceDetector(patience=1)
    feed(det, [0.5, math.nan])
    assert det.diverged_epoch == 2 and not det.converged


def test_explicit_epoch_numbers_are_used() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=1)
    det.update(0.8, epoch=11)
    det.update(0.8, epoch=12)
    assert det.converged_epoch == 12 and det.epochs_seen == 12


def test_state_dict_round_trip_continues_identically() -> None:
    values = noisy_plateau(12)
    whole = ConvergenceDetector(threshold=0.001, patience=3, window=3, reference="best")
    expected = feed(whole, values)
    first = ConvergenceDetector(threshold=0.001, patience=3, window=3, reference="best")
    got = feed(first, values[:5])
    state = json.loads(json.dumps(first.state_dict()))  # JSON-ready
    second = ConvergenceDetector(threshold=0.001, patience=3, window=3, reference="best")
    second.load_state_dict(state)
    got += feed(second, values[5:])
    assert got == expected
    assert second.state_dict() == whole.state_dict()


def test_load_state_dict_rejects_foreign_state() -> None:
    det = ConvergenceDetector()
    with pytest.raises(ConfigError, match="state is missing window_values, values_seen"):
        det.load_state_dict({"converged_epoch": 3})
    wide = ConvergenceDetector(window=3)
    feed(wide, [0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="holds 3 window values but window=1"):
        det.load_state_dict(wide.state_dict())


def test_reset_forgets_everything() -> None:
    det = ConvergenceDetector(patience=1)
    feed(det, [0.8, 0.8, math.nan])
    det.reset()
    assert det.state_dict() == ConvergenceDetector(patience=1).state_dict()
    assert feed(det, [0.8, 0.8]) == [False, True]


def test_update_cost_is_negligible_for_a_long_run() -> None:
    det = ConvergenceDetector(threshold=1e-9, patience=3, window=5, reference="best")
    values = [0.5 + 0.4 * (1 - math.exp(-i / 100)) for i in range(6000)]
    start = time.perf_counter()
    feed(det, values)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"6000 updates took {elapsed:.3f} s"  # ~10 us each at most


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0}, r"threshold must be a finite number > 0, got 0;"),
        ({"threshold": -0.1}, r"threshold must be a finite number > 0, got -0.1"),
        ({"threshold": math.nan}, r"threshold must be a finite number > 0, got nan"),
        ({"threshold": "0.1"},
         r"threshold must be a finite number > 0, got '0.1'; for accuracy it is a fraction"),
        ({"patience": 0}, r"patience must be an integer >= 1, got 0"),
        ({"patience": 2.5}, r"patience must be an integer >= 1, got 2.5"),
        ({"patience": True}, r"patience must be an integer >= 1, got True"),
        ({"window": 0}, r"window must be an integer >= 1, got 0"),
        ({"min_epochs": -1}, r"min_epochs must be an integer >= 1, got -1"),
        (  # _checks.check_choice's wording, with its did-you-mean hint on a near miss
            {"metric": "accuracy"},
            r"unknown metric 'accuracy'; did you mean 'val_accuracy'\? choose one of "
            r"'test_accuracy', 'test_loss', 'train_loss', 'val_accuracy', 'val_loss'$",
        ),
        ({"mode": "pct"}, r"unknown mode 'pct'; choose one of 'abs', 'rel'$"),
        ({"mode": "ab"}, r"unknown mode 'ab'; did you mean 'abs'\? choose one of 'abs', 'rel'"),
        ({"reference": "first"}, r"unknown reference 'first'; choose one of 'previous', 'best'"),
        ({"goal": "up"}, r"unknown goal 'up'; choose one of 'max', 'min'"),
        ({"goal": 1}, r"unknown goal 1; choose one of 'max', 'min'"),
    ],
)
def test_invalid_arguments_name_argument_and_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConvergenceDetector(**kwargs)


# -- the callback adapter -------------------------------------------------------------------


def make_run(epochs: int = 20) -> RunContext:
    torch.manual_seed(0)
    history = History(metadata={"model": "tiny", "lr": 0.1})
    history.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
    return RunContext(model=torch.nn.Linear(3, 2), history=history, epochs=epochs)


def drive(
    det: ConvergenceDetector, run: RunContext, accs: list[float], status: str = "completed"
) -> None:
    """Play the Trainer's part: hooks in order, stopping when asked."""
    det.on_fit_start(run)
    for epoch, acc in enumerate(accs, start=1):
        run.epoch = epoch
        record = EpochRecord(epoch, 0.5, 0.4, acc, 1.0)
        run.history.append(record)
        det.on_epoch_end(run, record)
        if run.stop_requested:
            run.history.status, run.history.reason = run.stop_status, run.stop_reason
            break
    else:
        run.history.status = status  # type: ignore[assignment]
    det.on_fit_end(run, run.history)


def test_adapter_stops_the_run_as_converged() -> None:
    run = make_run()
    det = ConvergenceDetector(threshold=0.001, patience=2)
    drive(det, run, [0.70, 0.80, 0.8005, 0.8008, 0.8009, 0.8010])
    assert run.stop_requested and run.stop_status == "converged"
    assert run.history.status == "converged" and run.history.epochs_trained == 4
    assert run.history.reason == det.reason
    assert run.history.convergence == ConvergenceVerdict(4, 4, det.reason)
    assert run.history.describe_status() == "converged at epoch 4"
    # the metadata mirror, for code that reads the verdict there
    assert run.history.metadata["converged_epoch"] == 4
    assert "not_converged_within" not in run.history.metadata


def test_adapter_with_stop_false_keeps_converged_epoch_apart_from_the_end() -> None:
    run = make_run()
    det = ConvergenceDetector(threshold=0.001, patience=2, stop=False)
    drive(det, run, [0.70, 0.80, 0.8005, 0.8008, 0.8009, 0.8010])
    assert not run.stop_requested
    assert run.history.epochs_trained == 6 and det.epochs_seen == 6
    assert det.converged_epoch == 4 and run.history.convergence == det.verdict
    assert det.verdict.epoch == 4 and det.verdict.epochs_watched == 6
    assert run.history.metadata["converged_epoch"] == 4


def test_adapter_reports_not_converged_within_the_budget() -> None:
    run = make_run(epochs=5)
    det = ConvergenceDetector(threshold=0.001, patience=2)
    drive(det, run, [0.5, 0.6, 0.7, 0.8, 0.9])
    assert not det.converged
    assert det.reason.startswith("not converged within 5 epochs")
    assert run.history.convergence == ConvergenceVerdict(None, 5, det.reason)
    assert run.history.metadata["not_converged_within"] == 5
    assert run.history.describe_status() == "not converged within 5"


def test_adapter_on_a_diverged_run() -> None:
    run = make_run()
    det = ConvergenceDetector(threshold=0.001, patience=1, stop=False)
    run.history.diverged_epoch = 4  # the trainer sets it when epoch 4's loss turns NaN
    drive(det, run, [0.80, 0.80, 0.80], status="diverged")  # converged at 2, then diverged
    assert not det.converged and det.converged_epoch is None
    assert det.reason == "the run diverged at epoch 4; a diverged run never counts as converged"
    assert run.history.convergence == ConvergenceVerdict(None, 3, det.reason)
    assert "converged_epoch" not in run.history.metadata
    assert "not_converged_within" not in run.history.metadata


def test_adapter_watches_the_chosen_metric() -> None:
    run = make_run()
    det = ConvergenceDetector(threshold=0.01, patience=1, metric="train_loss")
    det.on_fit_start(run)
    for epoch, loss in enumerate([1.0, 0.5, 0.495], start=1):
        det.on_epoch_end(run, EpochRecord(epoch, loss, 9.0 - epoch, 0.1 * epoch, 1.0))
    assert det.converged_epoch == 3  # accuracy and test loss kept moving; train loss did not


def test_restore_best_loads_the_best_epochs_weights() -> None:
    run = make_run()
    det = ConvergenceDetector(threshold=1e-9, patience=5, restore_best=True)
    det.on_fit_start(run)
    for epoch, acc in enumerate([0.6, 0.9, 0.7, 0.8], start=1):
        with torch.no_grad():
            for p in run.model.parameters():
                p.fill_(float(epoch))  # the weights "learned" in this epoch
        record = EpochRecord(epoch, 0.5, 0.4, acc, 1.0)
        run.history.append(record)
        det.on_epoch_end(run, record)
    run.history.status = "completed"
    det.on_fit_end(run, run.history)
    assert det.best_epoch == 2 and det.restored_epoch == 2
    for p in run.model.parameters():
        torch.testing.assert_close(p.detach(), torch.full_like(p, 2.0))
    assert run.history.convergence is not None
    assert run.history.convergence.restored_best_epoch == 2
    assert run.history.metadata["restored_best_epoch"] == 2


def test_fit_start_resets_but_a_resumed_run_keeps_its_state() -> None:
    det = ConvergenceDetector(threshold=0.001, patience=2)
    drive(det, make_run(), [0.8, 0.8005, 0.9])
    state = det.state_dict()
    fresh = make_run()
    det.on_fit_start(fresh)  # a new run: nothing carried over
    assert det.epochs_seen == 0
    resumed = make_run()
    for epoch in (1, 2, 3):
        resumed.history.append(EpochRecord(epoch, 0.5, 0.4, 0.8, 1.0))
    det.load_state_dict(state)
    det.on_fit_start(resumed)
    assert det.epochs_seen == 3


# -- on the real data -----------------------------------------------------------------------


def rule_by_hand(accs: list[float], threshold: float, patience: int, window: int) -> int | None:
    """The documented rule, written out plainly: the oracle for the integration test."""
    smoothed = [sum(accs[i - window + 1 : i + 1]) / window for i in range(window - 1, len(accs))]
    streak = 0
    for k in range(1, len(smoothed)):
        streak = streak + 1 if abs(smoothed[k] - smoothed[k - 1]) < threshold else 0
        if streak >= patience:
            return k + window  # smoothed[k] belongs to epoch k + window (1-based)
    return None


@pytest.mark.integration
def test_base_lr_0_1_reports_its_verdict_honestly(real_data) -> None:
    from fmclassify.registry import build_model
    from fmclassify.training import Trainer

    train, test = real_data
    train, test = train.subset(3000), test.subset(1000)
    det = ConvergenceDetector(threshold=0.001, patience=3, window=3)
    budget = 6  # the earliest possible verdict: 3 epochs fill the window, 3 more of patience
    trainer = Trainer(
        build_model("base", seed=0),
        lr=0.1,
        epochs=budget,
        seed=0,
        device="cpu",
        callbacks=[det],
        progress=False,
    )
    history = trainer.fit(train, test)
    accs = history.column("test_accuracy")
    expected = rule_by_hand(accs, 0.001, 3, 3)
    if expected is None:
        assert history.status == "completed" and not det.converged
        assert history.epochs_trained == budget
        assert det.reason.startswith(f"not converged within {budget} epochs")
        assert history.describe_status().startswith(f"not converged within {budget}")
    else:
        assert history.status == "converged" and det.converged_epoch == expected
        assert history.epochs_trained == expected  # stop=True: it stopped there
        assert history.describe_status() == f"converged at epoch {expected}"


def test_copy_of_detector_is_independent() -> None:
    det = ConvergenceDetector(patience=1)
    feed(det, [0.8])
    twin = copy.deepcopy(det)
    feed(twin, [0.8])
    assert twin.converged and not det.converged


def test_a_trainer_run_keeps_the_verdict_typed_and_through_its_json(tiny_data, tmp_path) -> None:
    from fmclassify.registry import build_model
    from fmclassify.training import Trainer

    det = ConvergenceDetector(threshold=0.05, patience=1)
    model = build_model("base", num_classes=4, image_size=8, seed=0)
    history = Trainer(model, lr=0.5, epochs=4, batch_size=32, callbacks=[det],
                      progress=False).fit(*tiny_data)
    assert history.status == "converged"
    assert history.convergence == det.verdict
    assert history.convergence.epoch == det.converged_epoch == history.epochs_trained
    assert history.convergence.reason == history.reason  # the sentence the run stopped with
    assert History.from_json(history.to_json(tmp_path / "h.json")) == history


def test_resuming_a_run_that_had_converged_keeps_its_verdict(tiny_data, tmp_path) -> None:
    from fmclassify.registry import build_model
    from fmclassify.training import Trainer

    def fit(resume: bool) -> History:
        det = ConvergenceDetector(threshold=0.05, patience=1)
        model = build_model("base", num_classes=4, image_size=8, seed=0)
        return Trainer(model, lr=0.5, epochs=4, batch_size=32, callbacks=[det], progress=False,
                       checkpoint=tmp_path / "run.ckpt").fit(*tiny_data, resume=resume)

    first = fit(resume=False)
    again = fit(resume=True)  # the checkpoint holds an ended run: nothing trains
    assert again.status == "converged" and again.convergence == first.convergence
