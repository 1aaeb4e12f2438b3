"""Another course, end to end: CIFAR-10 files, a ResNet-style plugin model, a modern recipe.

The data are small pickles in CIFAR-10's real format; the model comes from a plugin (a real
distribution with an entry point on the path), and the recipe has every element a CIFAR-10
course asks for on day one. It trains through the Trainer, ``lr_sweep`` and ``fmclassify
train``; a run SIGKILLed in the middle of an epoch and resumed equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import fmclassify as fmc
from fmclassify import registry
from helpers import write_cifar_files

PLUGIN = '''
import torch
from torch import nn
import fmclassify as fmc


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus the identity, then relu: a ResNet basic block."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class TinyResNet(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())
        self.block = Block(8)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


@fmc.register_model("tiny-resnet", description="a ResNet-style net from a course plugin")
def tiny_resnet(*, num_classes=10, in_channels=3, image_size=32):
    return TinyResNet(num_classes, in_channels)
'''

RECIPE = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine",
          "warmup_epochs": 1, "augment": ["crop", "flip"], "label_smoothing": 0.1,
          "precision": "bf16", "ema": 0.9, "val_split": 0.1}
FLAGS = ["--momentum", "0.9", "--nesterov", "--weight-decay", "5e-4", "--schedule", "cosine",
         "--warmup-epochs", "1", "--augment", "crop,flip", "--label-smoothing", "0.1",
         "--precision", "bf16", "--ema", "0.9", "--val-split", "0.1"]


@pytest.fixture
def course(tmp_path, monkeypatch):
    """CIFAR-10 files and the plugin installed as a distribution on sys.path."""
    data = tmp_path / "data"
    write_cifar_files(data / "cifar-10-batches-py", n=40, learnable=True)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "cifar_course.py").write_text(PLUGIN)
    info = plugins / "cifar_course-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cifar-course\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fmclassify.models]\ncourse = cifar_course\n")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.delitem(sys.modules, "cifar_course", raising=False)  # registers afresh
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_models", dict(registry._models))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), *sys.path])}
    train, test = fmc.load_dataset("cifar10", root=data, download=False)
    return {"data": data, "env": env, "train": train, "test": test, "tmp": tmp_path}


def strip(records):
    return [dataclasses.replace(r, seconds=0.0) for r in records]


def test_the_plugin_trains_with_the_whole_recipe_through_the_trainer(course):
    train, test = course["train"], course["test"]
    assert len(train) == 200 and train.image_shape == (3, 32, 32)
    assert fmc.list_models("tiny-resnet")[0].source.startswith("cifar-course")
    model = fmc.build_model("tiny-resnet", in_channels=3, image_size=32, seed=0)
    h = fmc.Trainer(model, lr=0.05, epochs=3, batch_size=32, progress=False,
                    **RECIPE).fit(train, test)
    assert h.status == "completed" and h.metadata["model"] == "tiny-resnet"
    assert h.metadata["val_size"] == 20 and h.metadata["train_size"] == 180
    for key, value in RECIPE.items():
        assert h.metadata[key] == value
    assert all(r.val_accuracy is not None for r in h.records)
    assert h.trained[-1].train_loss < h.trained[0].train_loss


def test_the_plugin_trains_through_lr_sweep_in_worker_processes(course):
    result = fmc.lr_sweep("tiny-resnet", lrs=(0.05, 0.01), epochs=2,
                          data=(course["train"], course["test"]), batch_size=32, workers=2,
                          **RECIPE)
    assert [r.spec.lr for r in result.runs] == [0.05, 0.01]
    assert all(r.history.status == "completed" for r in result.runs)
    assert all(r.history.metadata["precision"] == "bf16" for r in result.runs)


def cli(course, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "fmclassify.cli", "train", "--model",
                           "tiny-resnet", "--dataset", "cifar10", "--data-root",
                           str(course["data"]), "--no-download", "--lr", "0.05",
                           "--epochs", "3", "--batch-size", "32", "--no-progress", *FLAGS,
                           *args], capture_output=True, text=True, env=course["env"],
                          timeout=timeout)


KILL = textwrap.dedent("""
    import os, signal, sys
    import fmclassify as fmc
    from fmclassify.callbacks import CallbackBase

    class Kill(CallbackBase):
        def on_after_backward(self, run):
            if run.step == {step}:  # in the middle of the second epoch
                os.kill(os.getpid(), signal.SIGKILL)

    train, test = fmc.load_dataset("cifar10", root={root!r}, download=False)
    model = fmc.build_model("tiny-resnet", in_channels=3, image_size=32, seed=0)
    fmc.Trainer(model, lr=0.05, epochs=3, batch_size=32, seed=0, progress=False,
                checkpoint={ckpt!r}, callbacks=[Kill()], **{recipe!r}).fit(train, test)
""")


def test_sigkill_mid_epoch_then_resume_through_the_cli_equals_a_straight_run(course):
    straight = course["tmp"] / "straight.json"
    done = cli(course, "--json", str(straight))
    assert done.returncode == 0, done.stderr
    assert "training tiny-resnet on cifar10" in done.stdout

    ckpt = course["tmp"] / "run.ckpt"
    steps_per_epoch = 6  # 180 training images at batch 32
    script = KILL.format(step=steps_per_epoch + 3, root=str(course["data"]), ckpt=str(ckpt),
                         recipe=RECIPE)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=course["env"], timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert fmc.History.from_dict(torch.load(ckpt, weights_only=True)["history"]
                                 ).epochs_trained == 1

    resumed_json = course["tmp"] / "resumed.json"
    resumed = cli(course, "--checkpoint", str(ckpt), "--resume", "--json", str(resumed_json))
    assert resumed.returncode == 0, resumed.stderr
    a, b = fmc.History.from_json(straight), fmc.History.from_json(resumed_json)
    assert strip(a.records) == strip(b.records)  # bit for bit, the recipe's states included
    assert a.status == b.status == "completed"
    assert json.loads(resumed_json.read_text())["metadata"]["ema"] == 0.9


def test_the_cli_refuses_a_bad_recipe_before_loading_data(course):
    bad = subprocess.run([sys.executable, "-m", "fmclassify.cli", "train", "--schedule",
                          "cosin", "--dataset", "cifar10", "--data-root", "/nonexistent",
                          "--no-download"], capture_output=True, text=True, env=course["env"],
                         timeout=120)
    assert bad.returncode == 2
    assert "unknown schedule 'cosin'; did you mean 'cosine'?" in bad.stderr
