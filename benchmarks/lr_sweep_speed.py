"""A 4-learning-rate sweep of the base MLP through ``fmclassify.lr_sweep``: parallel vs one by one.

lrs 0.1, 0.05, 0.01, 0.001, batch 64, seed 0, the real Fashion-MNIST, ``--epochs`` epochs each
(training and evaluation: the wall time a user waits). Each round runs, in turn:

(a) one by one in this process (``workers=1``), ``step="autograd"``: four autograd Trainer runs;
(b) one by one in this process, the default Trainer (the fused step, all intra-op threads);
(c) the default of ``lr_sweep``: on a CPU the four runs in worker processes, one per core,
    each a plain ``Trainer.fit`` with one intra-op thread (on two cores).

It prints the median of ``--repeats`` rounds, the ratios, the largest difference between (c)
and (b) in any run's final accuracy and training loss, and whether (c) equals (b) run with
``torch.set_num_threads(1)`` bit for bit (``--check``; what the threads compute).

    .venv/bin/python benchmarks/lr_sweep_speed.py [--epochs 1] [--repeats 3] [--check]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _common import machine

import fmclassify as fmc

LRS = (0.1, 0.05, 0.01, 0.001)


def timed(data, epochs: int, parallel: bool, fused: bool = True
          ) -> tuple[float, fmc.ExperimentResult]:
    start = time.perf_counter()
    result = fmc.lr_sweep("base", lrs=LRS, epochs=epochs, data=data,
                          workers=None if parallel else 1, device="cpu",
                          step="auto" if fused else "autograd")
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", action="store_true",
                        help="also compare with one-thread runs, bit for bit")
    args = parser.parse_args()
    print(machine())
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    data = fmc.load_dataset("fashion-mnist", download=False)
    times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for _ in range(args.repeats):
        t, _autograd = timed(data, args.epochs, parallel=False, fused=False)
        times["a"].append(t)
        t, apart = timed(data, args.epochs, parallel=False)
        times["b"].append(t)
        t, together = timed(data, args.epochs, parallel=True)
        times["c"].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    pairs = list(zip(apart.runs, together.runs, strict=True))
    acc = max(abs(x.history.final_accuracy - y.history.final_accuracy) for x, y in pairs)
    loss = max(abs(x.history.trained[-1].train_loss - y.history.trained[-1].train_loss)
               for x, y in pairs)
    print(f"lr_sweep of base, lrs {LRS}, {args.epochs} epoch(s), median of {args.repeats} "
          "rounds (training and evaluation); all rounds in brackets")
    labels = {"a": "(a) one by one, autograd", "b": "(b) one by one, default Trainer",
              "c": "(c) worker processes (default)"}
    for k, label in labels.items():
        runs = " ".join(f"{t:.2f}" for t in times[k])
        print(f"  {label:34s} {med[k]:7.2f} s   [{runs}]")
    print(f"  workers: {med['a'] / med['c']:.2f}x (a), {med['b'] / med['c']:.2f}x (b)")
    print(f"  largest difference from (b): final accuracy {100 * acc:.2f} points, "
          f"final train loss {loss:.2e}")
    if args.check:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        _, single = timed(data, args.epochs, parallel=False)
        torch.set_num_threads(threads)
        def numbers(h: fmc.History) -> list[tuple]:
            return [(r.train_loss, r.test_loss, r.test_accuracy) for r in h.records]

        same = all(numbers(x.history) == numbers(y.history)
                   for x, y in zip(single.runs, together.runs, strict=True))
        print(f"  (c) equals one-thread runs one by one, every epoch's numbers bit for bit: "
              f"{same}")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
