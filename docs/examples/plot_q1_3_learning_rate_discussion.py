r"""
Q1.3: what the learning rate does
=================================

**The question.** Compare the results of Q1.1 (a fixed budget of epochs per learning rate) with
those of Q1.2 (as many epochs as each learning rate needs to converge), and explain the effect of
the learning rate.

**Two views of one trade-off.** Q1.1 asks how far each learning rate gets in a fixed number of
epochs; Q1.2 asks how long each needs until its accuracy stops moving. The learning rate sets the
length of every step, so it trades speed for stability:

* with short steps, each step is a safe approximation of going downhill, but many are needed:
  within a fixed budget the run is cut off early, and its accuracy moves slowly enough that a
  convergence rule may even call it done before it is;
* with longer steps, the same distance is covered in fewer epochs, until the step is longer than
  the region in which the gradient is a good guide: then the loss overshoots, oscillates, or
  leaves the finite numbers altogether. More epochs cannot help such a run.

A good constant learning rate is therefore close to the largest one that is still stable.
(Practice goes further: schedules that shrink the learning rate over time, and momentum, take
the long steps early and the careful ones late. The course uses plain SGD with a constant rate,
and so does this page.)

**Your answer** is the first cell: the calls of the Q1.1 and Q1.2 pages, with the same
settings and the same ``STORE`` folder, so nothing trains again: a run is keyed by its full
configuration and the data's checksum, and an identical call reads the finished runs back. (Run
on its own, this page trains them itself.) For the course's protocol, change ``"quick"`` to
``"full"`` in the ``BUDGET`` line, or set ``FMCLASSIFY_DOCS_BUDGET=full`` before you start
Python or Jupyter.
"""

# %%
# The runs of Q1.1 and Q1.2
# -------------------------

import os

import fmclassify as fmc
from fmclassify.report import BUDGETS

# "quick": the first 10,000 training images, few epochs; "full": the course's protocol.
BUDGET = BUDGETS[os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")]
SEEDS = (0, 1, 2)  # three runs per learning rate, as the assignment report
STORE = f"runs-{BUDGET.name}"  # where the Q1.1 and Q1.2 pages kept their runs
# sphinx_gallery_start_ignore
# The docs build keeps every page's runs in a folder of its own (see docs/conf.py).
if "FMCLASSIFY_GALLERY_RUNS" in os.environ:
    STORE = os.path.join(os.environ["FMCLASSIFY_GALLERY_RUNS"], BUDGET.name)
# sphinx_gallery_end_ignore

train, test = fmc.load_dataset("fashion-mnist")
DATA, LRS = (BUDGET.select(train), test), (1.0, 0.1, 0.01, 0.001)
sweep = fmc.lr_sweep("base", lrs=LRS, epochs=BUDGET.epochs, seeds=SEEDS, data=DATA,
                     store=STORE)
study = fmc.convergence_study("base", lrs=LRS, max_epochs=BUDGET.max_epochs,
                              detector=fmc.ConvergenceDetector(**BUDGET.detector_config()),
                              seeds=SEEDS, data=DATA, store=STORE)

# %%
# Same seed, same data, same numbers
# ----------------------------------
# A convergence detector only watches; it does not change how the network trains. So each Q1.2
# run must repeat its Q1.1 twin exactly for as many epochs as both trained. The code checks
# every record (the seconds an epoch took differ from run to run, the measurements must not).

for fixed, long in zip(sweep.runs, study.runs, strict=True):
    n = min(fixed.history.epochs_trained, long.history.epochs_trained)
    same = all(
        (a.train_loss, a.test_loss, a.test_accuracy) == (b.train_loss, b.test_loss, b.test_accuracy)
        for a, b in zip(fixed.history.records[: n + 1], long.history.records[: n + 1], strict=True)
    )
    if not same:
        raise RuntimeError(f"{fixed.spec.label} seed {fixed.spec.seed}: Q1.1 and Q1.2 differ")
print(f"Each of the {len(sweep.runs)} Q1.2 runs repeats its Q1.1 twin exactly.")

# %%
# Side by side
# ------------
# Per learning rate, the mean over the seeds ± their standard deviation (in points).

import pandas as pd


def pm(row, key):
    """A row's mean of ``key`` in percent, ± its spread over the seeds."""
    if row[key] is None:
        return "n/a"
    spread = row.get(f"{key}_std")
    return f"{row[key]:.1%}" + ("" if spread is None else f" ± {100 * spread:.1f}")


pd.DataFrame([{
    "lr": f"{a['lr']:g}",
    f"Q1.1: final, epoch {BUDGET.epochs}": pm(a, "final_accuracy"),
    f"Q1.1: best within {BUDGET.epochs} epochs": pm(a, "best_accuracy"),
    "Q1.1 runs": a["outcome"],
    "Q1.2: converged at epoch": "n/a" if b.get("converged_epoch") is None
    else f"{b['converged_epoch']:.1f}",
    "Q1.2: accuracy then": pm(b, "final_accuracy"),
    "Q1.2: best": pm(b, "best_accuracy"),
} for a, b in zip(sweep.table(), study.table(), strict=True)]).set_index("lr")

# %%
# The first seed's runs of Q1.2; the dotted line is the end of Q1.1's budget, a dot the epoch a
# run converged at.

import matplotlib.pyplot as plt

fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for run in (r for r in study.runs if r.spec.seed == SEEDS[0]):
    h = run.history
    (line,) = ax_acc.plot(h.column("epoch", include_initial=True),
                          [100 * a for a in h.column("test_accuracy", include_initial=True)],
                          "-", label=f"lr={run.spec.lr:g}")
    ax_loss.plot(h.column("epoch"), h.column("train_loss"), "-", color=line.get_color())
    epoch = h.convergence.epoch
    if epoch:
        ax_acc.plot(epoch, 100 * h.column("test_accuracy")[epoch - 1], "o",
                    color=line.get_color())
for ax in (ax_acc, ax_loss):
    ax.axvline(BUDGET.epochs, color="grey", linestyle=":")
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch")
ax_acc.set(ylabel="test accuracy (%)", title=f"accuracy, seed {SEEDS[0]} (dots: converged)")
ax_loss.set(ylabel="training loss", yscale="log", title="training loss")
ax_acc.legend()

# %%
# What the comparison shows
# -------------------------
# These are the sentences of the assignment report's Q1.3 section, written by the same function
# (``fmclassify.course.assignment.observations.lr_observations``) from the runs above. A fixed
# budget "cut a run short" only where the longer run's best accuracy came after that budget,
# above the best within it by more than the spread of the seeds; a run that thrashes is never
# cut short.

from fmclassify.course.assignment.observations import lr_observations

lr_observations(sweep, study)
