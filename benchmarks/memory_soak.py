"""Memory over a long run: 600 epochs on a small real subset, RSS at epoch 10 and 600.

The course's convergence runs last hundreds of epochs; nothing may grow per epoch (History
records are a few floats each). The run uses a ConvergenceDetector that never stops it, a
GradientTracer, and a checkpoint written after every epoch.

    .venv/bin/python benchmarks/memory_soak.py [--epochs 600] [--train 640]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

from _common import machine

import fmclassify as fmc


def rss_mib() -> float:
    """Current resident set size in MiB (from /proc, Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssProbe(fmc.CallbackBase):
    """Records RSS at chosen epochs."""

    needs_gradients = False

    def __init__(self, epochs: set[int]) -> None:
        self.epochs, self.samples = epochs, {}

    def on_epoch_end(self, run, record):
        if record.epoch in self.epochs:
            self.samples[record.epoch] = rss_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--train", type=int, default=640)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    print(machine())
    train, test = fmc.load_dataset("fashion-mnist", download=False)
    train, test = train.subset(args.train), test.subset(args.test)
    marks = {10, args.epochs // 2, args.epochs}
    probe = RssProbe(marks)
    detector = fmc.ConvergenceDetector(threshold=1e-9, patience=10_000, stop=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.01, epochs=args.epochs,
                              progress=False, checkpoint=Path(tmp) / "soak.ckpt",
                              callbacks=[detector, fmc.GradientTracer(steps=100), probe])
        history = trainer.fit(train, test)
    print(f"{history.epochs_trained} epochs on {len(train)} train / {len(test)} test images, "
          f"status {history.status}")
    for epoch in sorted(probe.samples):
        print(f"  RSS after epoch {epoch:>4}: {probe.samples[epoch]:8.1f} MiB")
    first, last = probe.samples[10], probe.samples[args.epochs]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  growth from epoch 10 to {args.epochs}: {last - first:+.1f} MiB; "
          f"peak RSS {peak:.1f} MiB")


if __name__ == "__main__":
    main()
