"""Runs trained together on the CPU: one Python thread per intra-op thread, one core each."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

import fmclassify as fmc
from fmclassify import _together
from fmclassify._fused import FusedMLP
from fmclassify._together import can_train_together, fit_together, workers_for
from fmclassify.training import Trainer, TrainingInterrupted
from helpers import make_dataset

LRS = (0.5, 1e6, 0.05, 0.01)  # 1e6 diverges in epoch 1, in the second (worker) thread's group


@pytest.fixture
def data():
    return make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")


@pytest.fixture
def threads():
    """Two intra-op threads (so two groups) for the test, whatever the machine has."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def trainers(lrs=LRS, epochs=3, tmp_path=None, seeds=None, batch_size=32, callbacks=()):
    seeds = seeds or [0] * len(lrs)
    return [Trainer(fmc.build_model("base", num_classes=4, in_channels=1, image_size=8,
                                    seed=seed),
                    lr=lr, epochs=epochs, batch_size=batch_size, progress=False, device="cpu",
                    seed=seed, callbacks=callbacks,
                    checkpoint=None if tmp_path is None else tmp_path / f"{i}.pt")
            for i, (lr, seed) in enumerate(zip(lrs, seeds, strict=True))]


def same_runs(together, histories, alone):
    """Each run trained together equals its twin trained alone, bit for bit."""
    for t, h, a in zip(together, histories, alone, strict=True):
        ref = a.fit(*a._data)
        assert h.status == ref.status and h.diverged_epoch == ref.diverged_epoch
        assert [(r.epoch, r.train_loss, r.test_loss, r.test_accuracy) for r in h.records] == [
            (r.epoch, r.train_loss, r.test_loss, r.test_accuracy) for r in ref.records]
        # a diverged run holds the weights where it diverged, NaN included, as alone
        torch.testing.assert_close(weights(t), weights(a), rtol=0, atol=0, equal_nan=True)
        assert torch.equal(t._gen.get_state(), a._gen.get_state())  # resumes alike


