"""K base-MLP runs trained together (the private StackedModels engine) against K solo steps.

K = ``--k`` runs of ``build_model("base")`` (784-512-512-10, seeds 0..K-1), batch 64, one batch
per run (random images: speed does not depend on the pixels), SGD at learning rates spread
over 0.1..0.001. Side by side, in rounds:

(a) solo: K autograd steps one after the other, each ``F.cross_entropy(model(x), y).backward();
    opt.step()`` with a ``torch.optim.SGD`` of its own (what K Trainer runs do per step);
(b) stacked: one ``StackedModels.step`` of all K runs (vmap over functional_call, grad and
    value; per-run SGD on the stacked weights);
(c) with ``--momentum 0.9``: the same with SGD momentum in both.

It prints the median of ``--repeats`` rounds, in milliseconds per step of all K runs, and the
ratio. On CUDA every timed section ends with ``torch.cuda.synchronize()``.

    python benchmarks/stacked_speed.py [--device cuda] [--k 12] [--steps 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import fmclassify as fmc
from fmclassify._stacked import StackedModels

BATCH = 64


def solo_steps(models, opts, xs, ys) -> None:
    """(a) K autograd steps, one run after the other."""
    for m, opt, x, y in zip(models, opts, xs, ys, strict=True):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def timed(fn, steps: int, device: torch.device) -> float:
    """Milliseconds per call of ``fn`` over ``steps`` calls (the device drained at both ends)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for i in range(steps):
        fn(i)
    sync()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    k = args.k
    print(f"{platform.machine()} {os.cpu_count()} CPUs ({torch.get_num_threads()} torch "
          f"threads), torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    lrs = [0.1 * 0.01 ** (i / max(k - 1, 1)) for i in range(k)]  # 0.1 .. 0.001
    solo = [fmc.build_model("base", seed=s).to(device) for s in range(k)]
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=args.momentum)
            for m, lr in zip(solo, lrs, strict=True)]
    stacked = [fmc.build_model("base", seed=s).to(device) for s in range(k)]
    engine = StackedModels(stacked, lrs, momentum=args.momentum)
    g = torch.Generator().manual_seed(0)
    pool = 8  # a few distinct batches, cycled (the data's values do not change the speed)
    xs = torch.rand(pool, k, BATCH, 1, 28, 28, generator=g).to(device)
    ys = torch.randint(0, 10, (pool, k, BATCH), generator=g).to(device)

    def run_solo(i: int) -> None:
        solo_steps(solo, opts, xs[i % pool], ys[i % pool])

    def run_stacked(i: int) -> None:
        engine.step(xs[i % pool], ys[i % pool])

    for fn in (run_solo, run_stacked):  # warm up: allocator, kernels, cuDNN/cuBLAS choices
        timed(fn, 5, device)
    rounds = [(timed(run_solo, args.steps, device), timed(run_stacked, args.steps, device))
              for _ in range(args.repeats)]
    a = statistics.median(r[0] for r in rounds)
    b = statistics.median(r[1] for r in rounds)
    print(f"K={k} base-MLP runs, batch {BATCH}, momentum {args.momentum}, "
          f"median of {args.repeats} rounds of {args.steps} steps:")
    print(f"  (a) {k} solo autograd steps : {a:8.2f} ms per step of all runs "
          f"({a / k:.2f} ms a run)")
    print(f"  (b) one stacked step        : {b:8.2f} ms per step of all runs "
          f"({b / k:.2f} ms a run)")
    print(f"  solo / stacked              : {a / b:8.2f}x")


if __name__ == "__main__":
    main()
