"""EMA on short runs (issue 22): the averaged weights against the raw ones, with and without EMA.

Two pairs of runs on the real Fashion-MNIST, each with the recipe of the issue (SGD lr 0.05,
batch 128, Nesterov momentum 0.9, weight decay 5e-4, cosine schedule after a 1-epoch warm-up,
label smoothing 0.1, flips, a 10 % validation split):

* a small CNN (two conv blocks, defined here as a plugin would be), 3 epochs on 5,000 images,
  ``ema=0.999`` against no EMA;
* the course's ``deeper`` CNN, 2 epochs on 6,000 images, ``ema=0.99`` against no EMA.

Each line prints the final test accuracy of the evaluated model (the average when EMA is on),
the raw model's, and the History's status label. The issue's "done when": the EMA run within
2 points of the run without, and neither labelled unstable.

Run: ``PYTHONPATH=src python benchmarks/ema_check.py [--threads 1]``
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import fmclassify as fmc

RECIPE = {"batch_size": 128, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
          "schedule": "cosine", "warmup_epochs": 1, "label_smoothing": 0.1, "augment": ["flip"],
          "val_split": 0.1}


def small_cnn(seed: int = 0) -> nn.Module:
    """Two conv blocks and a linear head: 1x28x28 -> 16x14x14 -> 32x7x7 -> 10."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def run(name: str, build, train, test, *, epochs: int, ema: float | None) -> fmc.History:
    h = fmc.Trainer(build(), lr=0.05, epochs=epochs, ema=ema, progress=False,
                    **RECIPE).fit(train, test)
    accs = " / ".join(f"{r.test_accuracy:.1%}" for r in h.trained)
    raw = getattr(h.trained[-1], "raw_test_accuracy", None)
    raw_text = "" if raw is None else f", raw {raw:.1%}"
    print(f"{name:8s} ema={ema!s:6s} test acc per epoch {accs}{raw_text}; "
          f"status {h.describe_status()}")
    return h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = fmc.load_dataset("fashion-mnist")
    test = test.subset(2000)
    for name, build, n, epochs, ema in (
            ("small", small_cnn, 5000, 3, 0.999),
            ("deeper", lambda: fmc.build_model("deeper", seed=0), 6000, 2, 0.99)):
        plain = run(name, build, train.subset(n), test, epochs=epochs, ema=None)
        averaged = run(name, build, train.subset(n), test, epochs=epochs, ema=ema)
        gap = 100 * (plain.final_accuracy - averaged.final_accuracy)
        print(f"{name:8s} gap (no EMA - EMA): {gap:+.2f} points; "
              f"{'within' if gap <= 2 else 'NOT within'} 2 points")


if __name__ == "__main__":
    main()
