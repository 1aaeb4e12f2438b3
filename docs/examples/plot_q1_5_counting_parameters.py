r"""
Q1.5: counting parameters
=========================

**The question.** Count the trainable parameters of the three networks of Q1.4, by code or by
hand, and explain the count.

**The formulas.** Only layers with weights have parameters; ReLU, max-pooling, flattening and
dropout have none. In the course's symbols:

* a **linear** layer from :math:`n` inputs to :math:`m` outputs has a weight for every pair and a
  bias per output: :math:`(n + 1)\,m`;
* a **convolution** with :math:`k` filters of size :math:`m \times n` over :math:`d` input
  channels has :math:`m\,n\,d` weights and one bias per filter: :math:`((m\,n\,d) + 1)\,k`. The
  count does not depend on the image size, because each filter is shared by every position;
* a **batch norm** over :math:`C` channels learns a scale :math:`\gamma` and a shift
  :math:`\beta` per channel: :math:`2C`. Its running mean and variance are statistics, updated
  by averaging rather than by gradients; PyTorch keeps them as *buffers*, not parameters.

The one number the formulas need from the architecture is the input size of the CNN's first
linear layer: the number of values the convolution blocks leave per image, channels times
height times width. The code below derives it step by step.

`fmclassify.count_parameters` applies the same formulas to every layer of a model, and checks
each against what PyTorch actually allocated (``numel``). **Your answer** is the first two
cells: the library's count of the three networks, then one network layer by layer. The rest
of the page does the count a second time, by hand in plain Python, and compares the two. (No
network trains here, so this page has no budget.)
"""

# %%
# With the library
# ----------------
# `fmclassify.compare_parameters` counts several networks in one call.

import fmclassify as fmc

MODELS = ("base", "deeper", "wider")
fmc.compare_parameters(MODELS)

# %%
# Each row of a `fmclassify.ParameterReport` holds a layer's formula with its numbers, the
# count the formula gives, and ``numel``, what PyTorch allocated; its notes say what the count
# leaves out (batch norm's running statistics) and how other frameworks count. The CNN's (as
# ``print(report)`` or ``fmclassify params deeper`` show it as text):

reports = {name: fmc.count_parameters(fmc.build_model(name)) for name in MODELS}
reports["deeper"]

# %%
# By hand
# -------


def linear(n, m):
    """(n+1)*m: n*m weights and m biases."""
    return (n + 1) * m


def conv(m, n, d, k):
    """((m*n*d)+1)*k: k filters of m*n*d weights, and one bias per filter."""
    return ((m * n * d) + 1) * k


def batch_norm(c):
    """2*C: a scale and a shift per channel."""
    return 2 * c


# The CNN's image side after each step, from a 28x28 image:
side = 28  # conv 3x3 with padding 1 keeps the size
side //= 2  # max-pool 2x2 halves it
side -= 2  # conv 3x3 without padding loses a pixel at each border
side //= 2  # max-pool 2x2 halves it again
flat = 64 * side * side  # 64 channels of side x side values
print(f"The convolution blocks leave 64 x {side} x {side} = {flat} values per image.")

by_hand = {
    "base": {
        "linear_relu_stack.0": linear(784, 512),
        "linear_relu_stack.2": linear(512, 512),
        "linear_relu_stack.4": linear(512, 10),
    },
    "deeper": {
        "layer1.0": conv(3, 3, 1, 32),
        "layer1.1": batch_norm(32),
        "layer2.0": conv(3, 3, 32, 64),
        "layer2.1": batch_norm(64),
        "fc1": linear(flat, 600),
        "fc2": linear(600, 120),
        "fc3": linear(120, 10),
    },
    "wider": {
        "linear_relu_stack.0": linear(784, 1024),
        "linear_relu_stack.2": linear(1024, 728),
        "linear_relu_stack.4": linear(728, 10),
    },
}
for name, layers in by_hand.items():
    print(f"{name:>7}: " + " + ".join(f"{n:,}" for n in layers.values())
          + f" = {sum(layers.values()):,}")

# %%
# Side by side
# ------------
# The count by hand next to the library's formula and ``numel`` for every layer; the code stops
# if any disagree, or if a model's total does.

import pandas as pd

rows = []
for name, report in reports.items():
    for row in report.rows:
        hand = by_hand[name][row.name]
        if not hand == row.analytic == row.numel:
            raise RuntimeError(f"{name}.{row.name}: by hand {hand}, report {row.analytic}, "
                               f"numel {row.numel}")
        rows.append({"model": name, "layer": row.name, "by hand": f"{hand:,}",
                     "count_parameters formula": row.formula_text, "numel": f"{row.numel:,}"})
    numel = sum(p.numel() for p in fmc.build_model(name).parameters() if p.requires_grad)
    if not sum(by_hand[name].values()) == report.trainable == numel:
        raise RuntimeError(f"{name}: the totals disagree")
pd.DataFrame(rows).set_index(["model", "layer"])

# %%
# Where the parameters are
# ------------------------

import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
for ax, (name, report) in zip(axes, reports.items(), strict=True):
    names = [row.name for row in report.rows]
    ax.barh(names, [row.numel for row in report.rows])
    ax.invert_yaxis()
    ax.set(title=f"{name}: {report.trainable:,}", xlabel="parameters")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.grid(alpha=0.3, axis="x")

for name, report in reports.items():
    biggest = max(report.rows, key=lambda row: row.numel)
    print(f"{name:>7}: the largest layer, {biggest.name} ({biggest.layer_type}), holds "
          f"{biggest.numel / report.trainable:.1%} of all parameters.")
convs = [r for r in reports["deeper"].rows if r.layer_type.startswith("Conv")]
share = sum(r.numel for r in convs) / reports["deeper"].trainable
fc1 = next(r for r in reports["deeper"].rows if r.name == "fc1")
print(f"The CNN's {len(convs)} convolutions hold {share:.1%} of its parameters: a filter is "
      "shared by every position of the image, so its count does not grow with the image. Its "
      f"first linear layer, which sees all {flat:,} values the convolutions leave, holds "
      f"{fc1.numel / reports['deeper'].trainable:.1%}.")
