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
  leaves the finite numbers altogether.

A good constant learning rate is therefore close to the largest one that is still stable.
(Practice goes further: schedules that shrink the learning rate over time, and momentum, take
the long steps early and the careful ones late. The course uses plain SGD with a constant rate,
and so does this page.)

This page trains nothing new. It makes the same calls as the Q1.1 and Q1.2 pages, with the same
settings and the same ``store`` folder, and :mod:`fmclassify.experiments` reads the finished runs
back: a run is keyed by its full configuration and the data's checksum, so an identical call
returns the identical runs. (Run on its own, this page trains them itself.)
"""

# %%
# The runs of Q1.1 and Q1.2
# -------------------------

import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt

import fmclassify as fmc
from fmclassify.report import Budget

# The report's budgets (fmclassify.report.BUDGETS): a page and the report share each number.
BUDGET = Budget.named(os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick"))
# The docs build names a folder of its own; run by hand, the runs go to the temp folder.
RUNS = os.environ.get("FMCLASSIFY_GALLERY_RUNS") or Path(tempfile.gettempdir(), "fmclassify")
STORE = Path(RUNS, BUDGET.name)

train, test = fmc.load_dataset("fashion-mnist")
train = BUDGET.select(train)  # the first images of the training set; the whole test set
EPOCHS = BUDGET.epochs  # Q1.1
MAX_EPOCHS = BUDGET.max_epochs  # Q1.2
LRS = (1.0, 0.1, 0.01, 0.001)
RULE = BUDGET.detector_config()

started = time.perf_counter()
sweep = fmc.lr_sweep("base", lrs=LRS, epochs=EPOCHS, data=(train, test), store=STORE)
study = fmc.convergence_study("base", lrs=LRS, max_epochs=MAX_EPOCHS,
                              detector=fmc.ConvergenceDetector(**RULE),
                              data=(train, test), store=STORE)
print(f"{len(sweep.runs) + len(study.runs)} runs ready in {time.perf_counter() - started:.1f} s")

# %%
# Same seed, same data, same numbers
# ----------------------------------
# A convergence detector only watches; it does not change how the network trains. So each Q1.2
# run must repeat its Q1.1 twin exactly for as many epochs as both trained. The code checks
# every record.

for fixed, long in zip(sweep.runs, study.runs, strict=True):
    n = min(fixed.history.epochs_trained, long.history.epochs_trained)
    # Compare the measurements; the seconds an epoch took differ from run to run.
    same = all(
        (a.train_loss, a.test_loss, a.test_accuracy) == (b.train_loss, b.test_loss, b.test_accuracy)
        for a, b in zip(fixed.history.records[: n + 1], long.history.records[: n + 1], strict=True)
    )
    print(f"lr {fixed.spec.lr:g}: the first {n} epochs of Q1.1 and Q1.2 are "
          + ("identical" if same else "DIFFERENT") + ".")

# %%
# Side by side
# ------------


def accuracy_at(history, epoch):
    """Test accuracy after ``epoch`` (None if the run did not get there)."""
    epochs = history.column("epoch")
    return history.column("test_accuracy")[epochs.index(epoch)] if epoch in epochs else None


def pct(x):
    return "n/a" if x is None else f"{x:.1%}"


print(f"| lr | Q1.1: accuracy after {EPOCHS} epochs | Q1.1 status | Q1.2: converged at "
      "| Q1.2: accuracy then | Q1.2: best accuracy |")
print("|---|---|---|---|---|---|")
for fixed, long in zip(sweep.runs, study.runs, strict=True):
    epoch = long.history.metadata.get("converged_epoch")
    print(f"| {fixed.spec.lr:g} | {pct(fixed.history.final_accuracy)} | "
          f"{fixed.history.describe_status()} | "
          + (f"epoch {epoch}" if epoch else long.history.describe_status())
          + f" | {pct(accuracy_at(long.history, epoch))} | {pct(long.history.best_accuracy)} |")

fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for run in study.runs:
    h = run.history
    (line,) = ax_acc.plot(h.column("epoch", include_initial=True),
                          [100 * a for a in h.column("test_accuracy", include_initial=True)],
                          "-", label=f"lr={run.spec.lr:g}")
    ax_loss.plot(h.column("epoch"), h.column("train_loss"), "-", color=line.get_color(),
                 label=f"lr={run.spec.lr:g}")
    epoch = h.metadata.get("converged_epoch")
    if epoch:
        ax_acc.plot(epoch, 100 * accuracy_at(h, epoch), "o", color=line.get_color())
for ax in (ax_acc, ax_loss):
    ax.axvline(EPOCHS, color="grey", linestyle=":", label=f"Q1.1 budget ({EPOCHS} epochs)")
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch")
ax_acc.set(ylabel="test accuracy (%)", title="accuracy (dots: converged)")
ax_loss.set(ylabel="training loss", yscale="log", title="training loss")
ax_acc.legend()

# %%
# What the comparison shows
# -------------------------
# Printed from the runs above.

pairs = list(zip(sweep.runs, study.runs, strict=True))
stable = [(f, c) for f, c in pairs if c.history.status != "diverged"]
for f, c in pairs:
    if c.history.status == "diverged":
        print(f"lr {f.spec.lr:g} diverged ({c.history.describe_status()}): too long a step.")
if stable:
    by_fixed = [f.spec.lr for f, _ in sorted(stable, key=lambda p: -p[0].history.final_accuracy)]
    by_long = [c.spec.lr for _, c in sorted(stable, key=lambda p: -p[1].history.best_accuracy)]
    print("Ranked by accuracy after the Q1.1 budget: "
          + " > ".join(f"lr {lr:g}" for lr in by_fixed) + ".")
    print("Ranked by the best accuracy of the longer Q1.2 runs: "
          + " > ".join(f"lr {lr:g}" for lr in by_long) + ".")
    print("The ranking " + ("held" if by_fixed == by_long else "changed")
          + " when the runs were given more epochs.")
    for f, c in stable:
        h = c.history
        epoch = h.metadata.get("converged_epoch")
        gain = (h.best_accuracy or 0) - (f.history.final_accuracy or 0)
        if epoch is None:
            print(f"lr {f.spec.lr:g}: still not converged after {h.epochs_trained} epochs; it "
                  f"gained {100 * gain:.1f} points after the Q1.1 budget.")
        elif epoch > EPOCHS:
            print(f"lr {f.spec.lr:g}: converged at epoch {epoch}, after the Q1.1 budget, and "
                  f"gained {100 * gain:.1f} points beyond it: the fixed budget cut it short.")
        else:
            print(f"lr {f.spec.lr:g}: converged at epoch {epoch}, within the Q1.1 budget of "
                  f"{EPOCHS} epochs.")
    converged = sorted((c.spec.lr, c.history.metadata["converged_epoch"]) for _, c in stable
                       if c.history.metadata.get("converged_epoch"))
    if len(converged) > 1:
        epochs = [e for _, e in converged]  # in order of increasing learning rate
        if epochs == sorted(epochs, reverse=True) and epochs[0] != epochs[-1]:
            print("Among the runs that converged, the larger the learning rate, the sooner "
                  "they converged.")
        else:
            print("Among the runs that converged, the convergence epoch does not fall steadily "
                  "with the learning rate: " + ", ".join(
                      f"lr {lr:g} at epoch {e}" for lr, e in converged) + ".")
