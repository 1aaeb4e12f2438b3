"""fit_together: several runs' steps as one batched model, each run's loop and History its own."""

from __future__ import annotations

import pytest
import torch

import fmclassify as fmc
from fmclassify.checkpoint import read_checkpoint_history
from fmclassify.exceptions import ConfigError
from helpers import make_dataset

CONFIGS = [(0.1, 0), (0.1, 1), (0.02, 0), (0.02, 1)]  # (lr, seed)


@pytest.fixture
def data():
    return make_dataset(300, seed=0), make_dataset(96, seed=1, split="test")


def trainer(lr, seed, epochs=3, **kw):
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=seed)
    kw.setdefault("batch_size", 32)
    return fmc.Trainer(model, lr=lr, epochs=epochs, seed=seed, progress=False, device="cpu",
                       **kw)


def same_numbers(a, b):
    assert a.status == b.status and a.epochs_trained == b.epochs_trained
    for ra, rb in zip(a.records, b.records, strict=True):
        assert (ra.train_loss, ra.test_loss, ra.test_accuracy) == (
            rb.train_loss, rb.test_loss, rb.test_accuracy)


def test_runs_together_equal_the_runs_alone_bit_for_bit_on_the_cpu(data):
    """300 images at batch 32: a smaller last batch; each run its own seed and batch order."""
    together = [trainer(lr, s) for lr, s in CONFIGS]
    histories = fmc.fit_together(together, *data)
    for t, h, (lr, s) in zip(together, histories, CONFIGS, strict=True):
        alone = trainer(lr, s)
        same_numbers(h, alone.fit(*data))
        for p, q in zip(t.model.parameters(), alone.model.parameters(), strict=True):
            assert torch.equal(p, q)
        assert h.metadata["step"] == "together (4 runs as one batched model)"
        assert h.metadata["lr"] == lr and h.metadata["seed"] == s


def test_a_diverged_run_drops_out_and_the_others_go_on(data):
    configs = [(1e4, 0), *CONFIGS[:2]]
    histories = fmc.fit_together([trainer(lr, s) for lr, s in configs], *data)
    assert histories[0].status == "diverged" and histories[0].diverged_epoch == 1
    for h, (lr, s) in zip(histories[1:], configs[1:], strict=True):
        assert h.status == "completed"
        same_numbers(h, trainer(lr, s).fit(*data))


def test_each_run_stops_on_its_own_callbacks(data):
    def make(lr, s):
        return trainer(lr, s, epochs=12, callbacks=[fmc.ConvergenceDetector(threshold=0.05,
                                                                            patience=1)])

    histories = fmc.fit_together([make(lr, s) for lr, s in CONFIGS], *data)
    alone = [make(lr, s).fit(*data) for lr, s in CONFIGS]
    for h, a in zip(histories, alone, strict=True):
        same_numbers(h, a)
    assert {h.status for h in histories} == {"converged"}


def test_a_gradient_tracer_trains_its_run_alone_while_it_records(data):
    def make(lr, s):
        return trainer(lr, s, callbacks=[fmc.GradientTracer(steps=12)] if s == 0 else [])

    histories = fmc.fit_together([make(lr, s) for lr, s in CONFIGS], *data)
    for h, (lr, s) in zip(histories, CONFIGS, strict=True):
        same_numbers(h, make(lr, s).fit(*data))
    assert histories[0].metadata["step"].endswith("(autograd in epochs where a callback reads "
                                                  "gradients)")


def test_each_run_resumes_from_its_own_checkpoint(data, tmp_path):
    def make(lr, s, epochs):
        return trainer(lr, s, epochs=epochs, checkpoint=tmp_path / f"{lr}-{s}.pt")

    fmc.fit_together([make(lr, s, 2) for lr, s in CONFIGS], *data)
    resumed = fmc.fit_together([make(lr, s, 4) for lr, s in CONFIGS], *data, resume=True)
    for h, (lr, s) in zip(resumed, CONFIGS, strict=True):
        same_numbers(h, trainer(lr, s, epochs=4).fit(*data))


