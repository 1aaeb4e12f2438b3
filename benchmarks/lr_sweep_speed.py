"""A 4-learning-rate sweep of the base MLP: trained together (one batched model) vs one by one.

Both go through ``fmclassify.lr_sweep`` on the real Fashion-MNIST (lrs 0.1, 0.05, 0.01,
0.001, batch 64, seed 0), ``--epochs`` epochs each; the script prints the wall time of each
way, the ratio, and the largest difference in any run's final accuracy and training loss.

    .venv/bin/python benchmarks/lr_sweep_speed.py [--epochs 1] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import machine

import fmclassify as fmc

LRS = (0.1, 0.05, 0.01, 0.001)


def timed(data, epochs: int, together: bool) -> tuple[float, fmc.ExperimentResult]:
    start = time.perf_counter()
    result = fmc.lr_sweep("base", lrs=LRS, epochs=epochs, data=data, together=together,
                          device="cpu")
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(machine())
    data = fmc.load_dataset("fashion-mnist", download=False)
    apart_s, together_s = [], []
    for _ in range(args.repeats):
        t, apart = timed(data, args.epochs, together=False)
        apart_s.append(t)
        t, together = timed(data, args.epochs, together=True)
        together_s.append(t)
    a, b = statistics.median(apart_s), statistics.median(together_s)
    acc = max(abs(x.history.final_accuracy - y.history.final_accuracy)
              for x, y in zip(apart.runs, together.runs, strict=True))
    loss = max(abs(x.history.trained[-1].train_loss - y.history.trained[-1].train_loss)
               for x, y in zip(apart.runs, together.runs, strict=True))
    print(f"lr_sweep of base, lrs {LRS}, {args.epochs} epoch(s), median of {args.repeats} "
          "(training and evaluation)")
    print(f"  one by one (4 Trainer runs): {a:7.2f} s")
    print(f"  together (one batched model): {b:6.2f} s   speed-up {a / b:.2f}x")
    print(f"  largest difference: final accuracy {100 * acc:.2f} points, "
          f"final train loss {loss:.2e}")


if __name__ == "__main__":
    main()
