r"""
Your own model, as a plugin
===========================

Every name that :func:`~fmclassify.build_model`, the experiments and the ``fmclassify`` command
accept comes from one registry. A model of your own joins it with
:func:`~fmclassify.register_model`, and from then on it is trained, compared, counted and listed
like the built-in ones.

**As a plugin package.** To make a model available to everyone who installs your package, without
them importing anything, declare an entry point in the group ``fmclassify.models`` in your
``pyproject.toml``:

.. code-block:: toml

   [project]
   name = "fmclassify-tiny"
   dependencies = ["fmclassify"]

   [project.entry-points."fmclassify.models"]
   tiny = "fmclassify_tiny.models"

and register the model in that module:

.. code-block:: python

   # fmclassify_tiny/models.py
   import fmclassify as fmc

   @fmc.register_model("tiny-plugin", description="a small CNN from the fmclassify-tiny package")
   def tiny_plugin(*, num_classes=10, in_channels=1, image_size=28):
       ...

The first time fmclassify looks a model up (``build_model``, ``list_models``,
``fmclassify models``), it imports every module named in that group, which runs the decorator.
An entry point may also name a function (``"fmclassify_tiny.models:register"``), which is then
called. A plugin that fails to import is skipped with a warning that names it, and the setting
``FMCLASSIFY_NO_PLUGINS=1`` turns plugin loading off. ``fmclassify models`` shows each model's
source: built in, or the distribution that registered it.

This page cannot install a package while the docs build, so it runs the decorator directly: that
is exactly what the entry point's import does.
"""

# %%
# Register a model
# ----------------
# A builder takes the data's shape as keyword arguments, so the same name serves 1x28x28 and
# 3x32x32 images. This one is a small CNN with a layer of our own, ``ChannelScale``.

import os

import torch

import fmclassify as fmc
from fmclassify.parameters import Formula

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"


class ChannelScale(torch.nn.Module):
    """Multiply each channel by a learned factor."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.gamma = torch.nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1)  # (B, C, H, W), one factor per channel


@fmc.register_model("tiny-plugin", description="8-filter CNN with a learned channel scale")
def tiny_plugin(*, num_classes=10, in_channels=1, image_size=28):
    """A small CNN: conv 3x3 (8 filters), ReLU, channel scale, max-pool, linear."""
    side = image_size // 2
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 8, kernel_size=3, padding=1),
        torch.nn.ReLU(),
        ChannelScale(8),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * side * side, num_classes),
    )


# Registered here by the decorator itself, the model's source reads "built-in"; registered
# through an entry point, it would read the plugin distribution's name.
for spec in fmc.list_models():
    print(f"{spec.name:<12} {spec.source:<10} {spec.description}")

# %%
# Names are checked: registering a taken name raises (pass ``override=True`` to replace it on
# purpose), and a misspelt name gets suggestions.

try:
    fmc.register_model("tiny-plugin")(tiny_plugin)
except ValueError as err:
    print(f"ValueError: {err}")
try:
    fmc.build_model("tiny-plgin")
except fmc.UnknownModelError as err:
    print(f"UnknownModelError: {err}")

# %%
# Count its parameters
# --------------------
# :func:`~fmclassify.count_parameters` knows the formulas of PyTorch's layers, but not of
# ``ChannelScale``: its row is counted from ``numel`` and marked "no rule", never passed off as
# checked.

model = fmc.build_model("tiny-plugin", seed=0)
report = fmc.count_parameters(model)
print(report)
print(f"every row checked by a formula: {report.all_checked}")

# %%
# A rule for the new layer is one short function whose docstring's first line states the
# formula; :func:`~fmclassify.register_parameter_rule` adds it.


@fmc.register_parameter_rule(ChannelScale)
def channel_scale_rule(module):
    """ChannelScale: C, one factor per channel."""
    return Formula.build("{C}", {"C": module.channels})


report = fmc.count_parameters(model)
print(report)
print(f"every row checked by a formula: {report.all_checked}")

# %%
# Train it
# --------
# The registered model trains like any other.

train, test = fmc.load_dataset("fashion-mnist")
if QUICK:
    train, test = train.subset(6_000), test.subset(2_000)
EPOCHS = 1 if QUICK else 10

trainer = fmc.Trainer(model, lr=0.1, epochs=EPOCHS, seed=0, progress=False)
history = trainer.fit(train, test)
print(f"{len(train):,} training and {len(test):,} test images, {EPOCHS} epochs")
for record in history:
    loss = "-" if record.train_loss is None else f"{record.train_loss:.4f}"
    print(f"epoch {record.epoch}: train loss {loss}, test loss {record.test_loss:.4f}, "
          f"accuracy {record.test_accuracy:.1%}")
print(f"{history.describe_status()}; {report.trainable:,} parameters against the base MLP's "
      f"{fmc.count_parameters(fmc.build_model('base')).trainable:,}")
fig = history.plot()

# %%
# It takes part in the experiments too, e.g.
# ``fmc.compare_models(("base", "tiny-plugin"), lr=0.1, epochs=10)``, and in the command line:
# ``fmclassify train --model tiny-plugin`` once a plugin package registers it.
