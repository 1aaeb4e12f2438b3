r"""
Q1.4: deeper or wider?
======================

**The question.** Besides the quickstart MLP, train a deeper and a wider network with the same
settings (learning rate 0.1, batch 64, plain SGD). Report the accuracy and the number of
trainable parameters of each.

**The three networks**, all registered by name (:func:`~fmclassify.list_models`):

``base``
   The quickstart MLP: 784-512-512-10 with ReLU.
``deeper``
   The course's CNN: two convolution blocks (3x3 convolution, batch norm, ReLU, 2x2 max-pool;
   32 then 64 channels), then three linear layers 2304-600-120-10 with dropout after the first.
   It is deeper in layers, and different in kind: a convolution applies the same small filter at
   every position of the image, so it holds few weights and looks at neighbouring pixels
   together, while a linear layer on the flattened image gives every pixel its own weight.
``wider``
   An MLP with the same depth as ``base`` and wider hidden layers: 784-1024-728-10.

Depth and width are not the only differences: the CNN also has batch normalization and dropout,
which change how it trains. So this comparison answers "which of these three networks does
better here", not "does depth beat width" in general.
"""

# %%
# The budget and the data
# -----------------------

import os
import tempfile
from pathlib import Path

import fmclassify as fmc
from fmclassify.plotting import plot_comparison
from fmclassify.report import Budget

# The report's budgets (fmclassify.report.BUDGETS): a page and the report share each number.
BUDGET = Budget.named(os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick"))
# The docs build names a folder of its own; run by hand, the runs go to the temp folder.
RUNS = os.environ.get("FMCLASSIFY_GALLERY_RUNS") or Path(tempfile.gettempdir(), "fmclassify")
STORE = Path(RUNS, BUDGET.name)

train, test = fmc.load_dataset("fashion-mnist")
train = BUDGET.select(train)  # the first images of the training set; the whole test set
EPOCHS = BUDGET.epochs
MODELS = ("base", "deeper", "wider")

print(f"budget {BUDGET.name!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs per run, lr 0.1, batch 64, plain SGD, seed 0")
for spec in fmc.list_models():
    if spec.name in MODELS:
        print(f"{spec.name:>7}: {spec.description}")

# %%
# The comparison
# --------------
# :func:`~fmclassify.compare_models` trains each model with the same settings and data. The
# ``parameters`` column counts the trainable parameters of each.

result = fmc.compare_models(MODELS, lr=0.1, epochs=EPOCHS, data=(train, test), store=STORE)
print(result.to_markdown())

# %%
# The curves.

accuracy = plot_comparison(result.histories, metric="test_accuracy", title="test accuracy")
train_loss = plot_comparison(result.histories, metric="train_loss", title="training loss")

# %%
# What the runs show
# ------------------
# Printed from the table above.

rows = {row["model"]: row for row in result.table()}
base = rows["base"]
for name in MODELS:
    row = rows[name]
    print(f"{name:>7}: {row['parameters']:>9,} parameters "
          f"({row['parameters'] / base['parameters']:.2f} x base), final accuracy "
          f"{row['final_accuracy']:.1%}, best {row['best_accuracy']:.1%}, "
          f"{row['seconds_per_epoch']:.1f} s per epoch "
          f"({row['seconds_per_epoch'] / base['seconds_per_epoch']:.1f} x base)")

by_accuracy = sorted(MODELS, key=lambda m: rows[m]["final_accuracy"], reverse=True)
by_parameters = sorted(MODELS, key=lambda m: rows[m]["parameters"], reverse=True)
print("\nRanked by final accuracy:   " + " > ".join(by_accuracy))
print("Ranked by parameter count:  " + " > ".join(by_parameters))
if by_accuracy == by_parameters:
    print("Here the ranking by accuracy is the ranking by size.")
else:
    print("Here the ranking by accuracy is not the ranking by size: parameters alone do not "
          "decide.")

deeper, wider = rows["deeper"], rows["wider"]
lead = deeper["final_accuracy"] - wider["final_accuracy"]
winner, loser = ("deeper", "wider") if lead >= 0 else ("wider", "deeper")
print(f"Depth against width: {winner} ended {100 * abs(lead):.1f} points ahead of {loser}; "
      f"the CNN has {deeper['parameters'] / wider['parameters']:.2f} times the parameters of "
      "the wider MLP.")
gain = wider["final_accuracy"] - base["final_accuracy"]
print(f"Widening the MLP added {wider['parameters'] - base['parameters']:,} parameters and "
      f"changed its final accuracy by {100 * gain:+.1f} points.")

# %%
# The Q1.5 page counts these parameters layer by layer, by hand and with
# :func:`~fmclassify.count_parameters`; the Q1.6 page draws the conclusions on structure.
