r"""
Q1.7: the gradient in the first 100 steps
=========================================

**The question.** During the first 100 training steps, record the mean gradient of the loss over
all trainable parameters, and plot it.

**What is measured.** At each step, once ``loss.backward()`` has filled the gradients and before
the optimizer uses them, :class:`~fmclassify.GradientTracer` pools every entry
:math:`g_1, \dots, g_N` of every trainable parameter's gradient and records one number
(:ref:`the statistics <gradient-statistics>`):

* ``"mean"``, the course's quantity: :math:`\frac{1}{N}\sum_i g_i`. Signed entries cancel, so it
  measures how unbalanced the gradient is between positive and negative, not how large it is;
* ``"mean_abs"``: :math:`\frac{1}{N}\sum_i |g_i|`, the typical size of an entry, which no
  cancellation can hide.

**Why the mean need not simply decrease.** It is tempting to expect the gradient to shrink as
the loss falls. Three things stand in the way, and this page measures both statistics so that
the numbers can show which of them matter here:

* *cancellation*: a weight matrix's gradient has entries of both signs, and their sum can be near
  zero while every entry is large; the signed mean can shrink even as the gradient grows. In the
  output layer the cancellation is exact: the gradient of softmax cross-entropy with respect to
  the logits is :math:`p - y` (predicted probabilities minus the one-hot label), which sums to
  zero over the classes, so the output bias's gradient sums to zero, and so does each column of
  the output weight's;
* *noise*: each step's gradient comes from one batch of 64 images, a noisy estimate of the
  gradient over the whole training set, so the curve jitters from step to step;
* *the early phase*: the first 100 steps are far from any minimum. The size of the gradient
  depends on the weights and activations the network has at the time, and those change most in
  this phase; only near a minimum must the full gradient approach zero, and with a constant
  learning rate and batch noise SGD never quite sits still there.

The learning rate enters too: every run starts from the same weights with the same first batch,
so the first step's gradient is the same for all learning rates; from the second step on, each
run's gradient is taken at the weights its own steps led to.
"""

# %%
# The budget and the data
# -----------------------
# The report's budgets: the quick one trains on the first 10,000 training images (the first 100
# of 157 steps are traced), the full one on all of them (the first 100 of 938 steps).

import itertools
import os
import statistics
import tempfile
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
STEPS = BUDGET.gradient_steps
LRS = (1.0, 0.1, 0.01, 0.001)
print(f"budget {BUDGET.name!r}: {len(train):,} training images ({len(train) // 64} steps per "
      f"epoch), {STEPS} traced steps per run, batch 64, plain SGD, seed 0")

# %%
# Both statistics at four learning rates
# --------------------------------------
# :func:`~fmclassify.gradient_study` trains one run per learning rate with a tracer attached.
# The tables give the value at the first and last traced step and the mean over the steps.

signed = fmc.gradient_study("base", lrs=LRS, steps=STEPS, statistic="mean",
                            data=(train, test), store=STORE)
size = fmc.gradient_study("base", lrs=LRS, steps=STEPS, statistic="mean_abs",
                          data=(train, test), store=STORE)
print(signed.to_markdown())
print()
print(size.to_markdown())


def values(run):
    """The traced values of one run, NaN where a step's statistic was not finite."""
    return [float("nan") if v is None else v for v in run.gradients["values"]]


fig, (ax_mean, ax_abs) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for run_mean, run_abs in zip(signed.runs, size.runs, strict=True):
    label = f"lr={run_mean.spec.lr:g}"
    steps = range(1, len(values(run_mean)) + 1)
    ax_mean.plot(steps, values(run_mean), label=label, linewidth=1)
    ax_abs.plot(range(1, len(values(run_abs)) + 1), values(run_abs), label=label, linewidth=1)
ax_mean.axhline(0, color="grey", linewidth=0.8, linestyle=":")
ax_mean.set(xlabel="training step", ylabel="mean gradient", title="signed mean (the course's)")
ax_abs.set(xlabel="training step", ylabel="mean |gradient|", yscale="log",
           title="mean absolute value")
for ax in (ax_mean, ax_abs):
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")

# %%
# One run up close, tensor by tensor
# ----------------------------------
# The same lr 0.1 run again, this time with a :class:`~fmclassify.GradientTracer` attached to a
# :class:`~fmclassify.Trainer` by hand and ``per_layer=True``: the right panel splits the signed
# mean by parameter tensor. The same seed must give the same trace as the study's run.

model = fmc.build_model("base", seed=0)
tracer = fmc.GradientTracer(steps=STEPS, statistic="mean", per_layer=True)
history = fmc.Trainer(model, lr=0.1, epochs=1, seed=0, callbacks=[tracer],
                      progress=False).fit(train, test)
