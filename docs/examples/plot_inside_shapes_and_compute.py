r"""
Inside a model: shapes, parameters and compute
==============================================

Q1.5 counts parameters: how much a network has to *store* and *learn*. It says little about
how much work the network *does*. Parameters and work part ways as soon as a weight is used
more than once, and a convolution uses each of its weights at every position of the image.

With ``input_size``, :func:`~fmclassify.count_parameters` runs one forward pass on a batch of
zeros and adds two columns to its table:

**Output shape**, batch first: what each layer hands to the next. The shapes are how you find
the size a linear layer after convolutions needs (the ``2304`` of the course's CNN), and the
first thing to read when PyTorch says "mat1 and mat2 shapes cannot be multiplied".

**Multiply-adds**, as :class:`torch.utils.flop_counter.FlopCounterMode` counts them (FLOPs
divided by 2): matrix products and convolutions only. For one image, a linear layer from
:math:`n` inputs to :math:`m` outputs does :math:`n\,m`, one per weight. A convolution with
:math:`k` filters of :math:`m \times n \times d` weights producing an :math:`H' \times W'` map
does :math:`H'\,W'\,k\,m\,n\,d`: each weight once per output position. Biases, batch norm,
activations and pooling are cheap by comparison and count 0.

Multiply-adds grow with the batch; parameters do not. Training costs about three times the
forward pass (the backward pass computes two products per layer: the gradient with respect to
the input and with respect to the weights), so the forward multiply-adds are a fair yardstick
for how long an epoch takes, and the parameter count for how much memory the weights and the
optimizer need.
"""

# %%
# The three networks, measured
# ----------------------------
# One image, ``(1, 1, 28, 28)``: batch, channels, height, width. No data and no training:
# this page costs a forward pass per network.

import statistics
import time

import matplotlib.pyplot as plt
import torch

import fmclassify as fmc

MODELS = ("base", "deeper", "wider")
ONE_IMAGE = (1, 1, 28, 28)
reports = {name: fmc.count_parameters(fmc.build_model(name, seed=0), input_size=ONE_IMAGE)
           for name in MODELS}

# sphinx_gallery_capture_repr = ("_repr_html_",)  # a cell's last value shows as its table

# %%
# The course's CNN, layer by layer. Read the output shapes down the table: the first
# convolution keeps 28x28 (padding 1), its block's 2x2 max-pool halves it to 14, the second
# convolution (no padding) gives 12, its pool 6; ``fc1`` then takes the 64 x 6 x 6 = 2,304
# values.

reports["deeper"]

# %%
# Parameters against multiply-adds
# --------------------------------

print(f"{'model':>7} {'parameters':>11} {'mult-adds':>11} {'mult-adds / parameter':>22}")
for name, report in reports.items():
    print(f"{name:>7} {report.trainable:>11,} {report.total_mult_adds:>11,} "
          f"{report.total_mult_adds / report.trainable:>22.2f}")

fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
x = range(len(MODELS))
ax.bar([i - 0.2 for i in x], [reports[m].trainable / 1e6 for m in MODELS], width=0.4,
       label="parameters")
ax.bar([i + 0.2 for i in x], [reports[m].total_mult_adds / 1e6 for m in MODELS], width=0.4,
       label="multiply-adds per image")
ax.set_xticks(list(x), MODELS)
ax.set(ylabel="millions", title="what each network stores, and what it computes")
ax.legend()
ax.grid(alpha=0.3, axis="y")

# %%
# Where the CNN's parameters are, and where its work is:

cnn = reports["deeper"]
print(f"{'layer':<9} {'type':<12} {'output':<16} {'parameters':>10} {'share':>6} "
      f"{'mult-adds':>10} {'share':>6}")
for row in cnn.rows:
    print(f"{row.name:<9} {row.layer_type:<12} {row.output_shape!s:<16} {row.numel:>10,} "
          f"{row.numel / cnn.trainable:>6.1%} {row.mult_adds:>10,} "
          f"{row.mult_adds / cnn.total_mult_adds:>6.1%}")