def test_an_interrupt_keeps_every_run_at_its_last_finished_epoch(data, tmp_path):
    class Interrupt(fmc.CallbackBase):
        needs_gradients = False

        def on_epoch_end(self, run, record):
            if record.epoch == 2:
                raise KeyboardInterrupt

    trainers = [trainer(lr, s, epochs=4, checkpoint=tmp_path / f"{lr}-{s}.pt",
                        callbacks=[Interrupt()] if s == 1 else []) for lr, s in CONFIGS]
    with pytest.raises(fmc.TrainingInterrupted) as stop:
        fmc.fit_together(trainers, *data)
    assert stop.value.history is trainers[1].history  # the run that was interrupted
    assert [t.history.status for t in trainers] == ["interrupted"] * 4
    # Run 0 had saved its second epoch before run 1 ended its own; the others stop at their
    # last finished and saved epoch, the first.
    saved = [read_checkpoint_history(tmp_path / f"{lr}-{s}.pt").epochs_trained
             for lr, s in CONFIGS]
    assert saved == [2, 1, 1, 1]
    resumed = [trainer(lr, s, epochs=4, checkpoint=tmp_path / f"{lr}-{s}.pt")
               for lr, s in CONFIGS]
    for h, (lr, s) in zip(fmc.fit_together(resumed, *data, resume=True), CONFIGS, strict=True):
        same_numbers(h, trainer(lr, s, epochs=4).fit(*data))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"momentum": 0.9}, "recipes\\[1\\] has momentum=0.9 but recipes\\[0\\] has 0.0"),
    ({"batch_size": 16}, "the runs differ in batch size"),
    ({"ema": 0.99}, r"a run averages its weights \(ema\)"),
    ({"step": "autograd"}, "a run asks for step='autograd'"),
    ({"val_split": 0.1}, "the runs hold out different validation splits"),
])
def test_runs_that_cannot_train_together_are_refused_before_training(kwargs, message):
    runs = [trainer(0.1, 0), trainer(0.1, 1, **kwargs)]
    with pytest.raises(ConfigError, match=f"these runs cannot train together: {message}.*; "
                                          "train each with Trainer.fit"):
        fmc.fit_together(runs, make_dataset(64), make_dataset(32, seed=1, split="test"))


def conv_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 4))


def test_a_recipe_and_a_conv_model_train_together_through_the_stacked_engine(data):
    """Momentum, Nesterov, weight decay per run, a cosine schedule, batch norm: within 1e-4."""
    def make(lr, s, wd):
        return fmc.Trainer(conv_net(s), lr=lr, epochs=3, batch_size=32, seed=s, momentum=0.9,
                           nesterov=True, weight_decay=wd, schedule="cosine", progress=False,
                           device="cpu")

    configs = [(0.05, 0, 5e-4), (0.02, 1, 0.0), (0.05, 2, 1e-3)]
    together = fmc.fit_together([make(*c) for c in configs], *data)
    for h, c in zip(together, configs, strict=True):
        alone = make(*c).fit(*data)
        assert h.metadata["step"] == "together (3 runs as one batched model)"
        for a, b in zip(h.trained, alone.trained, strict=True):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
            assert a.test_loss == pytest.approx(b.test_loss, rel=1e-4)


def test_the_course_cnn_trains_together(data):
    """deeper has dropout: each run draws its own masks, so no equality with a run alone."""
    train, test = make_dataset(128, size=28), make_dataset(64, size=28, seed=1, split="test")
    runs = [fmc.Trainer(fmc.build_model("deeper", num_classes=4, seed=s), lr=0.05, epochs=2,
                        seed=s, progress=False, device="cpu") for s in (0, 1)]
    histories = fmc.fit_together(runs, train, test)
    assert [h.status for h in histories] == ["completed", "completed"]
    assert all(h.trained[-1].train_loss < 0.5 * h.trained[0].train_loss for h in histories)
    assert all(h.final_accuracy > 0.9 for h in histories)  # the blocks are easy to tell


def test_stacked_runs_save_checkpoints_of_their_own_weights_and_own_them_after(data, tmp_path):
    """A run's weights are a row of the group's stack while it trains; its checkpoint holds that
    row only, and after the runs each model's tensors are its own again."""
    def make(s, ckpt):  # 140 kB of weights: the file shows whether it holds one run or four
        torch.manual_seed(s)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 512),
                                    torch.nn.BatchNorm1d(512), torch.nn.ReLU(),
                                    torch.nn.Linear(512, 4))
        return fmc.Trainer(model, lr=0.05, epochs=1, batch_size=32, seed=s, momentum=0.9,
                           progress=False, device="cpu", checkpoint=ckpt)

    group = [make(s, tmp_path / f"{s}.pt") for s in range(4)]
    fmc.fit_together(group, *data)
    make(9, tmp_path / "alone.pt").fit(*data)
    alone = (tmp_path / "alone.pt").stat().st_size
    for s in range(4):
        assert (tmp_path / f"{s}.pt").stat().st_size < 1.2 * alone
    for t in group:
        for tensor in (*t.model.parameters(), *t.model.buffers()):
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()


def test_anything_but_trainers_is_refused(data):
    with pytest.raises(ConfigError, match="fit_together takes Trainers, got RunSpec; make one "
                                          r"fmclassify\.Trainer per run"):
        fmc.fit_together([fmc.RunSpec("base", lr=0.1, epochs=1)], *data)
    with pytest.raises(ConfigError, match="these runs cannot train together: there are no runs"):
        fmc.fit_together([], *data)
