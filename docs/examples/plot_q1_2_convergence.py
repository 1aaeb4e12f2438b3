r"""
Q1.2: when has a run converged?
===============================

**The question.** For each learning rate of Q1.1, how many epochs does the network need to
converge, where converged means that the test accuracy no longer changes, or changes by less
than a threshold?

**The rule, made exact.** "Stops changing" needs three choices the question leaves open, and
:class:`~fmclassify.ConvergenceDetector` makes each of them explicit (the whole rule is in
:ref:`convergence-rule`):

* **smoothing**: compare the moving average of the last ``window`` accuracies rather than the raw
  values, so one noisy epoch neither declares convergence nor hides it;
* **threshold**: an epoch is *quiet* when the smoothed accuracy moved by less than ``threshold``
  from the previous epoch's; accuracy is a fraction, so ``threshold=0.001`` is a tenth of a
  percentage point;
* **patience**: the run has converged at the first epoch that ends ``patience`` quiet epochs in a
  row.

:func:`~fmclassify.convergence_study` trains each learning rate until the detector says so, or
until an epoch budget runs out; a run that never converges is reported as "not converged within
N epochs" rather than given a number.

**The threshold's effect.** A looser threshold counts more epochs as quiet, so by this rule it
can only declare convergence at the same epoch or earlier, never later. That makes it possible to
measure every looser threshold on the runs trained once with the strictest: the detector is a
pure state machine, and replaying it on a recorded accuracy curve gives exactly the epoch it
would have stopped the run at.
"""

# %%
# The budget and the data
# -----------------------
# The same data and seed as the Q1.1 page; the epoch budget of a convergence run is larger.

import itertools
import os
import statistics
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

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
MAX_EPOCHS = BUDGET.max_epochs
LRS = (1.0, 0.1, 0.01, 0.001)
RULE = BUDGET.detector_config()

print(f"budget {BUDGET.name!r}: {len(train):,} training and {len(test):,} test images, at most "
      f"{MAX_EPOCHS} epochs per run, batch 64, plain SGD, seed 0; rule {RULE}")

# %%
# The study
# ---------

detector = fmc.ConvergenceDetector(**RULE)
study = fmc.convergence_study("base", lrs=LRS, max_epochs=MAX_EPOCHS, detector=detector,
                              data=(train, test), store=STORE)
print(study.to_markdown())
print()
for run in study.runs:
    print(f"lr {run.spec.lr:g}: {run.history.reason}")

# %%
# The accuracy curves, and each run with the epoch it converged at (a dotted line) when it did.

accuracy = plot_comparison(study.histories, metric="test_accuracy",
                           title="test accuracy until convergence")
runs = [run.history.plot() for run in study.runs]

# %%
# The threshold's effect
# ----------------------
# Replay the rule with looser thresholds on the recorded accuracies. The replay with the study's
# own threshold must give the epoch the study found: the code checks it.

# Thresholds as strict as the study's or looser: a stricter one would need longer runs.
THRESHOLDS = tuple(t for t in (0.05, 0.02, 0.01, 0.005, 0.002, 0.001) if t >= RULE["threshold"])


def converged_epoch(history, threshold):
    """The epoch the rule with ``threshold`` declares convergence at, or None."""
    replay = fmc.ConvergenceDetector(**{**RULE, "threshold": threshold})
    epochs, accuracies = history.column("epoch"), history.column("test_accuracy")
    for epoch, accuracy in zip(epochs, accuracies, strict=True):
        if replay.update(accuracy, epoch):
            return replay.converged_epoch
    return None


table = {}
for run in study.runs:
    h = run.history
    if h.status == "diverged":
        continue
    table[run.spec.lr] = {t: converged_epoch(h, t) for t in THRESHOLDS}
    if table[run.spec.lr][RULE["threshold"]] != h.metadata.get("converged_epoch"):
        raise RuntimeError(f"the replay disagrees with the study for lr {run.spec.lr:g}")
print("The replay at the study's threshold matches the study for every run.\n")

print("| lr | " + " | ".join(f"threshold {t:g}" for t in THRESHOLDS) + " |")
print("|---|" + "---|" * len(THRESHOLDS))
for lr, row in table.items():
    trained = next(r.history.epochs_trained for r in study.runs if r.spec.lr == lr)
    cells = [f"epoch {e}" if e is not None else f"not within {trained}" for e in row.values()]
    print(f"| {lr:g} | " + " | ".join(cells) + " |")

fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
ceiling = MAX_EPOCHS + 1  # where "not converged within the budget" is drawn
for lr, row in table.items():
    epochs = [e if e is not None else ceiling for e in row.values()]
    (line,) = ax.plot(THRESHOLDS, epochs, "-", alpha=0.5, label=f"lr={lr:g}")
    for t, e in row.items():
        ax.plot(t, e if e is not None else ceiling, "o", color=line.get_color(),
                fillstyle="full" if e is not None else "none")
ax.axhline(ceiling, color="grey", linestyle=":", linewidth=0.8)
ax.annotate("not converged within the budget (open circles)", (THRESHOLDS[0], ceiling),
            textcoords="offset points", xytext=(0, 4), fontsize="small", color="grey")
ax.set(xscale="log", xlabel="threshold (accuracy, as a fraction)", ylabel="converged at epoch",
       title="convergence epoch against threshold", ylim=(0, ceiling + 1))
ax.invert_xaxis()
ax.grid(alpha=0.3)
ax.legend(loc="lower left")

# %%
# What the runs show
# ------------------
# Printed from the study and the replay above.

best_any = max(r.history.best_accuracy or 0.0 for r in study.runs)
for run in study.runs:
    h = run.history
    lr = run.spec.lr
    if h.status == "diverged":
        print(f"lr {lr:g} diverged; a diverged run never counts as converged.")
        continue
    epoch = h.metadata.get("converged_epoch")
    if epoch is None:
        met = [t for t in THRESHOLDS if table[lr][t] is not None]
        print(f"lr {lr:g} did not converge within {h.epochs_trained} epochs"
              + (f"; the rule with threshold {min(met):g} would have called it converged at "
                 f"epoch {table[lr][min(met)]}" if met else
                 f"; not even threshold {THRESHOLDS[0]:g} was met") + ".")
        continue
    at = h.column("test_accuracy")[h.column("epoch").index(epoch)]
    print(f"lr {lr:g} converged at epoch {epoch} with {at:.1%} test accuracy, "
          f"{100 * (best_any - at):.1f} points below the best accuracy any run reached "
          f"({best_any:.1%}).")
    first, last = table[lr][THRESHOLDS[0]], table[lr][THRESHOLDS[-1]]
    if first is not None and first < last:
        print(f"    A threshold of {THRESHOLDS[0]:g} instead of {THRESHOLDS[-1]:g} would have "
              f"stopped it at epoch {first}, {last - first} epochs sooner.")
    elif first is not None:
        print(f"    Every threshold from {THRESHOLDS[0]:g} to {THRESHOLDS[-1]:g} gives epoch "
              f"{first}: its accuracy stopped moving at once.")

# %%
# Why a strict threshold can stay out of reach: the smoothed accuracy keeps moving from epoch to
# epoch, if only by the noise of the batches and of a finite test set. The rule needs its last
# ``patience`` moves all under the threshold; here are those moves at the end of each run.


def smoothed_moves(history, window):
    """Absolute change of the ``window``-epoch moving average of test accuracy, per epoch."""
    accs = history.column("test_accuracy")
    means = [statistics.fmean(accs[i - window + 1 : i + 1]) for i in range(window - 1, len(accs))]
    return [abs(b - a) for a, b in itertools.pairwise(means)]


for run in study.runs:
    if run.history.status == "diverged":
        continue
    last = smoothed_moves(run.history, RULE["window"])[-RULE["patience"] :]
    verdict = "all under" if max(last) < RULE["threshold"] else "not all under"
    print(f"lr {run.spec.lr:g}: the last {len(last)} moves of the {RULE['window']}-epoch average "
          "were " + ", ".join(f"{100 * m:.2f}" for m in last) + f" points, {verdict} the "
          f"threshold of {100 * RULE['threshold']:g} points.")

# %%
# **Converged is not the same as trained well.** The rule watches how much the accuracy moves,
# not how high it is. A learning rate whose steps are short moves the accuracy little per epoch,
# and can pass a loose threshold while it still has far to go; a learning rate whose steps are
# too long keeps the accuracy jumping and may never pass a strict one. Compare the accuracy at
# convergence above with the best any run reached before reading a convergence epoch as "this
# learning rate is done". The Q1.3 page puts these epochs next to the fixed-budget accuracies of
# Q1.1.
