"""One training epoch of the course's CNN (``deeper``): the DataLoader loop against the Trainer.

Same initial weights, SGD lr 0.1, batch 64, quickstart order (no shuffling). Prints the median
seconds of the training epoch for: the course's DataLoader + ToTensor loop, a loop over tensor
slices in the default (NCHW) layout, and the Trainer (tensor slices, channels-last on the CPU).

    .venv/bin/python benchmarks/cnn_speed.py [--repeats 1] [--train 60000]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import machine, quickstart_datasets, quickstart_epoch, temp_dir
from torch.utils.data import DataLoader, Subset

import fmclassify as fmc
from fmclassify.data import iter_batches


def tensor_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """A plain autograd loop over NCHW tensor slices."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    start = time.perf_counter()
    for xb, yb in iter_batches(x, y, 64, shuffle=False):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--train", type=int, default=60_000)
    args = parser.parse_args()
    print(machine())
    train, test = fmc.load_dataset("fashion-mnist", download=False)
    train = train.subset(args.train)
    initial = fmc.build_model("deeper", seed=0)
    loader_s, tensor_s, trainer_s = [], [], []
    with temp_dir() as tmp:
        qs_train, _ = quickstart_datasets(Path(tmp))
        loader = DataLoader(Subset(qs_train, range(args.train)), batch_size=64)
        for _ in range(args.repeats):
            loader_s.append(quickstart_epoch(copy.deepcopy(initial), loader, lr=0.1))
            tensor_s.append(tensor_epoch(copy.deepcopy(initial), train.float_images(),
                                         train.labels))
            t = fmc.Trainer(copy.deepcopy(initial), lr=0.1, epochs=1, shuffle=False,
                            progress=False, device="cpu")
            trainer_s.append(t.fit(train, test.subset(1000)).records[-1].seconds)
    med = {k: sorted(v)[len(v) // 2] for k, v in
           (("loader", loader_s), ("tensor", tensor_s), ("trainer", trainer_s))}
    print(f"deeper CNN, {args.train} training images, batch 64, SGD, median of {args.repeats}")
    print(f"  DataLoader + ToTensor loop:        {med['loader']:7.2f} s  1.00x")
    print(f"  tensor slices, NCHW:               {med['tensor']:7.2f} s  "
          f"{med['loader'] / med['tensor']:.2f}x")
    print(f"  fmclassify Trainer (channels-last): {med['trainer']:6.2f} s  "
          f"{med['loader'] / med['trainer']:.2f}x")


if __name__ == "__main__":
    main()
