r"""
Other data sets: MNIST, KMNIST, CIFAR-10
========================================

Nothing in fmclassify is tied to Fashion-MNIST. :func:`~fmclassify.load_dataset` knows four data
sets, every registered model takes the data's shape (channels, image size, classes) when it is
built, and the experiments read that shape from the data. Reusing the course with another data
set is a matter of its name:

.. code-block:: python

   import fmclassify as fmc

   train, test = fmc.load_dataset("cifar10")          # 3x32x32 colour images, 10 classes
   c, h, _ = train.image_shape
   model = fmc.build_model("deeper", in_channels=c, image_size=h,
                           num_classes=train.num_classes, seed=0)
   history = fmc.Trainer(model, lr=0.01, epochs=10).fit(train, test)

   sweep = fmc.lr_sweep("deeper", dataset="mnist", epochs=10)   # or any experiment

and on the command line, ``fmclassify train --dataset cifar10 --model deeper`` or
``fmclassify assignment --dataset mnist``. MNIST and KMNIST are 1x28x28 like Fashion-MNIST, so
the course's models fit them unchanged.

The docs are built without internet access, and only Fashion-MNIST is installed, so this page
shows what happens when a data set is missing, how the course's CNN adapts to CIFAR-10's shape,
and trains that CNN on Fashion-MNIST images dressed up in CIFAR-10's shape.
"""

# %%
# When the data is not there
# --------------------------
# ``download=False`` forbids the download. With no local copy anywhere, the one error lists every
# place it looked and the ways to fix it.

import os

import torch

import fmclassify as fmc

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"

print("known data sets:", ", ".join(fmc.list_datasets()))
try:
    cifar_train, cifar_test = fmc.load_dataset("cifar10", download=False)
    print(f"CIFAR-10 is installed here: {cifar_train}")
except fmc.DataNotFoundError as err:
    print(f"DataNotFoundError: {err}")

# %%
# A misspelt name gets a suggestion instead:

try:
    fmc.load_dataset("fashion_mnits")
except fmc.UnknownDatasetError as err:
    print(f"UnknownDatasetError: {err}")

# %%
# The course's CNN at CIFAR-10's shape
# ------------------------------------
# The convolutions do not care about the image size; the first linear layer does, because it
# takes every value the convolution blocks leave. Build the CNN for both shapes and compare the
# layers whose counts differ.

fashion = fmc.count_parameters(fmc.build_model("deeper"))
cifar = fmc.count_parameters(fmc.build_model("deeper", in_channels=3, image_size=32,
                                             num_classes=10))
for a, b in zip(fashion.rows, cifar.rows, strict=True):
    if a.numel != b.numel:
        print(f"{a.name:<9} 1x28x28: {a.formula_text:<40} 3x32x32: {b.formula_text}")
print(f"total     1x28x28: {fashion.trainable:,}   3x32x32: {cifar.trainable:,}")

# %%
# Training at that shape
# ----------------------
# An :class:`~fmclassify.ImageDataset` is two tensors and the class names, so any image data can
# be wrapped in one. Here Fashion-MNIST images are padded to 32x32 and repeated over three
# channels: CIFAR-10's shape, on data that is installed. (It shows the mechanics, not how the CNN
# does on real colour photographs.)

train, test = fmc.load_dataset("fashion-mnist")
n_train, n_test = (1_000, 500) if QUICK else (len(train), len(test))


def as_rgb32(split, n):
    """The first ``n`` images of ``split``, zero-padded to 32x32 and copied to 3 channels."""
    images = torch.nn.functional.pad(split.images[:n], (2, 2, 2, 2)).repeat(1, 3, 1, 1)
    return fmc.ImageDataset(images, split.labels[:n], split.classes,
                            name="fashion-mnist-rgb32", split=split.split)


rgb_train, rgb_test = as_rgb32(train, n_train), as_rgb32(test, n_test)
print(rgb_train)
model = fmc.build_model("deeper", in_channels=3, image_size=32, num_classes=10, seed=0)

# %%
# Data of the wrong shape is refused before any training starts:

try:
    fmc.Trainer(model, lr=0.1, epochs=1, progress=False).fit(train, test)
except fmc.DataError as err:
    print(f"DataError: {err}")

# %%
# With the right shape it trains. A learning rate that suits one input shape need not suit
# another, so the code starts at the course's 0.1 and, as one would by hand, tries the next
# smaller rate when a run diverges (the library ends it at the first non-finite loss and says
# so) or ends no better than twice chance.

chance = 1 / rgb_train.num_classes
for lr in (0.1, 0.01, 0.001):
    model = fmc.build_model("deeper", in_channels=3, image_size=32, num_classes=10, seed=0)
    history = fmc.Trainer(model, lr=lr, epochs=1 if QUICK else 3, seed=0,
                          progress=False).fit(rgb_train, rgb_test)
    if history.status == "diverged":
        print(f"lr {lr:g}: {history.reason}")
        continue
    if history.best_accuracy < 2 * chance and lr > 0.001:
        print(f"lr {lr:g}: best test accuracy {history.best_accuracy:.1%}, no better than "
              f"twice chance ({2 * chance:.0%}); trying a smaller learning rate")
        continue
    print(f"lr {lr:g}: {len(rgb_train):,} training and {len(rgb_test):,} test images of shape "
          f"{rgb_train.image_shape}: {history.describe_status()}, test accuracy "
          f"{history.final_accuracy:.1%} after {history.epochs_trained} epoch(s), "
          f"{history.seconds_per_epoch:.1f} s per epoch")
    break
fig = history.plot(title=f"the course's CNN at 3x32x32 (Fashion-MNIST, padded), lr={lr:g}")