def weights(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def test_workers_follow_the_intra_op_threads(threads):
    assert workers_for(torch.device("cpu"), 4) == 2
    assert workers_for(torch.device("cpu"), 1) == 1
    assert workers_for(torch.device("cuda"), 4) == 1  # one batched pass on a GPU


def test_threads_equal_one_thread_runs_alone_bit_for_bit(data, threads):
    together = trainers()
    histories = fit_together(together, *data)
    assert torch.get_num_threads() == 2  # restored after each epoch
    torch.set_num_threads(1)  # each worker trains with one intra-op thread
    alone = trainers()
    for a in alone:
        a._data = data
    same_runs(together, histories, alone)
    assert histories[1].status == "diverged" and histories[1].diverged_epoch == 1
    assert all(h.metadata["trained_together"] == 4 for h in histories)


@pytest.mark.parametrize("lockstep", [False, True])
def test_seeds_train_together_on_their_own_batches(data, threads, monkeypatch, lockstep):
    """Runs of other seeds (other weights, other batch orders) also train together; the
    lockstep path (the GPU's) stacks each run's batch into one (K, B, ...) tensor."""
    monkeypatch.setattr(_together, "_LOCKSTEP_ON_CPU", lockstep)
    kw = {"lrs": (0.5, 0.5, 0.05, 0.05, 0.05), "seeds": [0, 1, 0, 1, 2]}
    together = trainers(**kw)
    histories = fit_together(together, *data)
    torch.set_num_threads(1)
    alone = trainers(**kw)
    for a in alone:
        a._data = data
    same_runs(together, histories, alone)
    assert histories[0].records[-1].test_loss != histories[1].records[-1].test_loss


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_one_thread_trains_all_runs_in_this_thread(data, one_thread, monkeypatch):
    seen = set()
    step = FusedMLP.step

    def spy(self, x, y):
        seen.add(threading.current_thread() is threading.main_thread())
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", spy)
    fit_together(trainers(epochs=1), *data)
    assert seen == {True}


def interrupt_main_thread_at(monkeypatch, steps: int) -> None:
    """Ctrl-C arrives in the main thread after ``steps`` of its engine's steps."""
    step, count = FusedMLP.step, [0]

    def ctrl_c(self, x, y):
        if threading.current_thread() is threading.main_thread():
            count[0] += 1
            if count[0] > steps:
                raise KeyboardInterrupt
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", ctrl_c)


def test_ctrl_c_keeps_the_finished_epochs_and_resumes_alike(data, threads, tmp_path,
                                                                  monkeypatch):
    lrs = (0.5, 0.05, 0.01)
    # This thread trains runs 0 and 2, 8 steps each per epoch: Ctrl-C comes in epoch 2.
    interrupt_main_thread_at(monkeypatch, 2 * 8 + 3)
    before = threading.active_count()
    runs = trainers(lrs, epochs=3, tmp_path=tmp_path)
    with pytest.raises(TrainingInterrupted):
        fit_together(runs, *data)
    assert threading.active_count() == before  # no worker left running
    assert torch.get_num_threads() == 2
    assert [t.history.status for t in runs] == ["interrupted"] * 3
    assert [t.history.epochs_trained for t in runs] == [1, 1, 1]
    monkeypatch.undo()
    resumed = trainers(lrs, epochs=3, tmp_path=tmp_path)
    histories = fit_together(resumed, *data, resume=True)
    straight = trainers(lrs, epochs=3)
    fit_together(straight, *data)
    for a, b, h in zip(resumed, straight, histories, strict=True):
        assert h.status == "completed" and h.epochs_trained == 3
        assert torch.equal(weights(a), weights(b))


def test_an_error_in_a_worker_propagates_and_restores_the_threads(data, threads, monkeypatch):
    step = FusedMLP.step

    def broken(self, x, y):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("worker failed")
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        fit_together(trainers((0.5, 0.05), epochs=2), *data)
    assert torch.get_num_threads() == 2


def test_groups_are_dealt_out_from_the_active_runs(data, threads, monkeypatch):
    groups = []
    train_group = _together._train_group

    def record(group, *args, **kwargs):
        groups.append(tuple(group.members))
        return train_group(group, *args, **kwargs)

    monkeypatch.setattr(_together, "_train_group", record)
    fit_together(trainers(LRS, epochs=2), *data)
    # Epoch 1: four runs dealt to two groups; epoch 2: the three left (1e6 diverged).
    assert sorted(groups) == [(0, 2), (0, 3), (1, 3), (2,)]


def test_lockstep_with_batched_ops_matches_runs_alone(data, one_thread, monkeypatch):
    """The GPU's path on a CPU: one engine, bmm over the stacked weights, per-seed batches."""
    monkeypatch.setattr(_together, "_LOCKSTEP_ON_CPU", True)
    monkeypatch.setattr(_together, "FusedMLP",
                        lambda models, lrs: FusedMLP(models, lrs, batched=True))
    kw = {"lrs": (0.5, 1e6, 0.05, 0.05), "seeds": [0, 0, 1, 2]}
    together = trainers(**kw)
    histories = fit_together(together, *data)
    alone = trainers(**kw)
    for t, h, a in zip(together, histories, alone, strict=True):
        ref = a.fit(*data)
        assert h.status == ref.status and h.diverged_epoch == ref.diverged_epoch
        if h.status != "diverged":
            torch.testing.assert_close(weights(t), weights(a), rtol=0, atol=1e-5)
            assert h.records[-1].test_loss == pytest.approx(ref.records[-1].test_loss, rel=1e-4)
        assert torch.equal(t._gen.get_state(), a._gen.get_state())
    assert histories[1].status == "diverged"


def test_divergence_found_mid_epoch_matches_a_run_alone(data, threads):
    """64 steps per epoch: a diverged run is set aside at the check after step 33, as alone."""
    kw = {"lrs": (0.05, 1e6, 0.01, 1e6), "epochs": 2, "batch_size": 4}
    together = trainers(**kw)
    histories = fit_together(together, *data)
    assert [h.status for h in histories] == ["completed", "diverged"] * 2
    assert "step 33" in histories[1].reason  # found by the check inside the epoch
    torch.set_num_threads(1)
    alone = trainers(**kw)
    for a in alone:
        a._data = data
    same_runs(together, histories, alone)


def test_workers_train_with_one_intra_op_thread(data, threads, monkeypatch):
    seen = {}
    step = FusedMLP.step

    def spy(self, x, y):
        seen.setdefault(threading.current_thread().name, set()).add(torch.get_num_threads())
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", spy)
    fit_together(trainers(epochs=1), *data)
    assert len(seen) == 2 and all(v == {1} for v in seen.values())
    assert torch.get_num_threads() == 2


def test_runs_sharing_one_model_are_not_trained_together(data):
    a, b = trainers((0.1, 0.01))
    b.model = a.model
    assert can_train_together([a, b]) == "two runs share one model object"


def slowed(monkeypatch, in_main: bool, seconds: float = 0.01, fail: bool = False) -> list:
    """Slow (or break) FusedMLP.step in the main thread or in the others; count their steps."""
    step, counted = FusedMLP.step, []

    def slow(self, x, y):
        if (threading.current_thread() is threading.main_thread()) == in_main:
            counted.append(1)
            if fail:
                raise RuntimeError("worker failed")
            time.sleep(seconds)
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", slow)
    return counted


def test_ctrl_c_stops_the_other_threads_at_their_next_step(data, threads, monkeypatch):
    worker_steps = slowed(monkeypatch, in_main=False)  # 10 ms a step in the worker
    step = FusedMLP.step
    main_steps = [0]

    def ctrl_c(self, x, y):
        if threading.current_thread() is threading.main_thread():
            main_steps[0] += 1
            if main_steps[0] == 3:
                raise KeyboardInterrupt
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", ctrl_c)
    with pytest.raises(TrainingInterrupted):
        fit_together(trainers((0.5, 0.05), epochs=1), *data)
    assert len(worker_steps) < 8  # not its epoch's 8 steps: it stopped at the Ctrl-C


def test_an_error_in_a_worker_stops_this_thread_too(data, threads, monkeypatch):
    main_steps = slowed(monkeypatch, in_main=True)  # 10 ms a step here
    step = FusedMLP.step

    def broken(self, x, y):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("worker failed")
        return step(self, x, y)

    monkeypatch.setattr(FusedMLP, "step", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        fit_together(trainers((0.5, 0.05), epochs=2), *data)
    assert len(main_steps) < 8  # not the whole epoch


def test_ctrl_c_while_epochs_are_recorded_waits_until_all_are(data, threads, tmp_path):
    """SIGINT during the bookkeeping (a callback, a checkpoint) is held until every run has
    recorded the epoch: all runs stop at the same epoch and resume together."""
    class CtrlCAtEpochOne(fmc.CallbackBase):
        needs_gradients = False
        sent = False

        def on_epoch_end(self, run, record):
            if record.epoch == 1 and not CtrlCAtEpochOne.sent:
                CtrlCAtEpochOne.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    lrs = (0.5, 0.05, 0.01)
    runs = trainers(lrs, epochs=3, tmp_path=tmp_path, callbacks=[CtrlCAtEpochOne()])
    with pytest.raises(TrainingInterrupted):
        fit_together(runs, *data)
    assert [t.history.status for t in runs] == ["interrupted"] * 3
    assert [t.history.epochs_trained for t in runs] == [1, 1, 1]
    resumed = trainers(lrs, epochs=3, tmp_path=tmp_path)
    assert [h.epochs_trained for h in fit_together(resumed, *data, resume=True)] == [3, 3, 3]
