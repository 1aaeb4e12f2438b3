r"""
Q1.2: when has a run converged?
===============================

**The question.** For each learning rate of Q1.1, how many epochs does the network need to
converge, where converged means that the test accuracy no longer changes, or changes by less
than a threshold?

**The rule, made exact.** "Stops changing" needs three choices the question leaves open, and
`fmclassify.ConvergenceDetector` makes each of them explicit:

* **smoothing**: compare the moving average of the last ``window`` accuracies rather than the raw
  values, so one noisy epoch neither declares convergence nor hides it;
* **threshold**: an epoch is *quiet* when the smoothed accuracy moved by less than ``threshold``
  from the previous epoch's; accuracy is a fraction, so ``threshold=0.001`` is a tenth of a
  percentage point;
* **patience**: the run has converged at the first epoch that ends ``patience`` quiet epochs in a
  row.

`fmclassify.convergence_study` trains each learning rate until the detector says so, or until an
epoch budget runs out; a run that never converges is reported as "not converged within N
epochs" rather than given a number.

**The threshold's effect.** A looser threshold counts more epochs as quiet, so by this rule it
can only declare convergence at the same epoch or earlier, never later. That makes it possible to
measure every looser threshold on the runs trained once with the strictest: the detector is a
pure state machine, and replaying it on a recorded accuracy curve gives exactly the epoch it
would have stopped the run at.

**Your answer** is the first cell. It runs on the **quick** budget (the first 10,000 training
images, at most 30 epochs, and a looser rule that such a subset meets: 0.5 points over a
3-epoch average, twice in a row). For the course's protocol (all images, at most 600 epochs, 0.1
points three times in a row), change ``"quick"`` to ``"full"`` in its ``BUDGET`` line, or set
``FMCLASSIFY_DOCS_BUDGET=full`` before you start Python or Jupyter.
"""

# %%
# The study
# ---------
# The same data, learning rates and seeds as the Q1.1 page, with the budget's rule.

import os

import fmclassify as fmc
from fmclassify.report import BUDGETS

# "quick": the first 10,000 training images, a looser rule; "full": the course's protocol.
BUDGET = BUDGETS[os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")]
SEEDS = (0, 1, 2)  # three runs per learning rate, as the assignment report
STORE = f"runs-{BUDGET.name}"  # finished runs are kept here: a second call reads them back
# sphinx_gallery_start_ignore
# The docs build keeps every page's runs in a folder of its own (see docs/conf.py).
if "FMCLASSIFY_GALLERY_RUNS" in os.environ:
    STORE = os.path.join(os.environ["FMCLASSIFY_GALLERY_RUNS"], BUDGET.name)
# sphinx_gallery_end_ignore

train, test = fmc.load_dataset("fashion-mnist")
RULE = BUDGET.detector_config()  # threshold, patience, window
study = fmc.convergence_study("base", lrs=(1.0, 0.1, 0.01, 0.001),
                              max_epochs=BUDGET.max_epochs,
                              detector=fmc.ConvergenceDetector(**RULE), seeds=SEEDS,
                              data=(BUDGET.select(train), test), store=STORE)
study

# %%
# The first seed's accuracy curves, and each of its runs with the epoch it converged at (a
# dotted line) when it did.

from fmclassify.plotting import plot_comparison

first_seed = [run for run in study.runs if run.spec.seed == SEEDS[0]]
accuracy = plot_comparison([run.history for run in first_seed], metric="test_accuracy",
                           title=f"test accuracy until convergence, seed {SEEDS[0]}")
runs = [run.history.plot() for run in first_seed]

# %%
# What the runs show
# ------------------
# Written by the code from the study above, with the function the assignment report uses
# (``fmclassify.course.assignment.observations``).

from fmclassify.course.assignment.observations import convergence_observations

convergence_observations(study)

# %%
# The threshold's effect
# ----------------------
# Replay the rule with looser thresholds on each run's recorded accuracies. The replay with the
# study's own threshold must give the epoch the study found: the code checks it. A cell holds
# the epoch of each seed, in order.

import pandas as pd

# As strict as the study's threshold or looser: a stricter one would need longer runs.
THRESHOLDS = [t for t in (0.05, 0.02, 0.01, 0.005, 0.002, 0.001) if t >= RULE["threshold"]]


def converged_epoch(history, threshold):
    """The epoch the rule with ``threshold`` declares convergence at, or None."""
    replay = fmc.ConvergenceDetector(**{**RULE, "threshold": threshold})
    for epoch, acc in zip(history.column("epoch"), history.column("test_accuracy"), strict=True):
        if replay.update(acc, epoch):
            return replay.converged_epoch
    return None


replay = {lr: {t: [converged_epoch(run.history, t) for run in runs] for t in THRESHOLDS}
          for lr, runs in study.groups().items()
          if all(run.history.status != "diverged" for run in runs)}
for lr, runs in study.groups().items():
    found = [run.history.convergence.epoch for run in runs]
    if lr in replay and replay[lr][RULE["threshold"]] != found:
        raise RuntimeError(f"the replay disagrees with the study for lr {lr:g}")

pd.DataFrame({f"threshold {t:g}": {f"lr {lr:g}": "/".join(str(e or "-") for e in row[t])
                                   for lr, row in replay.items()} for t in THRESHOLDS})

# %%
# The same, drawn: each learning rate's convergence epoch (mean over its seeds) against the
# threshold; an open circle marks a threshold under which some seed did not converge within the
# budget.

import statistics

import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
ceiling = BUDGET.max_epochs + 1  # where "not converged within the budget" is drawn
for lr, row in replay.items():
    done = {t: None if None in epochs else statistics.fmean(epochs) for t, epochs in row.items()}
    (line,) = ax.plot(THRESHOLDS, [e or ceiling for e in done.values()], "-", alpha=0.5,
                      label=f"lr={lr:g}")
    for t, e in done.items():
        ax.plot(t, e or ceiling, "o", color=line.get_color(),
                fillstyle="full" if e is not None else "none")
ax.axhline(ceiling, color="grey", linestyle=":", linewidth=0.8)
ax.set(xscale="log", xlabel="threshold (accuracy, as a fraction)",
       ylabel="converged at epoch (mean over seeds)", title="convergence epoch against threshold",
       ylim=(0, ceiling + 1))
ax.invert_xaxis()
ax.grid(alpha=0.3)
ax.legend(loc="upper left")

# %%
# Written by the code from the replay above: how much sooner a looser threshold stops each
# learning rate, and whether any run shows a threshold out of reach.

from fmclassify.course.assignment.observations import threshold_observations

threshold_observations(study, replay, RULE)

# %%
# **Converged is not the same as trained well.** The rule watches how much the accuracy moves,
# not how high it is. A learning rate whose steps are short moves the accuracy little per epoch,
# and can pass a loose threshold while it still has far to go; a learning rate whose steps are
# too long keeps the accuracy jumping and may never pass a strict one. Compare the accuracy at
# convergence above with the best any run reached before reading a convergence epoch as "this
# learning rate is done". The Q1.3 page puts these epochs next to the fixed-budget accuracies of
# Q1.1.
