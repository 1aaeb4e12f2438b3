from __future__ import annotations

import copy
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F

import fmclassify as fmc
from fmclassify.callbacks import CallbackBase
from fmclassify.exceptions import CheckpointError, ConfigError, DataError
from fmclassify.training import TrainingInterrupted
from helpers import make_dataset


def tiny_model(seed=0, classes=4, size=8):
    return fmc.build_model("base", num_classes=classes, image_size=size, seed=seed)


def trainer(model=None, **kw):
    kw = {"lr": 0.1, "epochs": 2, "batch_size": 32, "progress": False, **kw}
    return fmc.Trainer(model if model is not None else tiny_model(), **kw)


def strip_seconds(history):
    return [(r.epoch, r.train_loss, r.test_loss, r.test_accuracy) for r in history.records]


def test_learns_the_synthetic_task(tiny_data):
    h = trainer(epochs=5).fit(*tiny_data)
    assert h.status == "completed"
    assert h.records[0].epoch == 0 and h.records[0].train_loss is None
    assert h.final_accuracy > 0.9 > h.records[0].test_accuracy
    assert h.epochs_trained == 5
    assert h.metadata["parameters"] == sum(p.numel() for p in tiny_model().parameters())
    assert h.metadata["seed"] == 0 and h.metadata["lr"] == 0.1
    assert h.metadata["data_checksum"].startswith("synthetic-0")
    assert {"torch", "torchvision", "fmclassify", "python"} <= set(h.metadata["versions"])


def test_same_seed_same_numbers_different_seed_different(tiny_data):
    a, b, c = (trainer(tiny_model(), seed=s) for s in (3, 3, 4))
    ha, hb, hc = a.fit(*tiny_data), b.fit(*tiny_data), c.fit(*tiny_data)
    assert strip_seconds(ha) == strip_seconds(hb)
    assert strip_seconds(ha) != strip_seconds(hc)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=False):
        assert torch.equal(pa, pb)


