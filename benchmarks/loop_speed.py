"""This tree's default training against another tree's (e.g. main before a change), side by side.

Each measurement runs in a fresh interpreter with one tree's ``src`` first on ``sys.path``;
the two trees alternate round by round, so a busy spell of the machine hits both. Measured:

* ``base``: one epoch of the base MLP on all of Fashion-MNIST with the Trainer's defaults
  (training seconds of the epoch, median over epochs 2-3);
* ``deeper``: the same for the course's CNN on 10,000 images;
* ``sweep``: wall time of ``lr_sweep("base", lrs=(1, 0.1, 0.01, 0.001), epochs=E)`` with its
  defaults (all images; training and evaluation).

    git worktree add /tmp/main-before <commit>
    python loop_speed.py --other /tmp/main-before --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parents[1]

SNIPPETS = {
    "base": """
import fmclassify as fmc, statistics
train, test = fmc.load_dataset("fashion-mnist", download=False)
h = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=3, progress=False).fit(train, test)
print(statistics.median(h.column("seconds")[1:]))
""",
    "deeper": """
import fmclassify as fmc, statistics
train, test = fmc.load_dataset("fashion-mnist", download=False)
h = fmc.Trainer(fmc.build_model("deeper", seed=0), lr=0.1, epochs=3,
                progress=False).fit(train.subset(10000), test.subset(2000))
print(statistics.median(h.column("seconds")[1:]))
""",
    "sweep": """
import fmclassify as fmc, time
data = fmc.load_dataset("fashion-mnist", download=False)
t = time.perf_counter()
r = fmc.lr_sweep("base", lrs=(1, 0.1, 0.01, 0.001), epochs={epochs}, data=data)
print(time.perf_counter() - t)
""",
}


def measure(tree: Path, what: str, epochs: int) -> float:
    code = SNIPPETS[what].format(epochs=epochs) if what == "sweep" else SNIPPETS[what]
    env_path = str(tree / "src")
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r})"
                          f"\n{code}"], capture_output=True, text=True, check=True, timeout=1800)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the tree to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep-epochs", type=int, default=2)
    parser.add_argument("--only", default="base,deeper,sweep")
    args = parser.parse_args()
    print(machine())
    trees = {"other": args.other.resolve(), "this": HERE}
    results: dict[str, dict[str, list[float]]] = {}
    for what in args.only.split(","):
        results[what] = {"other": [], "this": []}
        for r in range(args.repeats):
            order = ("other", "this") if r % 2 == 0 else ("this", "other")
            for name in order:
                seconds = measure(trees[name], what, args.sweep_epochs)
                results[what][name].append(seconds)
                print(f"  {what} round {r + 1} {name}: {seconds:.2f} s", flush=True)
        a, b = (statistics.median(results[what][k]) for k in ("other", "this"))
        print(f"{what}: other {a:.2f} s, this {b:.2f} s, this is {a / b:.2f}x the other's speed")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
