"""A four-learning-rate sweep of the base MLP: four Trainer runs against the FusedMLP engine.

Learning rates 0.1, 0.05, 0.01, 0.001, one epoch each, batch 64, no shuffling, the same initial
weights (``build_model("base", seed=0)``), the real Fashion-MNIST training set. The baseline is
four ``Trainer(..., step="autograd").fit`` runs (autograd) in a row, summing their training-epoch
seconds (evaluation excluded). Against it: four runs of the default Trainer (a fused K=1
engine inside); four FusedMLP K=1 engines in a row; one K=4 engine with its default (on a CPU,
one 2-D pass per model in each step); one K=4 engine with batched ``bmm`` ops (the GPU
default). Engines are driven as a Trainer drives them: losses summed on the device, checked for
non-finite values every 32 steps. The script prints the median of ``--repeats`` rounds, the
speed-ups, and each model's largest weight difference from its autograd Trainer twin.

``--split 2`` also runs the four K=1 engines in two Python threads (PyTorch ops release the
GIL) with one intra-op thread each (``torch.set_num_threads(1)`` for that variant only): does
splitting the models between the cores beat splitting each GEMM with OpenMP?

    python benchmarks/sweep_speed.py [--repeats 3] [--threads N] [--no-mkldnn] [--split 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import threading
import time
from typing import Any

import torch
from _common import machine
from torch import nn

import fmclassify as fmc
from fmclassify._fused import FusedMLP

BATCH, LRS = 64, (0.1, 0.05, 0.01, 0.001)


def sequential(initial: nn.Module, train: fmc.ImageDataset, test: fmc.ImageDataset,
               fused: bool) -> tuple[float, list[nn.Module]]:
    """Four Trainer runs one after the other; training seconds summed, trained models."""
    seconds, models = 0.0, []
    for lr in LRS:
        model = copy.deepcopy(initial)
        history = fmc.Trainer(model, lr=lr, epochs=1, batch_size=BATCH, shuffle=False,
                              progress=False, device="cpu",
                              step="auto" if fused else "autograd").fit(train, test)
        seconds += history.records[-1].seconds
        models.append(model)
    return seconds, models


def fused_epoch(engine: FusedMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One epoch as the Trainer would drive the engine; returns the mean losses (K,)."""
    loss_sum = torch.zeros(engine.num_models)
    for step, i in enumerate(range(0, len(y), BATCH)):
        yb = y[i:i + BATCH]
        loss_sum += engine.step(x[i:i + BATCH], yb) * len(yb)  # on the device: no sync
        if step % 32 == 0 and not torch.isfinite(loss_sum).all():  # one sync per 32 steps
            break
    return loss_sum / len(y)


def fused(initial: nn.Module, x: torch.Tensor, y: torch.Tensor, *, per_engine: int,
          batched: bool | None = None, split: int = 1) -> tuple[float, list[nn.Module]]:
    """The sweep through engines of ``per_engine`` models, run one after the other, or in
    ``split`` threads; seconds and the written-back models."""
    models = [copy.deepcopy(initial) for _ in LRS]
    engines = [FusedMLP(models[j:j + per_engine], LRS[j:j + per_engine], batched=batched)
               for j in range(0, len(LRS), per_engine)]
    groups = [engines[j::split] for j in range(split)]  # the engines each thread runs

    def run(group: list[FusedMLP]) -> None:
        for engine in group:
            fused_epoch(engine, x, y)

    intra_op = torch.get_num_threads()
    if split > 1:  # one core per Python thread: OpenMP inside each would oversubscribe
        torch.set_num_threads(1)
    start = time.perf_counter()
    if split == 1:  # in the main thread: OpenMP in a second Python thread ran 1.6x slower
        run(groups[0])
    else:
        threads = [threading.Thread(target=run, args=(g,)) for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.perf_counter() - start
    torch.set_num_threads(intra_op)
    for e in engines:
        e.write_back()
    return seconds, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn off")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 4),
                        help="also run the four K=1 engines in this many threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    print(machine(), f"mkldnn {'on' if torch.backends.mkldnn.enabled else 'off'}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    train, test = fmc.load_dataset("fashion-mnist", download=False)
    x, y = train.float_images(), train.labels
    initial = fmc.build_model("base", seed=0)
    variants: dict[str, dict[str, Any]] = {  # name: keyword arguments of fused()
        "FusedMLP K=1, 4 runs in a row": {"per_engine": 1},
        "FusedMLP K=4 (default: per model)": {"per_engine": 4},
        "FusedMLP K=4 batched (bmm)": {"per_engine": 4, "batched": True},
    }
    if args.split > 1:
        variants[f"FusedMLP K=1, {args.split} threads x 1 core"] = {"per_engine": 1,
                                                                    "split": args.split}
    seq_s: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in ("4 Trainer runs (default: fused)",
                                                           *variants)}
    diffs = {name: [0.0] * len(LRS) for name in times}
    for _ in range(args.repeats):
        s, seq_models = sequential(initial, train, test, fused=False)
        seq_s.append(s)
        name = "4 Trainer runs (default: fused)"
        s, fused_models = sequential(initial, train, test, fused=True)
        times[name].append(s)
        for k, (a, b) in enumerate(zip(seq_models, fused_models, strict=True)):
            diffs[name][k] = max(diffs[name][k], max_weight_diff(a, b))
        for name, kwargs in variants.items():
            s, fused_models = fused(initial, x, y, **kwargs)
            times[name].append(s)
            for k, (a, b) in enumerate(zip(seq_models, fused_models, strict=True)):
                diffs[name][k] = max(diffs[name][k], max_weight_diff(a, b))
    seq, seq_best = statistics.median(seq_s), min(seq_s)
    print(f"base MLP, lrs {', '.join(map(str, LRS))}, batch {BATCH}, one epoch each, "
          f"{args.repeats} rounds; median and best (s), speed-up over the baseline's median and "
          "best; all runs")
    print(f"  {'4 Trainer runs, step=autograd':35s} {seq:5.2f} {seq_best:5.2f}   1.00x 1.00x   "
          f"[{' '.join(f'{t:.2f}' for t in seq_s)}]")
    for name, ts in times.items():
        med, best = statistics.median(ts), min(ts)
        print(f"  {name:35s} {med:5.2f} {best:5.2f}   {seq / med:4.2f}x {seq_best / best:4.2f}x   "
              f"[{' '.join(f'{t:.2f}' for t in ts)}]")
        print("      max |w - w_trainer| per lr after the epoch: "
              + ", ".join(f"{lr}: {d:.1e}" for lr, d in zip(LRS, diffs[name], strict=True)))
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item()
               for p, q in zip(a.parameters(), b.parameters(), strict=True))


if __name__ == "__main__":
    main()