def hand_loop(model, train, epochs=1, lr=0.1, batch=32):
    """The quickstart's loop over the data in order: the oracle for the Trainer."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = train.images.float() / 255, train.labels
    losses = []
    for _ in range(epochs):
        for i in range(0, len(y), batch):
            loss = F.cross_entropy(model(x[i:i + batch]), y[i:i + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def test_autograd_step_equals_a_hand_written_loop_bit_for_bit(tiny_data):
    train, test = tiny_data
    model = tiny_model()
    oracle = copy.deepcopy(model)
    h = trainer(model, epochs=1, shuffle=False, step="autograd").fit(train, test)
    assert h.metadata["step"] == "autograd"
    hand_loop(oracle, train)
    for p, q in zip(model.parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_fused_step_equals_a_hand_written_loop_within_rounding(tiny_data):
    train, test = tiny_data
    model = tiny_model()
    oracle = copy.deepcopy(model)
    h = trainer(model, epochs=3, shuffle=False).fit(train, test)
    assert h.metadata["step"] == "fused"
    losses = hand_loop(oracle, train, epochs=3)
    assert h.trained[-1].train_loss == pytest.approx(sum(losses[-8:]) / 8, rel=1e-4)
    for p, q in zip(model.parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_fused_runs_are_repeatable_bit_for_bit(tiny_data):
    a = trainer(tiny_model(), epochs=2).fit(*tiny_data)
    b = trainer(tiny_model(), epochs=2).fit(*tiny_data)
    assert strip_seconds(a) == strip_seconds(b)


def test_gradient_tracer_epochs_use_autograd_then_fused(tiny_data):
    tracer = fmc.GradientTracer(steps=3)
    model = tiny_model()
    oracle = copy.deepcopy(model)
    trainer(model, epochs=2, shuffle=False, callbacks=[tracer]).fit(*tiny_data)
    assert tracer.steps_recorded == 3
    hand_loop(oracle, tiny_data[0], epochs=2)
    for p, q in zip(model.parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_shuffle_is_seeded_and_differs_from_quickstart_order(tiny_data):
    shuffled = trainer(epochs=1, shuffle=True).fit(*tiny_data)
    ordered = trainer(epochs=1, shuffle=False).fit(*tiny_data)
    assert strip_seconds(shuffled) != strip_seconds(ordered)


def test_huge_lr_ends_diverged_without_nan_in_records(tiny_data):
    h = trainer(lr=1e6, epochs=3).fit(*tiny_data)
    assert h.status == "diverged"
    assert h.diverged_epoch == 1
    assert "non-finite" in h.reason and "lr 1e+06" in h.reason
    assert all(r.train_loss is None or math.isfinite(r.train_loss) for r in h.records)
    assert h.epochs_trained == 0 and h.describe_status() == "diverged at epoch 1"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lr": 0}, r"lr must be a finite number > 0, got 0"),
    ({"lr": -0.1}, r"lr must be a finite number > 0, got -0.1"),
    ({"lr": float("nan")}, r"lr must be a finite number > 0, got nan"),
    ({"lr": "0.1"}, r"lr must be a finite number > 0, got '0.1'"),
    ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
    ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
    ({"optimizer": "sgdd"}, r"unknown optimizer 'sgdd'; did you mean 'sgd'\? choose one of "
                            r"'sgd', 'adam', 'adamw', or a callable"),
    ({"momentum": 1.0}, r"momentum must be >= 0 and < 1, got 1.0"),
    ({"nesterov": True}, r"nesterov=True needs optimizer='sgd' with momentum > 0"),
    ({"weight_decay": -1}, r"weight_decay must be a finite number >= 0, got -1"),
    ({"schedule": "cosin"}, r"unknown schedule 'cosin'; did you mean 'cosine'\?"),
    ({"warmup_epochs": 2}, r"warmup_epochs \(2\) must be smaller than epochs \(2\)"),
    ({"label_smoothing": 1.0}, r"label_smoothing must be a number in \[0, 1\), got 1.0"),
    ({"clip_grad_norm": 0}, r"clip_grad_norm must be a finite number > 0, got 0"),
    ({"augment": ["flipp"]}, r"unknown augmentation 'flipp'; did you mean 'flip'\?"),
    ({"val_split": 1.5}, r"val_split must be a fraction in \(0, 1\) or a count >= 1, got 1.5"),
    ({"val_split": 0}, r"val_split must be a fraction in \(0, 1\) or a count >= 1, got 0"),
    ({"precision": "fp16"}, r"unknown precision 'fp16'; .*choose one of 'fp32', 'bf16'"),
    ({"ema": 1.0}, r"ema must be a number strictly between 0 and 1, got 1.0"),
    ({"step": "fastest"}, r"unknown step 'fastest'; choose one of 'auto', 'autograd'"),
    ({"step": "fused", "momentum": 0.9}, r"step='fused' cannot train this run: the recipe is "
                                         r"not plain SGD"),
    ({"seed": "x"}, r"seed must be an integer"),
    ({"device": "tpu9"}, r"unknown device 'tpu9'"),
    ({"callbacks": [object()]}, r"lacks the hooks .* subclass fmclassify.CallbackBase"),
])
def test_bad_configuration_fails_before_training(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        trainer(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_says_so():
    with pytest.raises(ConfigError, match="no GPU is available; use device='auto' or 'cpu'"):
        trainer(device="cuda")


def test_wrong_image_shape_fails_with_a_fix():
    train = make_dataset(64, size=8, channels=3)
    test = make_dataset(32, size=8, channels=3, seed=1)
    with pytest.raises(DataError, match=r"images of shape \(3, 8, 8\) do not fit model 'base'.*"
                                        r"build_model\('base', in_channels=3, image_size=8\)"):
        trainer().fit(train, test)


def test_class_count_mismatch_fails(tiny_data):
    model = fmc.build_model("base", num_classes=10, image_size=8)
    with pytest.raises(DataError, match="outputs shape \\(2, 10\\) but synthetic has 4 classes; "
                                        "build it with num_classes=4"):
        trainer(model).fit(*tiny_data)


def test_train_and_test_must_share_a_shape():
    with pytest.raises(DataError, match=r"train images are \(1, 8, 8\) but test images are"):
        trainer().fit(make_dataset(32), make_dataset(32, size=12, seed=1))


def test_non_dataset_input_is_refused(tiny_data):
    with pytest.raises(DataError, match="train must be an ImageDataset"):
        trainer().fit(torch.zeros(3), tiny_data[1])


def test_second_fit_raises(tiny_data):
    t = trainer(epochs=1)
    t.fit(*tiny_data)
    with pytest.raises(ConfigError, match="already ran fit"):
        t.fit(*tiny_data)


class Recorder(CallbackBase):
    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def on_fit_start(self, run):
        self.events.append(("start", run.epoch))

    def on_after_backward(self, run):
        assert all(p.grad is not None for p in run.model.parameters())
        self.events.append(("backward", run.step))

    def on_epoch_end(self, run, record):
        self.events.append(("epoch", record.epoch))
        if record.epoch == self.stop_at:
            run.request_stop("enough", status="stopped")

    def on_fit_end(self, run, history):
        self.events.append(("end", history.status))


def test_callback_hooks_order_and_stop(tiny_data):
    rec = Recorder(stop_at=2)
    h = trainer(epochs=5, callbacks=[rec]).fit(*tiny_data)
    steps_per_epoch = math.ceil(256 / 32)
    assert rec.events[0] == ("start", 0)
    assert [e for e in rec.events if e[0] == "epoch"] == [("epoch", 1), ("epoch", 2)]
    assert sum(e[0] == "backward" for e in rec.events) == 2 * steps_per_epoch
    assert rec.events[-1] == ("end", "stopped")
    assert h.status == "stopped" and h.reason == "enough" and h.epochs_trained == 2


def test_evaluate_matches_history(tiny_data):
    t = trainer(epochs=1)
    h = t.fit(*tiny_data)
    loss, acc = t.evaluate(tiny_data[1])
    assert (loss, acc) == pytest.approx((h.records[-1].test_loss, h.records[-1].test_accuracy))


# -- interrupts and checkpoints ----------------------------------------------------------------

class Interrupt(CallbackBase):
    def __init__(self, at_step, how="keyboard"):
        self.at_step, self.how = at_step, how

    def on_after_backward(self, run):
        if run.step == self.at_step:
            if self.how == "keyboard":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("how", ["keyboard", "sigterm"])
def test_interrupt_keeps_finished_epochs(tiny_data, tmp_path, how):
    before = signal.getsignal(signal.SIGTERM)
    ckpt = tmp_path / "run.ckpt"
    t = trainer(epochs=4, callbacks=[Interrupt(at_step=8 * 2 + 3, how=how)], checkpoint=ckpt)
    with pytest.raises(TrainingInterrupted) as info:
        t.fit(*tiny_data)
    h = info.value.history
    assert h.status == "interrupted" and h.epochs_trained == 2
    assert info.value.signum == (signal.SIGINT if how == "keyboard" else signal.SIGTERM)
    saved = fmc.History.from_dict(torch.load(ckpt, weights_only=True)["history"])
    assert saved.epochs_trained == 2  # the state of the last finished epoch
    assert signal.getsignal(signal.SIGTERM) is before  # the handler restored, not leaked


def test_sigterm_handler_set_outside_python_is_replaced_by_the_default(monkeypatch):
    from fmclassify import training

    real = signal.signal
    calls = []

    def fake(sig, handler):
        calls.append(handler)
        previous = real(sig, handler)
        return None if len(calls) == 1 else previous  # as for a handler installed from C

    monkeypatch.setattr(training.signal, "signal", fake)
    with training.sigterm_as_interrupt():
        pass
    monkeypatch.undo()
    assert calls[-1] is signal.SIG_DFL  # restored to the default, no TypeError
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_resume_equals_an_uninterrupted_run(tiny_data, tmp_path):
    # The interrupting callback needs a per-step hook, so all three runs use autograd.
    straight = trainer(tiny_model(), epochs=4, step="autograd")
    h_straight = straight.fit(*tiny_data)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(TrainingInterrupted):
        trainer(tiny_model(), epochs=4, checkpoint=ckpt, step="autograd",
                callbacks=[Interrupt(at_step=8 * 2 + 5)]).fit(*tiny_data)
    resumed = trainer(tiny_model(), epochs=4, checkpoint=ckpt, step="autograd")
    h_resumed = resumed.fit(*tiny_data, resume=True)
    assert strip_seconds(h_resumed) == strip_seconds(h_straight)
    assert h_resumed.status == "completed"
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=False):
        assert torch.equal(p, q)


def test_resume_of_a_finished_run_trains_nothing(tiny_data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    first = trainer(epochs=2, checkpoint=ckpt).fit(*tiny_data)
    again = trainer(epochs=2, checkpoint=ckpt).fit(*tiny_data, resume=True)
    assert strip_seconds(again) == strip_seconds(first)


def test_checkpoint_of_another_configuration_is_refused(tiny_data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    trainer(epochs=1, checkpoint=ckpt).fit(*tiny_data)
    with pytest.raises(CheckpointError, match=r"belongs to another run \(lr: checkpoint 0.1, "
                                              r"this run 0.05"):
        trainer(lr=0.05, epochs=2, checkpoint=ckpt).fit(*tiny_data, resume=True)


def test_damaged_checkpoint_is_refused(tiny_data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"cannot be read.*delete it to start afresh"):
        trainer(epochs=1, checkpoint=ckpt).fit(*tiny_data, resume=True)


@pytest.mark.integration
def test_real_data_one_epoch_quickstart_order(real_data):
    train, test = real_data
    h = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=1, shuffle=False,
                    progress=False).fit(train, test)
    assert h.final_accuracy >= 0.78  # the course saw 78.8%


@pytest.mark.integration
def test_real_data_lr_10_diverges_within_the_first_epoch(real_data):
    train, test = real_data
    h = fmc.Trainer(fmc.build_model("base", seed=0), lr=10, epochs=3,
                    progress=False).fit(train, test)
    assert h.status == "diverged" and h.diverged_epoch == 1


@pytest.mark.integration
def test_real_data_ten_epochs_reach_the_course_accuracy(real_data):
    train, test = real_data
    h = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=10, shuffle=False,
                    progress=False).fit(train, test)
    assert h.status == "completed" and h.epochs_trained == 10
    assert h.final_accuracy >= 0.865  # the course saw 87.2%
    assert h.column("train_loss")[-1] < h.column("train_loss")[0]


KILL_SCRIPT = """
import os, signal, sys
import torch
import fmclassify as fmc
torch.set_num_threads(1)  # the resumed and the straight run use one thread too
from fmclassify.callbacks import CallbackBase

