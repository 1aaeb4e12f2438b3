r"""
Inside training: how the gradient flows through the layers
==========================================================

Q1.7 sums the whole gradient up in one number per step. That number cannot tell you the
thing that most often goes wrong in a deep network: one part of it not learning. This page
splits the gradient by parameter tensor, so each layer's weights and biases get their own
curve.

**Vanishing and exploding gradients.** Backpropagation computes a layer's gradient from the
layer above it: the gradient arriving at a layer's output is multiplied by the transpose of
its weight matrix and by the derivative of its activation (1 or 0 for a ReLU) before it
passes on. Stack many layers and these factors multiply. If they are a little below 1 in
size, the gradient shrinks geometrically on its way down, and the first layers barely learn
(**vanishing**); a little above 1, it grows and the steps blow up (**exploding**). Careful
initialization (He or Glorot: weights scaled by the layer's fan-in) and batch normalization
exist to keep these factors near 1. A healthy network has gradients of similar size in every
layer, within an order of magnitude or so; a layer whose curve lies far below the others is
not learning.

**The update ratio.** A gradient's size means little alone: the same gradient is a tiny push
for large weights and a huge one for small weights. :class:`~fmclassify.GradientTracer` with
``per_layer=True`` therefore also records, per tensor and step,

.. math:: \text{update ratio} = \frac{\eta\,\lVert g \rVert_2}{\lVert w \rVert_2},

the length of a plain SGD step relative to the length of the weights it changes (:math:`\eta`
the learning rate). A common rule of thumb (Karpathy, CS231n, "Neural Networks Part 3") is a
ratio around :math:`10^{-3}`: each step changes a layer's weights by about a thousandth. Far
above (:math:`10^{-1}`), the weights are rewritten every few steps and training is unstable;
far below (:math:`10^{-5}`), the layer is effectively frozen.

:meth:`~fmclassify.GradientTracer.plot_flow` draws one statistic per tensor over the steps
(by default the mean absolute gradient entry, which compares tensors of different sizes
fairly); :meth:`~fmclassify.GradientTracer.plot_heatmap` draws the update ratio as an image,
a row per tensor and a column per step.
"""

# %%
# The budget and the data
# -----------------------
# The tracer records the first 100 steps of each run. The quick budget trains on the first
# 6,400 images, exactly 100 batches of 64, so one epoch is the traced steps; the full budget
# trains one epoch on all images (938 steps, the first 100 traced).

import math
import os
import statistics

import fmclassify as fmc

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"

train, test = fmc.load_dataset("fashion-mnist")
if QUICK:
    train, test = train.subset(6_400), test.subset(1_000)
STEPS = 100
print(f"budget {BUDGET!r}: {len(train):,} training images ({math.ceil(len(train) / 64)} steps), "
      f"{STEPS} traced steps per run, lr 0.1, batch 64, plain SGD, seed 0")


def trace(model):
    """Train ``model`` for one epoch at lr 0.1 with a per-layer GradientTracer attached."""
    tracer = fmc.GradientTracer(steps=STEPS, per_layer=True)
    fmc.Trainer(model, lr=0.1, epochs=1, seed=0, callbacks=[tracer],
                progress=False).fit(train, test)
    return tracer


def typical(values):
    """The median of the finite values: robust to a step's outlier, and to an infinite ratio."""
    return statistics.median(v for v in values if math.isfinite(v))


def summary(tracer):
    """Per tensor: mean |g| entry, norms and update ratio, over the traced steps."""
    print(f"{'tensor':<27} {'mean |g|':>9} {'||g||':>9} {'||w||':>7} {'update ratio':>13}")
    for name, stats in tracer.per_layer.items():
        print(f"{name:<27} {statistics.fmean(stats['mean_abs']):>9.2e} "
              f"{statistics.fmean(stats['norm']):>9.2e} "
              f"{statistics.fmean(stats['weight_norm']):>7.2f} "
              f"{typical(stats['update_ratio']):>13.1e}")


# %%
# The course's MLP
# ----------------
# ``base``: three linear layers, 784-512-512-10, each a weight and a bias tensor.

mlp_model = fmc.build_model("base", seed=0)
mlp = trace(mlp_model)
mlp_flow = mlp.plot_flow(title="base MLP, lr 0.1: mean |gradient| per tensor")
mlp_flow

# %%
# The update ratio of each tensor at each step (log colour scale):

mlp_ratio = mlp.plot_heatmap(title="base MLP, lr 0.1: update ratio")
mlp_ratio

# %%
# Over the 100 steps: the mean of the gradient's mean absolute entry and of the two norms, and
# the median update ratio (a median, since the ratio spans orders of magnitude):

summary(mlp)

# %%
# The course's CNN
# ----------------
# ``deeper``: two convolution blocks with batch norm, then three linear layers. Its
# batch-norm tensors (``layer1.1``, ``layer2.1``) are a scale and a shift per channel.

