"""One training epoch of the base MLP, five ways, side by side: how close to the GEMM floor?

All train the same initial weights (``build_model("base", seed=0)``) with SGD lr 0.1, batch 64,
in the quickstart's order (no shuffling), on the real Fashion-MNIST training set:

(a) the course's quickstart loop (DataLoader + ToTensor, autograd, torch.optim.SGD);
(b) fmclassify's Trainer with ``step="autograd"``, and (b+) with its default (the fused
    step where the model allows it), timed by ``history.records[-1].seconds`` (the training
    epoch only, evaluation excluded);
(c) a plain autograd loop over slices of one in-memory tensor;
(d) the private FusedMLP engine (K = 1) over the same slices;
(e) the floor: only the 8 GEMMs a step needs (3 forward, 3 weight-gradient, 2 input-gradient),
    same shapes, preallocated outputs, nothing else; (e+) the same in the fused step's layout
    (weights stored (in, out), updated in place by the weight-gradient GEMM).

Each round runs all five in turn; the script prints the median of ``--repeats`` rounds, the
ratio of each to the quickstart, fused against floor, and the largest weight difference between
(c) and (d) after the epoch (they compute the same SGD step).

    python benchmarks/step_speed.py [--repeats 3] [--threads N] [--no-mkldnn]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import machine, quickstart_datasets, quickstart_epoch, temp_dir
from torch import nn
from torch.utils.data import DataLoader

import fmclassify as fmc
from fmclassify._fused import FusedMLP

BATCH, LR = 64, 0.1


def autograd_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """(c) autograd + SGD over tensor slices; returns seconds."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    start = time.perf_counter()
    for i in range(0, len(y), BATCH):
        loss = F.cross_entropy(model(x[i:i + BATCH]), y[i:i + BATCH])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def fused_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """(d) FusedMLP, K = 1, over the same slices; writes the weights back; returns seconds."""
    engine = FusedMLP([model], [LR])
    start = time.perf_counter()
    for i in range(0, len(y), BATCH):
        engine.step(x[i:i + BATCH], y[i:i + BATCH])
    seconds = time.perf_counter() - start
    engine.write_back()
    return seconds


def gemm_floor_epoch(sizes: list[int], x: torch.Tensor, transposed: bool) -> float:
    """(e) The 8 GEMMs per step of forward + backward, preallocated, nothing else.

    ``transposed``: weights stored (in, out) and updated in place with ``addmm_``, as the
    fused step keeps them; else (out, in), the weight gradients written to buffers.
    """
    flat = x.reshape(len(x), -1)  # (N, 784)
    ws = [torch.randn(o, i) * 0.01 for i, o in itertools.pairwise(sizes)]  # (out, in)
    if transposed:
        ws = [w.T.contiguous() for w in ws]  # (in, out)
    dws = [torch.empty_like(w) for w in ws]

    def buffers(b: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return ([torch.empty(b, o) for o in sizes[1:]],  # h_l (B, out)
                [torch.empty(b, n) for n in sizes[1:-1]])  # g_l (B, in) for l >= 2

    cache = {b: buffers(b) for b in {BATCH, len(x) % BATCH or BATCH}}
    start = time.perf_counter()
    for i in range(0, len(x), BATCH):
        xb = flat[i:i + BATCH]
        hs, gs = cache[len(xb)]
        h = xb
        for w, out in zip(ws, hs, strict=True):  # forward: h W^T
            h = torch.mm(h, w if transposed else w.T, out=out)
        g = hs[-1].mul_(1e-9)  # tiny, so the in-place updates keep the weights finite
        for j in range(len(ws) - 1, -1, -1):  # backward: g^T h_{l-1} (or its transpose), g W
            prev = hs[j - 1] if j else xb
            if j:
                g_next = torch.mm(g, ws[j].T if transposed else ws[j], out=gs[j - 1])
            if transposed:
                ws[j].addmm_(prev.T, g, alpha=-1)
            else:
                torch.mm(g.T, prev, out=dws[j])
            if j:
                g = g_next
    return time.perf_counter() - start


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item()
               for p, q in zip(a.parameters(), b.parameters(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn off")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    print(machine(), f"mkldnn {'on' if torch.backends.mkldnn.enabled else 'off'}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    train, test = fmc.load_dataset("fashion-mnist", download=False)
    x, y = train.float_images(), train.labels
    initial = fmc.build_model("base", seed=0)
    sizes = [784, 512, 512, 10]
    times: dict[str, list[float]] = {k: [] for k in ("a", "b", "b+", "c", "d", "e", "e+")}
    diff = 0.0
    with temp_dir() as tmp:
        loader = DataLoader(quickstart_datasets(Path(tmp))[0], batch_size=BATCH)
        for _ in range(args.repeats):
            times["a"].append(quickstart_epoch(copy.deepcopy(initial), loader, lr=LR))
            for key, fused in (("b", False), ("b+", True)):
                history = fmc.Trainer(copy.deepcopy(initial), lr=LR, epochs=1, batch_size=BATCH,
                                      shuffle=False, progress=False, device="cpu",
                                      step="auto" if fused else "autograd").fit(train, test)
                times[key].append(history.records[-1].seconds)
            plain, fused = copy.deepcopy(initial), copy.deepcopy(initial)
            times["c"].append(autograd_epoch(plain, x, y))
            times["d"].append(fused_epoch(fused, x, y))
            times["e"].append(gemm_floor_epoch(sizes, x, transposed=False))
            times["e+"].append(gemm_floor_epoch(sizes, x, transposed=True))
            diff = max(diff, max_weight_diff(plain, fused))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    labels = {"a": "(a) quickstart loop (DataLoader)", "b": "(b) Trainer, step=autograd",
              "b+": "(b+) Trainer, default (fused)",
              "c": "(c) autograd over tensor slices", "d": "(d) FusedMLP K=1",
              "e": "(e) GEMM floor (8 GEMMs/step)",
              "e+": "(e+) floor, fused step's layout"}
    print(f"base MLP 784-512-512-10, batch {BATCH}, SGD lr {LR}, one epoch of {len(y)} images, "
          f"{args.repeats} rounds; median and best (s), speed-up over the quickstart's median "
          "and best; all runs")
    for k, label in labels.items():
        runs = " ".join(f"{t:.2f}" for t in times[k])
        print(f"  {label:32s} {med[k]:5.2f} {best[k]:5.2f}   {med['a'] / med[k]:4.2f}x "
              f"{best['a'] / best[k]:4.2f}x   [{runs}]")
    steps = len(y) / BATCH
    for name, t in (("median", med), ("best", best)):
        floor = min(t["e"], t["e+"])
        print(f"  {name}: fused / floor {t['d'] / floor:.2f} (fused overhead over the faster "
              f"floor {(t['d'] - floor) / steps * 1e6:.0f} us per step); fused vs autograd "
              f"Trainer {t['b'] / t['d']:.2f}x")
    print(f"  max |w_fused - w_autograd| after the epoch: {diff:.2e}")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