class Kill(CallbackBase):
    def on_after_backward(self, run):
        if run.step == {kill_step}:
            os.kill(os.getpid(), signal.SIGKILL)

train, test = fmc.load_dataset("fashion-mnist", root="{root}", download=False)
train, test = train.subset({n_train}), test.subset({n_test})
model = fmc.build_model("base", seed=0)
fmc.Trainer(model, lr=0.1, epochs=4, checkpoint="{ckpt}", progress=False, step="autograd",
            callbacks=[Kill()]).fit(train, test)
"""


@pytest.mark.integration
def test_sigkill_mid_epoch_then_resume_equals_a_straight_run(real_data, tmp_path):
    import subprocess
    import sys

    from conftest import REAL_DATA

    n_train, n_test = 3000, 1000
    steps_per_epoch = math.ceil(n_train / 64)
    ckpt = tmp_path / "run.ckpt"
    script = KILL_SCRIPT.format(kill_step=2 * steps_per_epoch + 10, root=REAL_DATA,
                                n_train=n_train, n_test=n_test, ckpt=ckpt)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert fmc.History.from_dict(
        torch.load(ckpt, weights_only=True)["history"]).epochs_trained == 2

    train, test = real_data[0].subset(n_train), real_data[1].subset(n_test)
    # The killing callback needs a per-step hook, so all three runs use autograd; and one
    # intra-op thread each, since BLAS rounds by the thread count (a run repeats bit for bit
    # with the same seed, device and thread count).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=4,
                              checkpoint=ckpt, progress=False, step="autograd")
        h_resumed = resumed.fit(train, test, resume=True)
        straight = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=4,
                               progress=False, step="autograd")
        h_straight = straight.fit(train, test)
    finally:
        torch.set_num_threads(threads)
    assert strip_seconds(h_resumed) == strip_seconds(h_straight)
    for p, q in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_conv_models_train_channels_last_on_cpu_and_match_nchw(tiny_data):
    train, test = tiny_data
    model = fmc.build_model("deeper", num_classes=4, image_size=8, seed=0)
    model.drop.p = 0.0  # dropout masks would differ between the two loops
    oracle = copy.deepcopy(model)
    t = trainer(model, epochs=1, shuffle=True, device="cpu")
    t.fit(train, test)
    assert model.layer1[0].weight.is_contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(oracle.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    from fmclassify.data import iter_batches

    for xb, yb in iter_batches(train.float_images(), train.labels, 32, shuffle=True,
                               generator=gen):
        loss = F.cross_entropy(oracle(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p, q in zip(model.parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p, q.contiguous(memory_format=torch.channels_last)
                                   if p.ndim == 4 else q, rtol=1e-4, atol=1e-5)
