r"""
Counting the parameters of a torchvision model
==============================================

:func:`~fmclassify.count_parameters` works on any ``torch.nn.Module``, not only on fmclassify's
models. It walks the module tree (no forward pass, so no input shape is needed), gives every
layer that holds parameters a row with its formula, and checks each formula against what PyTorch
allocated. Here it counts ResNet-18 from torchvision, built without downloading weights
(``weights=None``): the count depends on the architecture, not on the weights' values.

A ResNet adds two things the course's networks do not have: many batch-norm layers (whose
running statistics are buffers, not parameters), and shortcut connections, some of which hold a
1x1 convolution to match shapes. Both are counted by the same rules.
"""

# %%
# The table
# ---------
# The report prints one row per layer; here are its first rows and its totals.

import collections

import matplotlib.pyplot as plt
import torch
import torchvision

import fmclassify as fmc

model = torchvision.models.resnet18(weights=None)
report = fmc.count_parameters(model, name="resnet18")
lines = str(report).splitlines()
rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
print("\n".join(lines[: rule + 13]))
print(f"... {len(report.rows) - 12} more rows ...")
print("\n".join(line for line in lines if line.startswith(("Total", "Trainable", "Non-"))))

# %%
# Checked against PyTorch
# -----------------------
# The totals are compared with the plain sum over ``model.parameters()``, and every row's
# formula with its ``numel``.

numel = sum(p.numel() for p in model.parameters())
print(f"count_parameters: {report.total:,}; sum of numel over model.parameters(): {numel:,}; "
      f"equal: {report.total == numel}")
print(f"rows: {len(report.rows)}; every row checked by a formula: {report.all_checked}")
statuses = collections.Counter(row.status for row in report.rows)
print("row statuses: " + ", ".join(f"{n} {s}" for s, n in statuses.items()))
print()
print("Notes from the report:")
for note in report.notes:
    print(f"  - {note}")

# %%
# Where the parameters are
# ------------------------
# Summed by layer type, and by the network's stages.

by_type = collections.Counter()
by_stage = collections.Counter()
for row in report.rows:
    by_type[row.layer_type] += row.counted
    by_stage[row.name.split(".")[0]] += row.counted
for kind, n in by_type.most_common():
    print(f"{kind:<12} {n:>12,}  {n / report.total:6.1%}")

fig, (ax_type, ax_stage) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
ax_type.barh(list(by_type), list(by_type.values()))
ax_type.set(title="by layer type", xlabel="parameters")
ax_stage.barh(list(by_stage), list(by_stage.values()))
ax_stage.set(title="by stage", xlabel="parameters")
for ax in (ax_type, ax_stage):
    ax.invert_yaxis()
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.grid(alpha=0.3, axis="x")
biggest = max(by_stage, key=by_stage.__getitem__)
widest = {stage: max((m.out_channels for n, m in model.named_modules()
                      if isinstance(m, torch.nn.Conv2d) and n.split(".")[0] == stage), default=0)
          for stage in by_stage}
print(f"\nThe largest stage, {biggest}, holds {by_stage[biggest] / report.total:.1%} of the "
      "parameters.")
if widest[biggest] and widest[biggest] == max(widest.values()):
    print(f"It has the widest convolutions ({widest[biggest]} output channels), and a "
          "convolution's count grows with the product of its input and output channels.")