cnn_model = fmc.build_model("deeper", seed=0)
cnn = trace(cnn_model)
cnn_flow = cnn.plot_flow(title="deeper CNN, lr 0.1: mean |gradient| per tensor")
cnn_flow

# %%

cnn_ratio = cnn.plot_heatmap(title="deeper CNN, lr 0.1: update ratio")
cnn_ratio

# %%

summary(cnn)

# %%
# What the traces show
# --------------------
# Printed from the traces above. "Spread" is the ratio of the largest to the smallest mean
# absolute gradient entry among a model's weight matrices and filters (biases and batch norm
# left out): 1 means every layer gets gradients of the same size.


def matrices(model, tracer):
    """The weight matrices and filters (tensors of 2 or more dimensions): name -> mean |g|."""
    return {name: statistics.fmean(tracer.per_layer[name]["mean_abs"])
            for name, p in model.named_parameters() if p.dim() > 1}


for label, model, tracer in (("base", mlp_model, mlp), ("deeper", cnn_model, cnn)):
    sizes = matrices(model, tracer)
    first, last = next(iter(sizes)), list(sizes)[-1]
    spread = max(sizes.values()) / min(sizes.values())
    print(f"{label}: mean |g| of the first weight tensor ({first}) {sizes[first]:.2e}, of the "
          f"last ({last}) {sizes[last]:.2e}; spread {spread:.1f}")
    ratios = {name: typical(stats["update_ratio"]) for name, stats in tracer.per_layer.items()}
    near = [name for name, r in ratios.items() if 1e-4 <= r <= 1e-2]
    print(f"  {len(near)} of {len(ratios)} tensors have a median update ratio within a factor "
          f"10 of 1e-3; the largest is {max(ratios, key=ratios.get)} "
          f"({max(ratios.values()):.1e}), the smallest {min(ratios, key=ratios.get)} "
          f"({min(ratios.values()):.1e})")
    weight_ratio = statistics.median(ratios[name] for name in sizes)
    print(f"  the median update ratio of the weight matrices and filters is {weight_ratio:.1e}, "
          f"{weight_ratio / 1e-3:.1f} times the rule of thumb")
    zero = [name for name, stats in tracer.per_layer.items() if stats["weight_norm"][0] == 0]
    print("  tensors that start at zero (an infinite ratio at step 1): "
          + (", ".join(zero) or "none"))
    early = {name: statistics.fmean(s["mean_abs"][:10]) for name, s in tracer.per_layer.items()}
    late = {name: statistics.fmean(s["mean_abs"][-10:]) for name, s in tracer.per_layer.items()}
    grew = [name for name in early if late[name] > early[name]]
    print(f"  from the first ten steps to the last ten, the mean |gradient| grew in "
          f"{len(grew)} of {len(early)} tensors")
    bad = [name for name, s in tracer.per_layer.items()
           if not all(math.isfinite(v) for v in s["mean_abs"])]
    print(f"  tensors with a NaN or infinite gradient: {', '.join(bad) or 'none'}")

# %%
# The CNN's convolution biases, each followed by a batch norm, against the other biases:

for name, stats in cnn.per_layer.items():
    if name.endswith("bias"):
        print(f"{name:<16} mean |g| {statistics.fmean(stats['mean_abs']):.1e}, "
              f"median update ratio {typical(stats['update_ratio']):.1e}")

# %%
# **Reading the traces.** With three (or five) layers there are few factors to multiply, and
# PyTorch's default initialization scales each layer by its fan-in; a vanishing gradient would
# show as a spread of many orders of magnitude, with the first layers at the bottom, while
# differences of a factor ten or so have ordinary causes. A bias is a weight whose input is
# always 1, while many inputs of a weight (background pixels, switched-off ReLUs) are 0, so a
# bias gets larger entries; and the last layer sits next to the loss, its gradient built
# directly from the error of the ten scores (predicted probabilities minus the one-hot label).
#
# The update ratio is proportional to the learning rate: a median above :math:`10^{-3}` says
# that lr 0.1 is a fast rate for plain SGD on these networks, and Q1.1's lr 1 multiplies every
# ratio by ten, the direction in which training turns unstable. The ratio also exposes the
# CNN's convolution biases. Batch norm subtracts
# each channel's mean over the batch, so a constant a convolution adds to its channel is
# removed again: the loss does not depend on that bias, its gradient is zero up to rounding,
# and those parameters never learn. That is why a convolution followed by batch norm is
# usually built with ``bias=False``. Batch norm's own shift starts at zero, so its ratio is
# infinite at the first step, which the heat map leaves blank.
#
# Use these plots when a run goes wrong: a deep stack whose first layers lie orders of
# magnitude below the last, an update ratio climbing towards :math:`10^{-1}` before the loss
# turns to NaN (retrain at a lower rate), or a tensor stuck far below :math:`10^{-4}`: it does
# not learn (look at its initialization, at what follows it, or at ReLUs that have died, the
# subject of the :doc:`activations page <plot_inside_activations>`).
