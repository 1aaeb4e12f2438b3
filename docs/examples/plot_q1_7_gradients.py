r"""
Q1.7: the gradient in the first 100 steps
=========================================

**The question.** During the first 100 training steps, record the mean gradient of the loss over
all trainable parameters, and plot it.

**What is measured.** At each step, once ``loss.backward()`` has filled the gradients and before
the optimizer uses them, `fmclassify.GradientTracer` pools every entry
:math:`g_1, \dots, g_N` of every trainable parameter's gradient and records one number:

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
run's gradient is taken at the weights its own steps led to. A learning rate too long for the
network can make the gradient blow up: a step lands where the loss is steeper, the next step is
longer still, and within a few steps the gradient grows by many orders of magnitude.

**Your answer** is the first two cells. They run on the **quick** budget, whose first 10,000
training images make 157 steps per epoch at batch 64 (10,000 / 64 = 156.25: the last batch
holds the 16 images left over), of which the first 100 are traced; the course's protocol
traces the first 100 of 938. For it, change ``"quick"`` to ``"full"`` in the ``BUDGET`` line,
or set ``FMCLASSIFY_DOCS_BUDGET=full`` before you start Python or Jupyter.
"""

# %%
# Both statistics at four learning rates
# --------------------------------------
# `fmclassify.gradient_study` trains one run per learning rate and seed with a tracer
# attached. The tables give the value at the first and the last traced step, and the mean over
# the steps, as the mean over the seeds whose traces stayed finite.

import math
import os

import fmclassify as fmc
from fmclassify.report import BUDGETS

# "quick": the first 10,000 training images; "full": the course's protocol.
BUDGET = BUDGETS[os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")]
SEEDS = (0, 1, 2)  # three runs per learning rate, as the assignment report
STORE = f"runs-{BUDGET.name}"  # finished runs are kept here: a second call reads them back
# sphinx_gallery_start_ignore
# The docs build keeps every page's runs in a folder of its own (see docs/conf.py).
if "FMCLASSIFY_GALLERY_RUNS" in os.environ:
    STORE = os.path.join(os.environ["FMCLASSIFY_GALLERY_RUNS"], BUDGET.name)
# sphinx_gallery_end_ignore

train, test = fmc.load_dataset("fashion-mnist")
DATA, LRS, STEPS = (BUDGET.select(train), test), (1.0, 0.1, 0.01, 0.001), BUDGET.gradient_steps
print(f"{math.ceil(len(DATA[0]) / 64)} steps per epoch ({len(DATA[0]):,} images at batch "
      f"64); the first {STEPS} are traced")
signed = fmc.gradient_study("base", lrs=LRS, steps=STEPS, statistic="mean", seeds=SEEDS,
                            data=DATA, store=STORE)
signed

# %%

size = fmc.gradient_study("base", lrs=LRS, steps=STEPS, statistic="mean_abs", seeds=SEEDS,
                          data=DATA, store=STORE)
size

# %%
# The traces of the first seed. A run whose gradient blows up grows by many orders of
# magnitude, so the two panels divide the work: the mean absolute value of every run on a
# logarithmic scale (where the blow-up and the runs whose gradient stays near 10⁻⁴ all show),
# and the course's signed mean on a linear scale for the runs whose gradient did not blow up
# (beyond a thousand times its first step's size), so that their swings about zero are seen.

import matplotlib.pyplot as plt


def values(run):
    """The traced values of one run, NaN where a step's statistic was not finite."""
    return [math.nan if v is None else v for v in run.gradients["values"]]


def blew_up(run_abs):
    """Whether the mean |gradient| grew to more than 1000 times its first step's."""
    sizes = [v for v in values(run_abs) if math.isfinite(v)]
    return len(sizes) < STEPS or max(sizes) > 1000 * sizes[0]


fig, (ax_mean, ax_abs) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
for run_mean, run_abs in zip(signed.runs, size.runs, strict=True):
    if run_mean.spec.seed != SEEDS[0]:
        continue
    label = f"lr={run_mean.spec.lr:g}"
    (line,) = ax_abs.plot(range(1, STEPS + 1), values(run_abs), label=label, linewidth=1)
    if not blew_up(run_abs):
        ax_mean.plot(range(1, STEPS + 1), values(run_mean), label=label, linewidth=1,
                     color=line.get_color())
ax_mean.axhline(0, color="grey", linewidth=0.8, linestyle=":")
ax_mean.set(xlabel="training step", ylabel="mean gradient",
            title=f"signed mean (the course's), seed {SEEDS[0]}\nthe runs that did not blow up")
ax_abs.set(xlabel="training step", ylabel="mean |gradient| (log scale)", yscale="log",
           title=f"mean absolute value, seed {SEEDS[0]}\nevery run")
for ax in (ax_mean, ax_abs):
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")

# %%
# What the numbers show
# ---------------------
# Written by the code, with the function the assignment report uses
# (``fmclassify.course.assignment.observations``), from the traces above: for each learning
# rate, the course's hint against the size of each statistic over the first and the last tenth
# of the traced steps (means over the seeds), then what happened to a run whose gradient blew
# up. Single steps jitter with the batch they see, so the tables' first and last step can point
# the other way from these averages.

from fmclassify.course.assignment import PUBLISHED
from fmclassify.course.assignment.observations import (
    cancellation_observation,
    gradient_observations,
)

sentences = gradient_observations(signed, size, PUBLISHED.gradient_hint, STEPS)
sentences += [cancellation_observation(signed, size, 0.1)]  # in place: still Sentences
sentences

# %%
# One run up close, tensor by tensor
# ----------------------------------
# The first seed's lr 0.1 run again, this time with a `fmclassify.GradientTracer` attached to
# a `fmclassify.Trainer` by hand and ``per_layer=True``: the right panel splits the signed
# mean by parameter tensor. The same seed must give the same trace as the study's run.

model = fmc.build_model("base", seed=SEEDS[0])
tracer = fmc.GradientTracer(steps=STEPS, statistic="mean", per_layer=True)
history = fmc.Trainer(model, lr=0.1, epochs=1, seed=SEEDS[0], callbacks=[tracer],
                      progress=False).fit(*DATA)
study_run = next(r for r in signed.runs if r.spec.lr == 0.1 and r.spec.seed == SEEDS[0])
gap = max(abs(a - b) for a, b in zip(tracer.values, values(study_run), strict=True))
print(f"{tracer.steps_recorded} steps traced over {tracer.trainable_entries:,} gradient entries; "
      f"largest difference from the study's lr 0.1 trace: {gap:.1e}")
per_tensor = tracer.plot(title="signed mean gradient, base MLP, lr=0.1")

# %%
# Which tensors move the signed mean? Each tensor adds its own mean times its share of the
# entries; averaged over the steps, in absolute value:

import statistics

import pandas as pd

numels = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
total = sum(numels.values())
pd.DataFrame([{
    "tensor": name, "entries": f"{numels[name]:,}", "share": f"{numels[name] / total:.2%}",
    "mean |contribution|": f"{statistics.fmean(abs(v) * numels[name] / total for v in vs):.2e}",
} for name, vs in tracer.per_layer_values.items()]).set_index("tensor")