# %%
# Multiply-adds grow with the batch, parameters do not: the same count for a training batch
# of 64 images.

batch = fmc.count_parameters(fmc.build_model("deeper", seed=0), input_size=(64, 1, 28, 28))
print(f"batch of 64: {batch.total_mult_adds:,} multiply-adds "
      f"({batch.total_mult_adds / cnn.total_mult_adds:g} x one image), "
      f"{batch.trainable:,} parameters (the same)")

# %%
# Does the count predict the time?
# --------------------------------
# A direct measurement: the median time of five forward passes over a batch of 1,000 images
# (zeros; the values do not change the work), without gradients, on the CPU. Timings on a
# shared machine are noisy; the ratios between the networks are what to read.


def forward_seconds(model, repeats=5):
    """Median wall time of a forward pass over 1,000 images."""
    x = torch.zeros(1000, 1, 28, 28)
    model.eval()
    times = []
    with torch.no_grad():
        model(x)  # warm-up: the first pass allocates memory
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


seconds = {name: forward_seconds(fmc.build_model(name, seed=0)) for name in MODELS}
for name in MODELS:
    rate = reports[name].total_mult_adds * 1000 / seconds[name] / 1e9
    print(f"{name:>7}: {1000 * seconds[name]:6.1f} ms per 1,000 images, "
          f"{rate:5.1f} billion multiply-adds per second")

# %%
# What the measurements show
# --------------------------
# Printed from the tables and timings above.

base, deeper, wider = (reports[m] for m in MODELS)
convs = [row for row in cnn.rows if row.layer_type.startswith("Conv")]
conv_params = sum(row.numel for row in convs)
conv_work = sum(row.mult_adds for row in convs)
print(f"The CNN has {deeper.trainable / wider.trainable:.2f} times the parameters of the wider "
      f"MLP and {deeper.total_mult_adds / wider.total_mult_adds:.2f} times its multiply-adds.")
print(f"Its {len(convs)} convolutions hold {conv_params / cnn.trainable:.1%} of its parameters "
      f"and do {conv_work / cnn.total_mult_adds:.1%} of its multiply-adds: each of their "
      f"{conv_params:,} parameters is used {conv_work / conv_params:.0f} times per image.")
print(f"In an MLP each weight is used once per image: {base.total_mult_adds / base.trainable:.3f} "
      "multiply-adds per parameter for base (the biases make up the rest).")
slowest = max(seconds, key=seconds.get)
print(f"Measured, the slowest forward pass is {slowest}'s: "
      + ", ".join(f"{m} {seconds[m] / seconds['base']:.1f}x" for m in MODELS)
      + " the time of base; by multiply-adds "
      + ", ".join(f"{m} {reports[m].total_mult_adds / base.total_mult_adds:.1f}x" for m in MODELS)
      + ".")
rates = {m: reports[m].total_mult_adds / seconds[m] for m in MODELS}
print(f"Per second, the CNN did {rates['deeper'] / rates['wider']:.2f} times as many "
      "multiply-adds as the wider MLP.")

# %%
# **Reading the numbers.** Counted in parameters, the CNN and the wider MLP are about the same
# size; counted in work they are not, because the convolutions' few weights are applied at
# hundreds of positions. A convolution buys a lot of computation, and of pattern-finding, per
# parameter stored. The multiply-adds are a lower bound on the time, not a prediction of it:
# a matrix product of a big linear layer runs close to the processor's peak rate, while a
# convolution, its batch norm, its pooling and the memory traffic between them often do not,
# so a CNN can be slower than its multiply-adds alone suggest: compare the rates above.
# Memory follows yet another count: for training, every layer's output for the whole batch is
# kept for the backward pass, so the output shapes above, times the batch size, are what fills
# memory in a CNN, more than its weights.
