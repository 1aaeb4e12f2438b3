"""The training recipes: each element against an oracle written with plain PyTorch."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import fmclassify as fmc
from fmclassify.callbacks import CallbackBase
from fmclassify.exceptions import ConfigError
from fmclassify.recipes import BatchAugment, Recipe, crop_padding, split_validation
from fmclassify.training import TrainingInterrupted
from helpers import make_dataset


def model(seed=0):
    return fmc.build_model("base", num_classes=4, image_size=8, seed=seed)


def strip(history):
    return [dataclasses.replace(r, seconds=0.0) for r in history.records]


class LrLog(CallbackBase):
    """The learning rate of every step, as a callback sees it."""

    def __init__(self):
        self.lrs = []

    def on_after_backward(self, run):
        self.lrs.append(run.optimizer.param_groups[0]["lr"])


def test_momentum_nesterov_decay_smoothing_clipping_equal_a_hand_loop(tiny_data):
    train, test = tiny_data
    net, oracle = model(), model()
    kw = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "label_smoothing": 0.1,
          "clip_grad_norm": 0.5}
    fmc.Trainer(net, lr=0.05, epochs=2, batch_size=32, shuffle=False, progress=False,
                **kw).fit(train, test)
    opt = torch.optim.SGD(oracle.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    x, y = train.float_images(), train.labels
    for _ in range(2):
        for i in range(0, len(y), 32):
            loss = F.cross_entropy(oracle(x[i:i + 32]), y[i:i + 32], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(oracle.parameters()), 0.5)
            opt.step()
    for p, q in zip(net.parameters(), oracle.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_and_adamw_equal_torch(tiny_data, optimizer):
    net, oracle = model(), model()
    fmc.Trainer(net, lr=1e-3, epochs=1, batch_size=32, shuffle=False, progress=False,
                optimizer=optimizer, weight_decay=0.01).fit(*tiny_data)
    cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    opt = cls(oracle.parameters(), lr=1e-3, weight_decay=0.01)
    x, y = tiny_data[0].float_images(), tiny_data[0].labels
    for i in range(0, len(y), 32):
        opt.zero_grad()
        F.cross_entropy(oracle(x[i:i + 32]), y[i:i + 32]).backward()
        opt.step()
    for p, q in zip(net.parameters(), oracle.parameters(), strict=True):
        assert torch.equal(p, q)


def test_cosine_with_warmup_steps_per_batch_and_records_each_epochs_lr(tiny_data):
    log = LrLog()
    h = fmc.Trainer(model(), lr=0.1, epochs=4, batch_size=32, progress=False,
                    schedule="cosine", warmup_epochs=1, callbacks=[log]).fit(*tiny_data)
    per_epoch = 8  # 256 images, batch 32
    assert len(log.lrs) == 4 * per_epoch
    warm = log.lrs[:per_epoch]
    assert warm[0] == pytest.approx(0.1 * 0.01)  # warm-up from 1 % of lr
    assert all(a < b for a, b in itertools.pairwise(warm))  # rising every batch
    rest = log.lrs[per_epoch:]
    total = len(rest)
    for t, lr in enumerate(rest):  # CosineAnnealingLR's closed form, from the peak to 0
        assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * t / total)), rel=1e-6)
    assert [r.lr for r in h.trained] == [log.lrs[i * per_epoch] for i in range(4)]
    assert h.metadata["schedule"] == "cosine" and h.metadata["warmup_epochs"] == 1


def test_step_and_one_cycle_schedules(tiny_data):
    log = LrLog()
    fmc.Trainer(model(), lr=0.1, epochs=4, batch_size=32, progress=False, schedule="step",
                callbacks=[log]).fit(*tiny_data)
    assert log.lrs[0] == log.lrs[15] == 0.1
    assert log.lrs[16] == pytest.approx(0.01) and log.lrs[24] == pytest.approx(0.001)
    log = LrLog()
    fmc.Trainer(model(), lr=0.1, epochs=4, batch_size=32, progress=False,
                schedule="one-cycle", warmup_epochs=1, callbacks=[log]).fit(*tiny_data)
    peak = max(range(len(log.lrs)), key=log.lrs.__getitem__)
    assert log.lrs[peak] == pytest.approx(0.1) and 6 <= peak <= 9  # the end of the warm-up
    assert log.lrs[-1] < 1e-3


def test_callable_optimizer_and_schedule(tiny_data):
    made = {}

    def rmsprop(params):
        made["opt"] = torch.optim.RMSprop(params, lr=123.0)
        return made["opt"]

    def halve(opt):
        return torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.5)

    h = fmc.Trainer(model(), lr=0.01, epochs=2, batch_size=32, progress=False,
                    optimizer=rmsprop, schedule=halve).fit(*tiny_data)
    assert [r.lr for r in h.trained] == [0.01, 0.005]  # lr set on the groups, then stepped
    assert h.metadata["optimizer"].endswith("rmsprop")
    with pytest.raises(ConfigError, match=r"returned int, not a torch\.optim\.Optimizer"):
        fmc.Trainer(model(), lr=0.1, epochs=1, optimizer=lambda p: 3)


def test_flip_mirrors_about_half_the_images_and_crop_shifts_each_one():
    x = torch.randn(256, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    flipped = BatchAugment(["flip"], black=[0.0])(x, gen)
    mirrored = [torch.equal(f, o.flip(2)) for f, o in zip(flipped, x, strict=True)]
    same = [torch.equal(f, o) for f, o in zip(flipped, x, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 90 < sum(mirrored) < 166
    p = crop_padding(8)
    cropped = BatchAugment(["crop"], black=[-1.0])(x, torch.Generator().manual_seed(1))
    padded = F.pad(x, (p, p, p, p), value=-1.0)
    for out, src in zip(cropped, padded, strict=True):  # each image: one window of its padding
        windows = [src[:, i:i + 8, j:j + 8] for i in range(2 * p + 1) for j in range(2 * p + 1)]
        assert any(torch.equal(out, w) for w in windows)
    again = BatchAugment(["crop"], black=[-1.0])(x, torch.Generator().manual_seed(1))
    assert torch.equal(cropped, again)
    assert (crop_padding(32), crop_padding(28)) == (4, 2)



def test_erase_blacks_out_one_rectangle_in_about_half_the_images():
    x = torch.rand(400, 2, 28, 28) + 1.0  # no pixel is black (-1) before
    black = [-1.0, -2.0]
    out = BatchAugment(["erase"], black=black)(x, torch.Generator().manual_seed(0))
    assert torch.all(x >= 1.0)  # the input is left as it was
    erased = 0
    for img, src in zip(out, x, strict=True):
        changed = img[0] != src[0]
        if not changed.any():
            assert torch.equal(img, src)
            continue
        erased += 1
        rows = changed.any(1).nonzero().flatten()
        cols = changed.any(0).nonzero().flatten()
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        assert changed[r0:r1, c0:c1].all() and changed.sum() == (r1 - r0) * (c1 - c0)
        for ch, value in enumerate(black):  # every channel, the same rectangle, black
            assert torch.all(img[ch][changed] == value)
            assert torch.equal(img[ch][~changed], src[ch][~changed])
        area = (r1 - r0) * (c1 - c0) / 28 ** 2
        assert 0.01 < area < 0.4  # 2-33 % of the image, up to rounding to whole pixels
    assert 160 < erased < 240
    again = BatchAugment(["erase"], black=black)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)

def test_augmentation_runs_on_training_batches_only(tiny_data):
    seen = []

    def spy(batch):
        seen.append(batch.shape[0])
        return batch

    trainer = fmc.Trainer(model(), lr=0.1, epochs=2, batch_size=32, progress=False,
                          augment=["flip", spy])
    h = trainer.fit(*tiny_data)
    assert seen == [32] * 16  # 2 epochs of 8 training batches, no evaluation batch
    assert trainer.evaluate(tiny_data[1]) == (h.records[-1].test_loss,
                                              h.records[-1].test_accuracy)
    assert h.metadata["augment"][0] == "flip" and h.metadata["augment"][1].endswith("spy")


def test_validation_split_is_stratified_seeded_and_disjoint():
    train = make_dataset(400, classes=4, seed=3)
    fit, val = split_validation(train, 0.1, seed=0)
    assert len(val) == 40 and len(fit) == 360
    counts = torch.bincount(train.labels, minlength=4)
    held = torch.bincount(val.labels, minlength=4)
    assert all(abs(h - c * 0.1) < 1 for h, c in zip(held.tolist(), counts.tolist(), strict=True))
    key = {bytes(img.numpy()) for img in train.images}
    assert len(key) == 400  # images unique, so membership is by content
    assert not {bytes(i.numpy()) for i in val.images} & {bytes(i.numpy()) for i in fit.images}
    _, same = split_validation(train, 0.1, seed=0)
    _, other = split_validation(train, 0.1, seed=1)
    assert torch.equal(same.images, val.images) and not torch.equal(other.images, val.images)
    assert len(split_validation(train, 37, seed=0)[1]) == 37
    with pytest.raises(ConfigError, match="holds out 400 of 400 training images"):
        split_validation(train, 400, seed=0)


def test_validation_records_and_the_detector_watches_validation(tiny_data):
    det = fmc.ConvergenceDetector(threshold=1.0, patience=1, restore_best=True)
    h = fmc.Trainer(model(), lr=0.1, epochs=3, batch_size=32, progress=False, val_split=0.25,
                    callbacks=[det]).fit(*tiny_data)
    assert h.metadata["train_size"] == 192 and h.metadata["val_size"] == 64
    assert all(r.val_accuracy is not None and r.val_loss is not None for r in h.records)
    vals = [r.val_accuracy for r in h.trained]
    assert det.best_value == max(vals)  # the validation split picks the best epoch
    assert h.status == "converged" and h.epochs_trained == 2  # patience 1: the second epoch


def test_bf16_runs_the_forward_pass_in_bfloat16(tiny_data):
    dtypes = []
    net = model()
    net.register_forward_hook(lambda m, i, out: dtypes.append((m.training, out.dtype)))
    h = fmc.Trainer(net, lr=0.1, epochs=1, batch_size=32, progress=False,
                    precision="bf16").fit(*tiny_data)
    assert {d for t, d in dtypes if t} == {torch.bfloat16}
    assert h.metadata["precision"] == "bf16" and h.metadata["step"].startswith("autograd")
    assert h.final_accuracy > 0.5 and math.isfinite(h.trained[0].train_loss)


def test_ema_weights_are_an_average_and_used_for_evaluation(tiny_data):
    trainer = fmc.Trainer(model(), lr=0.1, epochs=2, batch_size=32, progress=False, ema=0.9)
    h = trainer.fit(*tiny_data)
    averaged = list(trainer.ema.module.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(averaged, trainer.model.parameters(),
                                                      strict=True))
    oracle = copy.deepcopy(trainer.ema.module).eval()
    with torch.no_grad():
        logits = oracle(tiny_data[1].float_images())
    accuracy = (logits.argmax(1) == tiny_data[1].labels).float().mean().item()
    assert h.final_accuracy == pytest.approx(accuracy)


class StopAt(CallbackBase):
    def __init__(self, step):
        self.at = step

    def on_after_backward(self, run):
        if run.step == self.at:
            raise KeyboardInterrupt


def test_a_resumed_run_with_the_whole_recipe_equals_a_straight_one(tiny_data, tmp_path):
    recipe = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "one-cycle",
              "warmup_epochs": 1, "label_smoothing": 0.1, "augment": ["crop", "flip"],
              "val_split": 0.1, "precision": "bf16", "ema": 0.9, "clip_grad_norm": 2.0}
    kw = {"lr": 0.1, "epochs": 4, "batch_size": 32, "progress": False, **recipe}
    straight_model = model()
    straight = fmc.Trainer(straight_model, **kw).fit(*tiny_data)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(TrainingInterrupted):
        fmc.Trainer(model(), checkpoint=ckpt, callbacks=[StopAt(7 * 2 + 3)], **kw).fit(*tiny_data)
    resumed_model = model()
    resumed = fmc.Trainer(resumed_model, checkpoint=ckpt, callbacks=[StopAt(-1)],
                          **kw).fit(*tiny_data, resume=True)
    assert strip(resumed) == strip(straight)
    for p, q in zip(resumed_model.parameters(), straight_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_checkpoint_of_another_recipe_is_refused(tiny_data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    fmc.Trainer(model(), lr=0.1, epochs=1, batch_size=32, progress=False, momentum=0.9,
                checkpoint=ckpt).fit(*tiny_data)
    with pytest.raises(fmc.CheckpointError, match=r"momentum: checkpoint 0\.9, this run 0\.8"):
        fmc.Trainer(model(), lr=0.1, epochs=2, batch_size=32, progress=False, momentum=0.8,
                    checkpoint=ckpt).fit(*tiny_data, resume=True)


def test_defaults_are_the_course_and_take_the_fused_step(tiny_data):
    r = Recipe()
    assert r.is_plain_sgd and r.describe() == {
        "optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
        "schedule": None, "warmup_epochs": 0, "label_smoothing": 0.0, "clip_grad_norm": None,
        "augment": None, "val_split": None, "precision": "fp32", "ema": None}
    h = fmc.Trainer(model(), lr=0.1, epochs=1, progress=False).fit(*tiny_data)
    assert h.metadata["step"] == "fused"
    flip = fmc.Trainer(model(), lr=0.1, epochs=1, progress=False, augment=["flip"])
    assert flip.fit(*tiny_data).metadata["step"] == "fused"  # augmentation is batch-side


def test_compiled_step_equals_autograd_within_rounding(tiny_data):
    a, b = model(), model()
    ha = fmc.Trainer(a, lr=0.1, epochs=1, batch_size=32, progress=False,
                     step="autograd").fit(*tiny_data)
    hb = fmc.Trainer(b, lr=0.1, epochs=1, batch_size=32, progress=False,
                     step="compiled").fit(*tiny_data)
    assert hb.metadata["step"] == "compiled"
    assert hb.final_accuracy == pytest.approx(ha.final_accuracy, abs=1 / 128)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("augment", "expected"), [
    ("flip", ("flip",)), ("crop, flip", ("crop", "flip")), (["flip"], ("flip",))])
def test_augment_as_one_string_is_a_list_of_names(tiny_data, augment, expected):
    assert Recipe(augment=augment).augment == expected
    trainer = fmc.Trainer(model(), lr=0.1, epochs=1, batch_size=32, progress=False,
                          augment=augment)
    assert trainer.recipe.augment == expected
    assert trainer.fit(*tiny_data).metadata["augment"] == list(expected)


def test_an_unknown_augmentation_in_a_string_is_named():
    with pytest.raises(ConfigError, match=r"unknown augmentation 'flop'; did you mean 'flip'\?"):
        fmc.Trainer(model(), lr=0.1, epochs=1, augment="flop")
