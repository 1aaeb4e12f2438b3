"""One training epoch of the base MLP: fmclassify's Trainer against the course's quickstart.

Both train the same initial weights with SGD (lr 0.1, batch 64) in the quickstart's batch order
(no shuffling), alternating, ``--repeats`` times each; the script prints the median seconds of
the training epoch, the ratio, and both test accuracies (which must agree).

    .venv/bin/python benchmarks/epoch_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from _common import (
    machine,
    quickstart_accuracy,
    quickstart_datasets,
    quickstart_epoch,
    temp_dir,
)
from torch.utils.data import DataLoader

import fmclassify as fmc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    print(machine())
    train, test = fmc.load_dataset("fashion-mnist", download=False)
    initial = fmc.build_model(args.model, seed=0)
    quick, trainer_s, quick_acc, trainer_acc = [], [], 0.0, 0.0
    with temp_dir() as tmp:
        qs_train, qs_test = quickstart_datasets(Path(tmp))
        train_loader = DataLoader(qs_train, batch_size=64)
        test_loader = DataLoader(qs_test, batch_size=64)
        for _ in range(args.repeats):
            model = copy.deepcopy(initial)
            quick.append(quickstart_epoch(model, train_loader, lr=0.1))
            quick_acc = quickstart_accuracy(model, test_loader)
            t = fmc.Trainer(copy.deepcopy(initial), lr=0.1, epochs=1, batch_size=64,
                            shuffle=False, progress=False, device="cpu")
            history = t.fit(train, test)
            trainer_s.append(history.records[-1].seconds)
            trainer_acc = history.final_accuracy or 0.0
    q, f = sorted(quick)[len(quick) // 2], sorted(trainer_s)[len(trainer_s) // 2]
    print(f"model {args.model}, batch 64, SGD lr 0.1, one training epoch, median of "
          f"{args.repeats}")
    print(f"  quickstart (DataLoader + ToTensor): {q:6.2f} s   test accuracy {quick_acc:.2%}")
    print(f"  fmclassify Trainer:                 {f:6.2f} s   test accuracy {trainer_acc:.2%}")
    print(f"  speed-up: {q / f:.2f}x   accuracy difference: {100 * (trainer_acc - quick_acc):+.2f} "
          "points")


if __name__ == "__main__":
    main()
