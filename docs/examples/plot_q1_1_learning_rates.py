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

fmclassify names both failures (the statuses of `fmclassify.History`). A run whose training
loss becomes NaN or infinite ends as *diverged*, with the epoch it happened in. A run that stays
finite but thrashes is flagged *unstable*: some epoch's training loss ends more than 5% above
both the loss of a uniform guess, :math:`\ln 10 \approx 2.303` for ten classes, and the
untrained network's loss (the steps made it worse than no training), or its test accuracy falls
by more than 10 points from one epoch to the next.

**Your answer.** The first cell below is the whole answer to the question, in public
fmclassify calls: copy it, or download this page as a notebook (the links at its bottom) and
run it. It runs on the **quick** budget, the first 10,000 training images and 5 epochs, so that
these pages build in minutes. For the course's protocol (all 60,000 images and 10 epochs,
twelve times the training), change ``"quick"`` to ``"full"`` in its ``BUDGET`` line, or set the
environment variable ``FMCLASSIFY_DOCS_BUDGET=full`` before you start Python or Jupyter.
"""

# %%
# The sweep
# ---------
# `fmclassify.lr_sweep` trains one run per learning rate and seed; every seed starts from its
# own initial weights and batch order, the same for every learning rate, so within a seed the
# learning rate is the only difference. Three seeds, as in the assignment report, measure how
# much a run's accuracy owes to its seed: a difference between learning rates means something
# only beyond that spread. The table gives, per learning rate, the mean over the seeds ± their
# standard deviation of the accuracy after the last epoch, of the best over the epochs and of
# the mean over the epochs (the course's "Avg Accuracy").

import os

import fmclassify as fmc
from fmclassify.report import BUDGETS

# "quick": the first 10,000 training images, 5 epochs; "full": the course's protocol.
BUDGET = BUDGETS[os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")]
SEEDS = (0, 1, 2)  # three runs per learning rate, as the assignment report
STORE = f"runs-{BUDGET.name}"  # finished runs are kept here: a second call reads them back
# sphinx_gallery_start_ignore
# The docs build keeps every page's runs in a folder of its own, emptied at each build
# (docs/conf.py), so that the Q1.3 page reads back the runs of this one.
if "FMCLASSIFY_GALLERY_RUNS" in os.environ:
    STORE = os.path.join(os.environ["FMCLASSIFY_GALLERY_RUNS"], BUDGET.name)
# sphinx_gallery_end_ignore

train, test = fmc.load_dataset("fashion-mnist")
sweep = fmc.lr_sweep("base", lrs=(1.0, 0.1, 0.01, 0.001), epochs=BUDGET.epochs, seeds=SEEDS,
                     data=(BUDGET.select(train), test), store=STORE)
sweep

# %%
# One loss curve per run
# ----------------------
# The first seed's run at each learning rate: the training loss (the mean over the epoch's
# batches) and the test loss after each epoch on the left, the test accuracy on the right.
# Epoch 0 is the untrained network, evaluated before the first step. (``sweep.plot()`` draws
# every run of every seed; ``sweep.plot().save("figures")`` writes them to files named after
# the runs: ``figures/run-base-lr0.1-s0.png``, ...)

first_seed = [run for run in sweep.runs if run.spec.seed == SEEDS[0]]
loss_curves = [run.history.plot() for run in first_seed]

# %%
# And the four together: the training loss, then the test accuracy.

from fmclassify.plotting import plot_comparison

train_loss = plot_comparison([run.history for run in first_seed], metric="train_loss",
                             title=f"training loss, seed {SEEDS[0]}")
accuracy = plot_comparison([run.history for run in first_seed], metric="test_accuracy",
                           title=f"test accuracy, seed {SEEDS[0]}")

# %%
# What the runs show
# ------------------
# These sentences are written by the code, from the table above, with the same function the
# assignment report uses (``fmclassify.course.assignment.observations``): their numbers are
# always those of this build, and a learning rate is called better than another only beyond the
# spread of their seeds.

from fmclassify.course.assignment.observations import sweep_observations

sweep_observations(sweep)

# %%
# **Reading the table.** A learning rate is not good or bad by itself: it is good for this
# network, this loss, this batch size and this budget. The Q1.2 page asks the complementary
# question, how many epochs each learning rate needs before its accuracy stops changing, and the
# Q1.3 page puts the two side by side.
