r"""
Q1.6: conclusions on structure
==============================

**The question.** From Q1.4 and Q1.5, what do you conclude about the structure of a network:
its depth, its width, its number of parameters?

**What to look at.** A parameter count measures capacity, how many functions a network can
represent, not how well it learns the one that is wanted. Three things decide the latter besides
the count:

* **what the structure assumes about the data.** A convolution assumes that what matters in an
  image is local (edges, textures) and the same everywhere (a collar is a collar in any corner);
  on images these assumptions are right, and they spend few parameters. An MLP assumes nothing:
  it must learn from examples, pixel by pixel, what a convolution is built to know;
* **how easily it trains.** Batch normalization keeps the scale of each layer's inputs steady,
  which lets plain SGD take useful steps in a deep network; dropout makes the network
  robust to losing single units, and trades some training speed for less overfitting;
* **what it costs.** Each parameter is multiplied and updated at every step, and a convolution
  is applied at every image position: time per epoch follows the arithmetic, not the count.

This page trains nothing new: it makes the Q1.4 call again, which reads the finished runs back
from the ``store`` folder, and sets them next to the counts of Q1.5.
"""

# %%
# The runs and the counts
# -----------------------

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import fmclassify as fmc
from fmclassify.report import Budget

# The report's budgets (fmclassify.report.BUDGETS): a page and the report share each number.
BUDGET = Budget.named(os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick"))
QUICK = BUDGET.name == "quick"
# The docs build names a folder of its own; run by hand, the runs go to the temp folder.
RUNS = os.environ.get("FMCLASSIFY_GALLERY_RUNS") or Path(tempfile.gettempdir(), "fmclassify")
STORE = Path(RUNS, BUDGET.name)

train, test = fmc.load_dataset("fashion-mnist")
train = BUDGET.select(train)  # the first images of the training set; the whole test set
EPOCHS = BUDGET.epochs
MODELS = ("base", "deeper", "wider")

result = fmc.compare_models(MODELS, lr=0.1, epochs=EPOCHS, data=(train, test), store=STORE)
rows = {row["model"]: row for row in result.table()}
reports = {name: fmc.count_parameters(fmc.build_model(name)) for name in MODELS}

print(f"budget {BUDGET.name!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs, lr 0.1, on {result.runs[0].history.metadata['device']}\n")
print("| model | parameters | in the first layer | final accuracy | best accuracy | s/epoch |")
print("|---|---:|---:|---:|---:|---:|")
for name in MODELS:
    row, first = rows[name], reports[name].rows[0]
    print(f"| {name} | {row['parameters']:,} | {first.numel / reports[name].trainable:.1%} "
          f"| {row['final_accuracy']:.1%} | {row['best_accuracy']:.1%} "
          f"| {row['seconds_per_epoch']:.1f} |")

fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
for name in MODELS:
    row = rows[name]
    ax.plot(row["parameters"], 100 * row["final_accuracy"], "o", markersize=9)
    ax.annotate(f"{name}\n{row['seconds_per_epoch']:.1f} s/epoch",
                (row["parameters"], 100 * row["final_accuracy"]),
                textcoords="offset points", xytext=(8, -4), fontsize="small")
ax.set(xlabel="trainable parameters", ylabel="final test accuracy (%)",
       title=f"accuracy against size after {EPOCHS} epochs")
ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
ax.margins(x=0.25, y=0.3)
ax.grid(alpha=0.3)

# %%
# Conclusions from these numbers
# ------------------------------
# Printed from the table above; each sentence is chosen by what the numbers show.

acc = {m: rows[m]["final_accuracy"] for m in MODELS}
params = {m: rows[m]["parameters"] for m in MODELS}
secs = {m: rows[m]["seconds_per_epoch"] for m in MODELS}
best = max(MODELS, key=acc.__getitem__)
print(f"1. The most accurate network here is {best} ({acc[best]:.1%}, {params[best]:,} "
      "parameters).")

wide_gain = acc["wider"] - acc["base"]
extra = params["wider"] - params["base"]
print(f"2. Width: {extra:,} more parameters ({params['wider'] / params['base']:.2f} x) moved "
      f"the MLP's accuracy by {100 * wide_gain:+.1f} points"
      + (", a small return for more than doubling its size." if abs(wide_gain) < 0.01
         and params["wider"] > 2 * params["base"] else "."))

best_mlp = max(("base", "wider"), key=acc.__getitem__)
cnn_lead = acc["deeper"] - acc[best_mlp]
print(f"3. Structure: the CNN is {100 * abs(cnn_lead):.1f} points "
      + ("ahead of" if cnn_lead >= 0 else "behind") + f" the best MLP ({best_mlp}), with "
      f"{params['deeper'] / params[best_mlp]:.2f} times its parameters.")
if cnn_lead > 0 and params["deeper"] < params["wider"]:
    print("   It beats the wider MLP with fewer parameters: how the parameters are arranged "
          "mattered more than how many there are.")
elif cnn_lead > 0:
    print("   It is ahead, but also larger than the MLP it beats; this comparison alone does not "
          "separate structure from size.")
else:
    print("   Within this budget its structure did not pay off; batch norm and dropout change "
          "how fast it learns, and the full budget may rank it differently.")

share = {kind: sum(r.numel for r in reports["deeper"].rows if r.layer_type == kind)
         / params["deeper"] for kind in ("Conv2d", "BatchNorm2d", "Linear")}
print(f"4. Where the parameters sit: of the CNN's, {share['Conv2d']:.1%} are in its "
      f"convolutions, {share['BatchNorm2d']:.2%} in batch norm and {share['Linear']:.1%} in its "
      "linear layers. In the MLPs the first layer, which gives every pixel its own weight per "
      "unit, holds "
      + " and ".join(f"{reports[m].rows[0].numel / params[m]:.0%} ({m})" for m in ("base", "wider"))
      + ".")

time_ratio, size_ratio = secs["deeper"] / secs["base"], params["deeper"] / params["base"]
print(f"5. Cost: per epoch the CNN took {time_ratio:.1f} x and the wider MLP "
      f"{secs['wider'] / secs['base']:.1f} x the time of the base MLP on this machine"
      + (f", while the CNN has only {size_ratio:.1f} x its parameters: its filters are applied "
         "at every position, so its arithmetic grows with the image, not with the count."
         if time_ratio > 1.5 * size_ratio else "."))
print(f"6. Budget: these runs saw {len(train):,} training images for {EPOCHS} epochs. "
      + ("A quick docs build; the full budget (FMCLASSIFY_DOCS_BUDGET=full) trains the course's "
         "ten epochs on all images, and its ranking is the one to quote." if QUICK else
         "The course's budget."))
