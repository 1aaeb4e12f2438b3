"""The learning-rate finder's suggestions against short runs, with and without momentum.

Issue 22: with momentum 0.9 the finder suggested 0.00091 while 0.05 reached 80.1% in 2 epochs.
For each model and momentum this runs :func:`fmclassify.lr_find` (100 steps, batch 64 unless
``--batch-size``, on the training subset) and then trains 2 epochs on 6,000 images at a grid
of constant rates and at each suggestion (SGD, Nesterov when momentum > 0, seed 0), printing
the final test accuracy on 2,000 test images. Read: is the suggestion near the best rate of
the grid, and how far (a factor) is it below?

Run: ``PYTHONPATH=src python benchmarks/lr_find_check.py [--models base deeper]``
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

import fmclassify as fmc

GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


@fmc.register_model("small-cnn", description="two conv blocks (benchmarks/lr_find_check.py)")
def small_cnn(*, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> nn.Module:
    """A plugin-like small CNN, as issue 22's teaching assistant trained: 1x28x28 -> 10."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * side * side, num_classes))


def accuracy(model: str, lr: float, data, *, epochs: int, **recipe: float) -> float:
    h = fmc.Trainer(fmc.build_model(model, seed=0), lr=lr, epochs=epochs, progress=False,
                    **recipe).fit(*data)
    return float("nan") if h.status == "diverged" else h.final_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["base", "deeper"])
    parser.add_argument("--momenta", nargs="+", type=float, default=[0.0, 0.9])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = fmc.load_dataset("fashion-mnist")
    data = train.subset(6000), test.subset(2000)
    for model in args.models:
        for momentum in args.momenta:
            recipe = {"momentum": momentum, "nesterov": momentum > 0,
                      "batch_size": args.batch_size, "weight_decay": args.weight_decay,
                      "label_smoothing": args.label_smoothing}
            found = fmc.lr_find(fmc.build_model(model, seed=0), data[0], **recipe)
            sugg = found.suggestions
            lowest = found.lrs[found.smoothed.index(min(found.smoothed))]
            print(f"{model} momentum {momentum:g}: suggestions "
                  + ", ".join(f"{k} {v:.3g}" for k, v in sugg.items())
                  + f"; curve lowest at lr {lowest:.3g} ({found.stop_reason})")
            runs = {lr: accuracy(model, lr, data, epochs=args.epochs, **recipe)
                    for lr in sorted({*GRID, *sugg.values()})}
            best = max((lr for lr in runs if not math.isnan(runs[lr])), key=runs.__getitem__)
            print("   " + ", ".join(
                f"{lr:.3g}: {'diverged' if math.isnan(a) else f'{a:.1%}'}"
                + ("*" if lr in sugg.values() else "") for lr, a in runs.items()))
            print(f"   best {best:g} ({runs[best]:.1%}); valley is {best / sugg['valley']:.1f}x "
                  f"below it, steepest {best / sugg['steepest']:.1f}x, "
                  f"minimum/10 {best / sugg['minimum/10']:.1f}x")


if __name__ == "__main__":
    main()