study_run = next(r for r in signed.runs if r.spec.lr == 0.1)
gap = max(abs(a - b) for a, b in zip(tracer.values, values(study_run), strict=True))
print(f"{tracer.steps_recorded} steps traced over {tracer.trainable_entries:,} gradient entries; "
      f"largest difference from the study's lr 0.1 trace: {gap:.1e}")
per_tensor = tracer.plot(title="signed mean gradient, base MLP, lr=0.1")

# %%
# Which tensors move the signed mean? Each tensor adds its own mean times its share of the
# entries; averaged over the steps, in absolute value:

numels = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
total = sum(numels.values())
pull = {name: statistics.fmean(abs(v) * numels[name] / total for v in vs)
        for name, vs in tracer.per_layer_values.items()}
whole = statistics.fmean(abs(v) for v in tracer.values)
for name, p in sorted(pull.items(), key=lambda kv: -kv[1]):
    print(f"{name:<28} {numels[name]:>8,} entries ({numels[name] / total:6.2%}); "
          f"mean |contribution| {p:.2e}")
print(f"{'whole model':<28} mean |signed mean| {whole:.2e}")

# %%
# What the numbers show
# ---------------------
# Printed from the traces above: first the lr 0.1 run, then all four learning rates. Averages
# over blocks of ten steps smooth the batch noise.


def block(xs, first_step):
    """Mean of the ten values from ``first_step`` (1-based), ignoring NaN."""
    part = [x for x in xs[first_step - 1 : first_step + 9] if x == x]
    return statistics.fmean(part) if part else float("nan")


BLOCKS = (1, 41, 91)
run_m = study_run
run_a = next(r for r in size.runs if r.spec.lr == 0.1)
m, a = values(run_m), values(run_a)
print("lr 0.1, averages over ten steps:")
for b in BLOCKS:
    print(f"  steps {b:>3}-{b + 9:<3}  signed mean {block(m, b):+.2e}   "
          f"mean |g| {block(a, b):.2e}")

first_m, last_m = block(m, BLOCKS[0]), block(m, BLOCKS[-1])
first_a, last_a = block(a, BLOCKS[0]), block(a, BLOCKS[-1])
print(f"The signed mean went from {first_m:+.2e} to {last_m:+.2e}: its size "
      + ("shrank" if abs(last_m) < abs(first_m) else "grew")
      + f" by a factor {max(abs(first_m), abs(last_m)) / min(abs(first_m), abs(last_m)):.1f}.")
print(f"The mean absolute gradient went from {first_a:.2e} to {last_a:.2e}: it "
      + ("grew" if last_a > first_a else "shrank")
      + f" by a factor {max(first_a, last_a) / min(first_a, last_a):.1f}.")
if (abs(last_m) < abs(first_m)) and last_a > first_a:
    print("So the course's curve falls toward zero while the gradient itself gets larger: the "
          "signed mean is shrinking by cancellation, not because the gradient is.")
ratios = [abs(x) / y for x, y in zip(m, a, strict=True) if y > 0 and x == x]
print(f"At a typical step the signed mean is {statistics.median(ratios):.1%} of the mean "
      "absolute value (median over the steps): most of the gradient cancels in the sum.")
sign_changes = sum((x > 0) != (y > 0) for x, y in itertools.pairwise(m))
print(f"Its sign changed {sign_changes} times in {len(m)} steps; "
      f"{sum(x < 0 for x in m)} steps had a negative mean.")

# %%
# Across the four learning rates.

firsts = {r.spec.lr: r.gradients["values"][0] for r in signed.runs}
print("The first step's signed mean is "
      + ("the same for every learning rate" if len(set(firsts.values())) == 1
         else "NOT the same for every learning rate")
      + f" ({next(iter(firsts.values())):+.3e}): same weights, same first batch.")
for run_mean, run_abs in zip(signed.runs, size.runs, strict=True):
    mm, aa = values(run_mean), values(run_abs)
    print(f"lr {run_mean.spec.lr:>5g}: signed mean {block(mm, 1):+.2e} -> {block(mm, 91):+.2e}; "
          f"mean |g| {block(aa, 1):.2e} -> {block(aa, 91):.2e} "
          f"({run_abs.history.describe_status()})")
late = {r.spec.lr: block(values(r), 91) for r in size.runs}
finite = {lr: v for lr, v in late.items() if v == v}
if finite:
    top = max(finite, key=finite.__getitem__)
    low = min(finite, key=finite.__getitem__)
    print(f"In the last ten steps the gradient is largest at lr {top:g} and smallest at lr "
          f"{low:g}: the learning rate changes where the steps lead, and with it how steep the "
          "loss is there.")
