r"""
Q1.1: four learning rates
=========================

**The question.** Train the quickstart network (an MLP 784-512-512-10 with ReLU, plain SGD,
batch 64) for ten epochs with each of the learning rates 1, 0.1, 0.01 and 0.001. Report the
test accuracy of each run in a table, and plot each run's loss curve.

**What the learning rate does.** Stochastic gradient descent moves every weight against the
gradient of the loss on one batch, :math:`w \leftarrow w - \eta\, \nabla_w L`, and the
learning rate :math:`\eta` sets the length of that step. A step too short makes steady but slow
progress, so within a fixed budget of epochs the run ends far from where it could get. A step
too long overshoots the valley it is trying to descend: the loss jumps around instead of
falling, or grows without bound until it is no longer a finite number.

fmclassify names both failures. A run whose training loss becomes NaN or infinite ends as
*diverged*, with the epoch it happened in. A run that stays finite but thrashes is flagged
*unstable* by a stated rule (:ref:`run-statuses`): some epoch's training loss ends more than 5%
above both the loss of a uniform guess and the untrained network's loss (the steps made it
worse than no training), or its test accuracy falls by more than a fixed margin from one epoch
to the next.
"""

# %%
# The budget and the data
# -----------------------
# A docs build runs this page on the real Fashion-MNIST with the report's quick budget (the
# default): the first training images, the whole test set, fewer epochs;
# ``FMCLASSIFY_DOCS_BUDGET=full`` uses the course's settings. The finished runs are kept in
# ``STORE``, so that the Q1.3 page can discuss them without training them again.

import itertools
import math
import os
import tempfile
from pathlib import Path

import fmclassify as fmc
from fmclassify.history import UNSTABLE_DROP
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
LRS = (1.0, 0.1, 0.01, 0.001)

print(f"budget {BUDGET.name!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs per run, batch 64, plain SGD, seed 0")

# %%
# The sweep
# ---------
# :func:`~fmclassify.lr_sweep` trains one run per learning rate, each from the same initial
# weights (``seed=0``) and with the same batch order, so the learning rate is the only
# difference between them. The table names what the course left ambiguous: the accuracy after
# the last epoch, the best over the epochs, and the mean over the epochs (the course's "Avg
# Accuracy"), as separate columns. For pandas, ``sweep.to_dataframe()`` has one row per run with
# its configuration (``lr``, ``seed``, ...) and outcome as columns, and
# ``sweep.to_dataframe(per="epoch")`` one row per run and epoch.

sweep = fmc.lr_sweep("base", lrs=LRS, epochs=EPOCHS, data=(train, test), store=STORE)
print(sweep.to_markdown())

# %%
# One loss curve per run
# ----------------------
# Each figure shows one run: the training loss (the mean over the epoch's batches) and the test
# loss after each epoch on the left, the test accuracy on the right. Epoch 0 is the untrained
# network, evaluated before the first step.

loss_curves = [run.history.plot() for run in sweep.runs]

# %%
# And all four together: the training loss, then the test accuracy.

train_loss = plot_comparison(sweep.histories, metric="train_loss", title="training loss")
accuracy = plot_comparison(sweep.histories, metric="test_accuracy", title="test accuracy")

# %%
# What the runs show
# ------------------
# The discussion below is printed by the code from the runs above, so its numbers are always
# those of this build. A yardstick for the loss: a network that gives every class the same
# probability has cross-entropy :math:`\ln C` for :math:`C` classes, whatever the image.

guess = math.log(train.num_classes)
print(f"Loss of a uniform guess over {train.num_classes} classes: ln {train.num_classes} = "
      f"{guess:.3f}. The instability rule: an epoch's training loss more than 5% above both "
      f"{guess:.3f} and the untrained network's test loss, or a fall of more than "
      f"{100 * UNSTABLE_DROP:g} percentage points in test accuracy between two epochs.\n")


def rose_every_epoch(history):
    """Whether test accuracy went up from each epoch to the next (epoch 0 included)."""
    accs = history.column("test_accuracy", include_initial=True)
    return all(b > a for a, b in itertools.pairwise(accs))


for run in sweep.runs:
    h = run.history
    if h.status == "diverged":
        print(f"lr {run.spec.lr:g}: {h.describe_status()}. {h.reason}.")
        continue
    accs, losses = h.column("test_accuracy"), h.column("train_loss")
    falls = [a - b for a, b in itertools.pairwise(accs)]
    trend = ("rose every epoch" if rose_every_epoch(h)
             else f"fell at least once (by up to {100 * max(falls):.1f} points)")
    print(f"lr {run.spec.lr:g}: {h.describe_status()}. Test accuracy by epoch "
          + ", ".join(f"{a:.1%}" for a in accs) + f": it {trend}. Training loss "
          f"{losses[0]:.3f} in epoch 1 ({losses[0] / guess:.0%} of a uniform guess's), "
          f"{losses[-1]:.3f} in epoch {len(losses)} ({losses[-1] / guess:.0%}).")

# %%
# Now the comparison: which learning rate did best, and what the larger and smaller ones did.

finite = sorted((r for r in sweep.runs if r.history.status != "diverged"),
                key=lambda r: r.spec.lr, reverse=True)
for r in sweep.runs:
    if r.history.status == "diverged":
        print(f"lr {r.spec.lr:g} took steps so long that the loss left the finite numbers.")
if finite:
    best = max(finite, key=lambda r: r.history.final_accuracy)
    print(f"Best after {EPOCHS} epochs: lr {best.spec.lr:g}, {best.history.final_accuracy:.1%} "
          "test accuracy.")
    for r in finite:
        if r is best:
            continue
        h = r.history
        side = "larger" if r.spec.lr > best.spec.lr else "smaller"
        gap = 100 * (best.history.final_accuracy - h.final_accuracy)
        print(f"  lr {r.spec.lr:g} ({side}) ended {gap:.1f} points lower, at "
              f"{h.final_accuracy:.1%}", end="")
        if side == "larger" and h.trained[0].train_loss > guess:
            print(": its first epoch's training loss was worse than a uniform guess, the mark "
                  "of steps that overshoot.")
        elif side == "larger":
            print(": a longer step did not buy more.")
        elif rose_every_epoch(h):
            print(": it improved every epoch, only more slowly; its steps are too short for "
                  "this budget.")
        else:
            print(".")
    after_one = {r.spec.lr: r.history.column("test_accuracy")[0] for r in finite}
    ranking = sorted(after_one, key=after_one.__getitem__, reverse=True)
    print("After one epoch the runs rank: "
          + " > ".join(f"lr {lr:g} ({after_one[lr]:.1%})" for lr in ranking) + ".")
    below = [lr for lr in ranking if lr <= best.spec.lr]
    if below == sorted(below, reverse=True) and len(below) > 1:
        print(f"From lr {best.spec.lr:g} down, the larger the learning rate, the faster the "
              "accuracy rose: the speed of learning follows the step length until the step "
              "gets too long.")

# %%
# **Reading the table.** A learning rate is not good or bad by itself: it is good for this
# network, this loss, this batch size and this budget. The Q1.2 page asks the complementary
# question, how many epochs each learning rate needs before its accuracy stops changing, and the
# Q1.3 page puts the two side by side.
