"""One training epoch of the course's CNN (``deeper``): the DataLoader loop against the Trainer.

Same initial weights, SGD lr 0.1, batch 64, quickstart order (no shuffling). Each round runs,
in turn, and the script prints the median seconds of the training epoch of:

(a) the course's DataLoader + ToTensor loop, with the CNN as the course's code runs it (each
    block an ``nn.Sequential``: conv, batch norm, ReLU, max-pool);
(b) a loop over tensor slices in the default (NCHW) layout, the course's CNN;
(c) the Trainer (tensor slices, channels-last on the CPU), the course's CNN;
(d) the Trainer with fmclassify's ``deeper`` (it max-pools before the ReLU: the same numbers,
    checked here bit for bit against (c), with a quarter of the ReLU work).

    .venv/bin/python benchmarks/cnn_speed.py [--repeats 3] [--train 10000]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import machine, quickstart_datasets, quickstart_epoch, temp_dir
from torch.utils.data import DataLoader, Subset

import fmclassify as fmc
from fmclassify.data import iter_batches
from fmclassify.models import CourseCNN


class CourseOrderCNN(CourseCNN):
    """The course's CNN as the course's code runs it: each block's ReLU before its max-pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(x)).flatten(1)
        return self.fc3(self.fc2(self.drop(self.fc1(x))))


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", type=int, default=10_000)
    args = parser.parse_args()
    print(machine())
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    train, test = fmc.load_dataset("fashion-mnist", download=False)
    train = train.subset(args.train)
    ours = fmc.build_model("deeper", seed=0)
    course = CourseOrderCNN(in_channels=1, image_size=28, num_classes=10)
    course.load_state_dict(ours.state_dict())
    times: dict[str, list[float]] = {k: [] for k in "abcd"}
    same = True
    with temp_dir() as tmp:
        qs_train, _ = quickstart_datasets(Path(tmp))
        loader = DataLoader(Subset(qs_train, range(args.train)), batch_size=64)
        for _ in range(args.repeats):
            times["a"].append(quickstart_epoch(copy.deepcopy(course), loader, lr=0.1))
            times["b"].append(tensor_epoch(copy.deepcopy(course), train.float_images(),
                                           train.labels))
            trained = []
            for key, model in (("c", course), ("d", ours)):
                t = fmc.Trainer(copy.deepcopy(model), lr=0.1, epochs=1, shuffle=False,
                                progress=False, device="cpu")
                times[key].append(t.fit(train, test.subset(1000)).records[-1].seconds)
                trained.append(torch.cat([p.detach().flatten() for p in t.model.parameters()]))
            same = same and torch.equal(*trained)
    med = {k: statistics.median(v) for k, v in times.items()}
    labels = {"a": "(a) DataLoader + ToTensor loop", "b": "(b) tensor slices, NCHW",
              "c": "(c) Trainer, course's block order", "d": "(d) Trainer, fmclassify deeper"}
    print(f"deeper CNN, {args.train} training images, batch 64, SGD, median of {args.repeats} "
          "rounds; all rounds in brackets")
    for k, label in labels.items():
        runs = " ".join(f"{t:.2f}" for t in times[k])
        print(f"  {label:34s} {med[k]:6.2f} s  {med['a'] / med[k]:.2f}x   [{runs}]")
    print(f"  (c) and (d) trained weights equal bit for bit: {same}")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
