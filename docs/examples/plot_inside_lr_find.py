r"""
Inside training: finding a learning rate in 100 steps
=====================================================

Q1.1 finds a good learning rate the expensive way: one full training run per candidate rate.
The **learning-rate range test** (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3; fastai's ``lr_find``) gets a first answer from a single short run. It
makes 100 optimizer steps, one batch each, raising the learning rate exponentially from
:math:`10^{-7}` to 10, and records each batch's loss. Then it puts every weight back, so the
model you pass in is untouched.

Read the curve from left to right:

* at tiny rates the steps are too small to change anything: the loss stays at its starting
  value, :math:`\ln 10 \approx 2.30` for ten classes;
* at some rate the steps start to count and the loss falls: the model learns;
* at large rates the steps overshoot and the loss climbs; the test stops once the smoothed
  loss passes four times its lowest value.

Good learning rates lie where the loss falls, not at its lowest point: the lowest point is
already close to the rate at which training blows up, and a whole run at that rate, with
thousands of steps instead of one per rate, would diverge.
:func:`~fmclassify.lr_find` suggests three rates from the smoothed curve (in
:class:`~fmclassify.LRFinderResult`'s ``suggestions``):

``"valley"`` (the default, ``result.suggestion``)
   In the longest stretch over which the loss keeps falling, the first rate by which it has
   made a quarter of that fall: where learning is under way and the curve is still far from
   its blow-up.
``"steepest"``
   The rate at the start of the steepest fall of the loss against :math:`\log(\text{lr})`:
   where one more step of the rate buys the most progress.
``"minimum/10"``
   A tenth of the rate at the lowest loss: the rule of thumb of "one order of magnitude below
   where it stops improving".

They are starting points, not answers. The test sees each rate for one batch, from the
weights the smaller rates left; a run trains thousands of steps at one rate. This page runs
the test on the course's MLP and then checks it against the course's own learning rates,
trained for real.
"""

# %%
# The budget and the data
# -----------------------
# The range test costs 100 batches whatever the data set's size. The check trains the
# course's four rates: for one epoch each on the quick budget (6,000 images), and on the full
# budget exactly Q1.1's runs (10 epochs on all images), which a docs build reuses.

import math
import os
import tempfile
from pathlib import Path

import fmclassify as fmc

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"
# The docs build names a folder of its own; run by hand, the runs go to the temp folder.
RUNS = os.environ.get("FMCLASSIFY_GALLERY_RUNS") or Path(tempfile.gettempdir(), "fmclassify")
STORE = Path(RUNS, BUDGET)

train, test = fmc.load_dataset("fashion-mnist")
if QUICK:
    train, test = train.subset(6_000), test.subset(2_000)
SWEEP_EPOCHS = 1 if QUICK else 10
LRS = (1.0, 0.1, 0.01, 0.001)  # Q1.1's
print(f"budget {BUDGET!r}: {len(train):,} training and {len(test):,} test images; the check "
      f"trains {SWEEP_EPOCHS} epoch(s) per rate, batch 64, plain SGD, seed 0")

# sphinx_gallery_capture_repr = ("_repr_html_",)  # a cell's last value shows as its table

# %%
# The range test
# --------------
# With the course's recipe (plain SGD, batch 64), on the same freshly built MLP that Q1.1
# trains. The result shows itself as its table of suggestions; ``finder.to_dataframe()`` gives
# its curve (rate, loss and smoothed loss per step) as a pandas DataFrame.

finder = fmc.lr_find(fmc.build_model("base", seed=0), train)
finder

# %%
# The curve: each batch's loss (faint), the smoothed loss, and the three suggestions.

curve = finder.plot()
curve

# %%
# Where the suggestions sit on the curve, and what the loss was there:


def smoothed_at(lr):
    """The smoothed loss at the step whose rate is closest to ``lr``."""
    step = min(range(len(finder.lrs)), key=lambda i: abs(finder.lrs[i] / lr - 1))
    return finder.smoothed[step]


start = finder.smoothed[0]
lowest = min(range(len(finder.smoothed)), key=finder.smoothed.__getitem__)
print(f"{len(finder.lrs)} steps ({finder.stop_reason}); the smoothed loss starts at {start:.2f} "
      f"and is lowest, {finder.smoothed[lowest]:.2f}, at lr {finder.lrs[lowest]:.3g}")
for name, lr in finder.suggestions.items():
    print(f"{name:>11}: lr {lr:.3g}, smoothed loss there {smoothed_at(lr):.2f}")

# %%
# Checking it against real training
# ---------------------------------
# :func:`~fmclassify.lr_sweep` trains the course's four rates. Passed to ``plot``, the sweep
# draws each trained rate on the same axes as a dotted line, labelled with its final test
# accuracy.

sweep = fmc.lr_sweep("base", lrs=LRS, epochs=SWEEP_EPOCHS, data=(train, test), store=STORE)
sweep

# %%

checked = finder.plot(sweep=sweep)
checked

# %%
# What the test got right
# -----------------------
# Printed from the test and the sweep above.

trained = {row["lr"]: row["final_accuracy"] for row in sweep.table()}
best = max(trained, key=trained.__getitem__)
print("final test accuracy: " + ", ".join(f"lr {lr:g}: {acc:.1%}" for lr, acc in trained.items()))
print(f"The best of the four rates is {best:g}.")
for name, lr in finder.suggestions.items():
    nearest = min(trained, key=lambda r: abs(math.log10(r / lr)))
    print(f"{name:>11} ({lr:.3g}) is nearest to the trained rate {nearest:g}"
          + (", the best one." if nearest == best else
             f", which reached {trained[nearest]:.1%} against the best's {trained[best]:.1%}."))
beyond = [f"{lr:g}" for lr in trained if lr > finder.lrs[lowest]]
print(f"Trained rates above the curve's lowest point (lr {finder.lrs[lowest]:.3g}): "
      f"{', '.join(beyond) or 'none'}; the test stopped at lr {finder.lrs[-1]:.3g} "
      f"({finder.stop_reason}).")

# %%
# **Reading it with Q1.1.** The range test and Q1.1 answer the same question at very
# different costs: 100 batches here, four runs of several epochs there. The test cannot tell
# a rate that trains well for ten epochs from one that only starts well: each rate gets one
# batch, from the weights the smaller rates left behind, so a rate can look fine for a step
# that a whole run at it would not survive. Use its suggestions to choose which rates to train
# (a few around ``"valley"``, within an order of magnitude), and let real runs on held-out data
# decide, as Q1.1 does. The test changes with the recipe: run it again after switching to
# momentum or Adam, or after changing the batch size, since each moves the good rates.
#
# **With momentum.** Pass the recipe you will train with: ``fmc.lr_find(model, train,
# momentum=0.9, nesterov=True)``. Momentum 0.9 adds up to ten recent gradients into each step,
# so the loss starts falling at smaller rates, and the suggestions move down with the good rates
# (measured in ``benchmarks/lr_find_check.py``: for this MLP the valley went from 0.167 to
# 0.045, and the best of a grid of 2-epoch runs from 0.3 to 0.03). A suggestion found with
# momentum is too small for plain SGD, and one found without too large for momentum. Across the
# course's two networks and a small CNN, the best rate of a short run lay between the
# ``"valley"`` and the ``"steepest"`` suggestion, within a factor of two: train both ends and
# one rate between.
