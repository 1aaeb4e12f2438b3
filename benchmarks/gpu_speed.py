"""The GPU's training speed, side by side in one process: each step, and runs trained together.

Measured on all of Fashion-MNIST (60,000 images, batch 64, fp32), training seconds of an epoch
(``History`` ``seconds``: the epoch's steps up to a host sync), median of epochs 2-3:

* ``base``: the base MLP with ``step="autograd"``, ``"fused"`` and ``"graph"`` (the default on
  CUDA);
* ``deeper``: the course's CNN with ``"autograd"`` and ``"graph"``;
* ``together``: 12 base-MLP runs (learning rates 1, 0.1, 0.01, 0.001 x seeds 0, 1, 2) trained
  by :func:`fmclassify.fit_together`, against one run alone with the default step; and the
  largest difference between each run's History and the same run trained alone;
* ``deeper graph, the recipe``: the course's CNN with the report's modern recipe (momentum,
  one-cycle schedule, flips, batch 128) through the graph step.

    python benchmarks/gpu_speed.py [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

import fmclassify as fmc

LRS = (1.0, 0.1, 0.01, 0.001)


def epoch_seconds(model: str, step: str, data, epochs: int = 3) -> float:
    t = fmc.Trainer(fmc.build_model(model, seed=0), lr=0.1, epochs=epochs, step=step,
                    device="cuda", progress=False)
    return statistics.median(t.fit(*data).column("seconds")[1:])


def recipe_epoch(data, epochs: int = 3) -> float:
    """The course's CNN with the report's modern recipe (momentum, one-cycle, flips)."""
    from fmclassify.report import RECIPE, RECIPE_LR

    t = fmc.Trainer(fmc.build_model("deeper", seed=0), lr=RECIPE_LR, epochs=epochs,
                    device="cuda", progress=False, **RECIPE)
    h = t.fit(*data)
    assert h.metadata["step"] == "graph", h.metadata["step"]
    return statistics.median(h.column("seconds")[1:])


def together(data, model: str = "base", lrs=LRS, seeds: int = 3,
             epochs: int = 3) -> dict[str, object]:
    def make(lr: float, seed: int) -> fmc.Trainer:
        return fmc.Trainer(fmc.build_model(model, seed=seed), lr=lr, epochs=epochs, seed=seed,
                           device="cuda", progress=False)

    configs = [(lr, s) for lr in lrs for s in range(seeds)]
    torch.cuda.synchronize()
    started = time.perf_counter()
    runs = fmc.fit_together([make(lr, s) for lr, s in configs], *data)
    wall = time.perf_counter() - started
    joint = statistics.median(runs[0].column("seconds")[1:])
    diffs: dict[str, float] = {}
    alone_epoch = []
    for h, (lr, s) in zip(runs, configs, strict=True):
        alone = make(lr, s).fit(*data)
        alone_epoch.append(statistics.median(alone.column("seconds")[1:]))
        rel = max(abs(a.train_loss - b.train_loss) / abs(b.train_loss)
                  for a, b in zip(h.trained, alone.trained, strict=True))
        acc = max(abs(a.test_accuracy - b.test_accuracy)
                  for a, b in zip(h.trained, alone.trained, strict=True))
        key = f"lr {lr:g}"
        prev = diffs.get(key + " train loss (rel)", 0.0)
        diffs[key + " train loss (rel)"] = max(prev, rel)
        diffs[key + " test accuracy (abs)"] = max(diffs.get(key + " test accuracy (abs)", 0.0),
                                                  acc)
    one = statistics.median(alone_epoch)
    n = len(configs)
    return {f"{n} together, epoch s": joint, "one alone, epoch s": one, "ratio": joint / one,
            f"{n} together, wall s ({epochs} epochs, with evaluation)": wall,
            "step": runs[0].metadata["step"], "largest differences": diffs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_speed.py needs a CUDA device")
    data = fmc.load_dataset("fashion-mnist", download=False)
    data = (data[0].to("cuda"), data[1].to("cuda"))
    out: dict[str, object] = {"device": torch.cuda.get_device_name(),
                              "torch": torch.__version__}
    measures: dict[str, Callable[[], object]] = {
        f"{model} {step}, epoch s": partial(epoch_seconds, model, step, data)
        for model, steps in (("base", ("autograd", "fused", "graph")),
                             ("deeper", ("autograd", "graph"))) for step in steps}
    measures["together"] = partial(together, data)
    measures["deeper graph, the recipe at batch 128, epoch s"] = partial(recipe_epoch, data)
    for name, measure in measures.items():
        try:
            out[name] = measure()
        except Exception as exc:  # record it, and go on with the next measurement
            out[name] = f"failed: {type(exc).__name__}: {exc}"
        print(name, json.dumps(out[name], indent=1), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
