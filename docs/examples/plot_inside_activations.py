r"""
Inside training: dead ReLUs at a large learning rate
====================================================

Q1.1 shows that the course's MLP trains badly at learning rate 1. The loss curve says *that*
something broke; the activations say *what*. A ReLU passes its input when it is positive and
outputs 0 otherwise, and its derivative is 1 or 0 accordingly. A unit whose input
:math:`w \cdot x + b` is negative for **every** image outputs 0 for every image, and so gets a
zero gradient for every image: no step of gradient descent changes its weights any more. It
is **dead**, and it takes its share of the layer's capacity with it.

Units die when a step is large enough to push :math:`w` and :math:`b` far into the negative
side at once, and a large learning rate makes such steps. In the first layer this is
permanent: its inputs are the pixels, which never change, so nothing can bring a dead unit
back. (A unit of a later layer may come back if the layers below it change what it sees.)

:class:`~fmclassify.ActivationStats` is a callback that watches every activation module
during the training passes and keeps, per layer and epoch, the mean and standard deviation of
the outputs and the number of **units dead over the epoch**: units whose output was never
positive for any image of any step of the epoch. The count is exact, one flag per unit.
Because a unit must stay silent through a whole epoch to count, the first epoch, which starts
from healthy random weights, usually shows none; the damage of that epoch shows in the next.
"""

# %%
# The budget and the data
# -----------------------
# The quick budget trains on the first 6,000 training images for 2 epochs (units that die in
# the first show in the second); the full budget on all of them for 10. The two runs differ
# only in the learning rate.

import os

import torch

import fmclassify as fmc

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"

train, test = fmc.load_dataset("fashion-mnist")
if QUICK:
    train, test = train.subset(6_000), test.subset(2_000)
EPOCHS = 2 if QUICK else 10
print(f"budget {BUDGET!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs per run, batch 64, plain SGD, seed 0")


def watch(lr):
    """Train the course's MLP at ``lr`` with ActivationStats; the model, History and stats."""
    model = fmc.build_model("base", seed=0)
    stats = fmc.ActivationStats()
    history = fmc.Trainer(model, lr=lr, epochs=EPOCHS, seed=0, callbacks=[stats],
                          progress=False).fit(train, test)
    return model, history, stats


# sphinx_gallery_capture_repr = ("_repr_html_",)  # a cell's last value shows as its table

# %%
# The course's rate, 0.1
# ----------------------
# The MLP has two ReLU layers: ``linear_relu_stack.1`` after the first linear layer and
# ``linear_relu_stack.3`` after the second, 512 units each. The callback shows itself as the
# table of the last epoch.

healthy_model, healthy_history, healthy = watch(0.1)
healthy

# %%
# Per epoch, the dead units (left) and each layer's mean output with a band of one standard
# deviation (right):

healthy_plot = healthy.plot(title="base MLP, lr 0.1")
healthy_plot

# %%
# Ten times larger, 1
# -------------------

dying_model, dying_history, dying = watch(1.0)
dying

# %%

dying_plot = dying.plot(title="base MLP, lr 1")
dying_plot

# %%
# The lr 1 run's History: the loss and accuracy that the dead units cost.

dying_history

# %%
# What the statistics show
# ------------------------
# Printed from the two runs above: the dead fraction of each layer per epoch.

for lr, stats, history in ((0.1, healthy, healthy_history), (1.0, dying, dying_history)):
    print(f"lr {lr:g}: final test accuracy {history.final_accuracy:.1%} "
          f"({history.describe_status()})")
    for layer in stats.layers:
        fractions = ", ".join(f"{f:.0%}" for f in stats.dead_fraction(layer))
        print(f"  {layer}: dead per epoch {fractions}")

# %%
# Why the first layer's units died. A unit is dead for an image when its pre-activation
# :math:`w \cdot x + b` is not positive; the pixels :math:`x` are never negative, so a unit
# whose weights and bias have been pushed negative is dead for every image at once. The
# first layer's weights of the dead and the living units, after the lr 1 run:

first = dying_model.linear_relu_stack[0]  # Linear(784, 512): one row of weights per unit
dead = dying.dead_units("linear_relu_stack.1")
alive = sorted(set(range(first.out_features)) - set(dead))
pixels = train.float_images().flatten(1).to(first.weight.device)  # (N, 1, 28, 28) -> (N, 784)
with torch.no_grad():
    peak = first(pixels).amax(dim=0)  # (N, 512) -> (512,): each unit's largest pre-activation
for label, units in (("dead", dead), ("alive", alive)):
    if not units:
        print(f"{label}: none")
        continue
    rows = first.weight[units]
    print(f"{label:>5}: {len(units):>3} units; mean bias {first.bias[units].mean():+.3f}, "
          f"{(rows < 0).double().mean():.0%} of their weights negative, mean weight "
          f"{rows.mean():+.4f}; largest pre-activation over all training images "
          f"{peak[units].max():+.2g}")
print(f"lr 0.1 for comparison: mean weight of the first layer "
      f"{healthy_model.linear_relu_stack[0].weight.mean():+.4f}")

# %%
# **Reading the numbers.** At lr 0.1 next to no unit dies, and both layers keep a spread of
# outputs. At lr 1 the first epoch's large steps push many first-layer units below zero for
# every image, and from then on they are out: their largest pre-activation over the whole
# training set is not positive, so they output nothing and get no gradient. The second layer
# loses fewer, since its units still see what the living first-layer units pass on. The
# network that is left is much narrower than the one that was built, and the accuracy shows
# it.
#
# What helps: a smaller learning rate (the lr finder of the
# :doc:`lr_find page <plot_inside_lr_find>` points to it); a schedule that warms the rate up
# over the first steps, when the gradients are largest; or an activation whose slope is not
# zero on the negative side, such as ``nn.LeakyReLU`` or ``nn.GELU``, so that a unit can
# always be pulled back. ActivationStats watches those too.
