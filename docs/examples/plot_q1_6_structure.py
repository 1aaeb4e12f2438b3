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

This page trains nothing new. **Your answer** is the first cell: the Q1.4 call again, which
reads the finished runs back from the ``STORE`` folder, set next to the counts of Q1.5. For the
course's protocol, change ``"quick"`` to ``"full"`` in its ``BUDGET`` line, or set
``FMCLASSIFY_DOCS_BUDGET=full`` before you start Python or Jupyter.
"""

# %%
# The runs and the counts
# -----------------------

import os

import fmclassify as fmc
from fmclassify.report import BUDGETS

# "quick": the first 10,000 training images, 5 epochs; "full": the course's protocol.
BUDGET = BUDGETS[os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")]
SEEDS = (0, 1, 2)  # three runs per network, as the assignment report
STORE = f"runs-{BUDGET.name}"  # where the Q1.4 page kept its runs
# sphinx_gallery_start_ignore
# The docs build keeps every page's runs in a folder of its own (see docs/conf.py).
if "FMCLASSIFY_GALLERY_RUNS" in os.environ:
    STORE = os.path.join(os.environ["FMCLASSIFY_GALLERY_RUNS"], BUDGET.name)
# sphinx_gallery_end_ignore

train, test = fmc.load_dataset("fashion-mnist")
MODELS = ("base", "deeper", "wider")
result = fmc.compare_models(MODELS, lr=0.1, epochs=BUDGET.epochs, seeds=SEEDS,
                            data=(BUDGET.select(train), test), store=STORE)
reports = {name: fmc.count_parameters(fmc.build_model(name)) for name in MODELS}

# %%
# Per network, its parameters (and the share its first layer holds), its final and best test
# accuracy (mean over the seeds ± their standard deviation, in points) and its seconds per
# epoch on the machine that built these pages.

import pandas as pd

rows = {row["model"]: row for row in result.table()}


def pm(row, key):
    """A row's mean of ``key`` in percent, ± its spread over the seeds."""
    spread = row.get(f"{key}_std")
    return f"{row[key]:.1%}" + ("" if spread is None else f" ± {100 * spread:.1f}")


pd.DataFrame([{
    "model": name, "parameters": f"{rows[name]['parameters']:,}",
    "in the first layer": f"{reports[name].rows[0].numel / reports[name].trainable:.2%}",
    "final accuracy": pm(rows[name], "final_accuracy"),
    "best accuracy": pm(rows[name], "best_accuracy"),
    "s/epoch": f"{rows[name]['seconds_per_epoch']:.1f}",
} for name in MODELS]).set_index("model")

# %%
# Accuracy against size: each bar spans the mean ± the standard deviation over the seeds.

import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
for name in MODELS:
    row = rows[name]
    ax.errorbar(row["parameters"], 100 * row["final_accuracy"],
                yerr=100 * (row.get("final_accuracy_std") or 0), fmt="o", markersize=8,
                capsize=4)
    ax.annotate(f"{name}\n{row['seconds_per_epoch']:.1f} s/epoch",
                (row["parameters"], 100 * row["final_accuracy"]),
                textcoords="offset points", xytext=(8, -4), fontsize="small")
ax.set(xlabel="trainable parameters", ylabel="final test accuracy (%)",
       title=f"accuracy against size after {BUDGET.epochs} epochs")
ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
ax.margins(x=0.25, y=0.3)
ax.grid(alpha=0.3)

# %%
# Conclusions from these numbers
# ------------------------------
# Written by the code with the functions the assignment report uses
# (``fmclassify.course.assignment.observations``): first the report's Q1.6 sentences on the
# three networks, then what their structure shows. A network is called more accurate than
# another only beyond the spread of their seeds.

from fmclassify.course.assignment.observations import model_observations, structure_observations

model_observations(result) + structure_observations(result, reports)

# %%
# **The budget.** On the quick budget these runs saw 10,000 training images for 5 epochs: a
# network that trains more slowly at first, as batch norm and dropout can make the CNN, is
# judged early. The full budget (``FMCLASSIFY_DOCS_BUDGET=full``) trains the course's ten epochs
# on all images, and its ranking is the one to quote.
