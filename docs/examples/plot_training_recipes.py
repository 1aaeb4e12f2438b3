r"""
Training recipes: what the training setup is worth
==================================================

The course trains its CNN (``deeper``) with plain SGD at a constant learning rate of 0.1,
batch 64, no augmentation, and scores every epoch on the test set: 86.8 % after 10 epochs.
The network can do much better; what holds it back is the training setup. This page trains
the same architecture twice, the course's way and with a modern recipe, and explains each
element of the recipe. Every element is a keyword argument of :class:`~fmclassify.Trainer`
(and of the experiments, and a flag of ``fmclassify train``).

``momentum=0.9, nesterov=True``
   SGD keeps a running direction of past gradients and steps along it, looking one step
   ahead (Nesterov). The noise of single batches averages out and flat directions speed up.
``weight_decay=5e-4``
   Each step also pulls every weight a little towards zero: an L2 penalty that keeps the
   network from fitting the training images' quirks.
``schedule="one-cycle"``
   The learning rate rises from a 25th of ``lr`` to ``lr`` over the first 30 % of the steps,
   then anneals to almost zero. Large steps early explore; small steps late settle into a
   minimum. It is stepped after every batch; each epoch's rate is in its record (``lr``).
``label_smoothing=0.1``
   The training loss aims at 90 % on the true class and spreads 10 % over the others, so the
   network is not pushed to ever larger logits; evaluation losses stay plain cross-entropy.
``augment=["flip"]``
   Half of every training batch is mirrored left to right, on the training device, drawn
   from the run's seeded generator; evaluation is never augmented. A shirt mirrored is still
   a shirt. ``"crop"`` (shift by up to 2 pixels) and ``"erase"`` (black out a random
   rectangle) are there too, but on all of Fashion-MNIST each cost this network accuracy
   within 20 epochs (``benchmarks/README.md``): its centred, clean images gain little from
   them, and the extra difficulty needs more epochs to pay off.
``val_split=0.1``
   A stratified tenth of the training set is held out. Each epoch records ``val_accuracy``,
   and convergence or best-epoch logic watches it, so the test set never picks an epoch.
``batch_size=128``
   Bigger batches suit the momentum and the schedule, and are faster per image on a CPU.

Not used here, but there: ``warmup_epochs`` (a linear ramp before a ``"cosine"`` or ``"step"``
schedule), ``clip_grad_norm``, ``precision="bf16"`` (autocast) and ``ema=0.999`` (evaluate an
exponential moving average of the weights). EMA pays off when the run is long against
``1 / (1 - decay)`` steps (1,000 for 0.999, 100 for 0.99): it then smooths the last of many
noisy steps. Its decay is warmed up (``min(decay, (1 + t) / (10 + t))`` at step ``t``), so a
run of a few hundred steps neither gains nor loses much by it, and each record keeps the raw
weights' accuracy beside the average's (``raw_test_accuracy``). The recipe is
``fmclassify.report.RECIPE`` (the assignment report's last section trains it too);
``benchmarks/recipes.py`` trains it on all of Fashion-MNIST for 20 epochs and three seeds;
its figures are in ``benchmarks/README.md``.
The course's MLP (``base``) has no dropout or batch norm to lean on and wants a lighter touch:
the same recipe at ``lr=0.1`` with ``weight_decay=1e-4`` and ``label_smoothing=0.05``.
"""

# %%
# The budget and the data
# -----------------------

import os
import tempfile
from pathlib import Path

import fmclassify as fmc
from fmclassify.plotting import plot_comparison
from fmclassify.report import RECIPE, RECIPE_LR, Budget

# The report's budgets (fmclassify.report.BUDGETS): a page and the report share each number.
BUDGET = Budget.named(os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick"))
RUNS = os.environ.get("FMCLASSIFY_GALLERY_RUNS") or Path(tempfile.gettempdir(), "fmclassify")
STORE = Path(RUNS, BUDGET.name)

train, test = fmc.load_dataset("fashion-mnist")
train = BUDGET.select(train)  # the first images of the training set; the whole test set
EPOCHS = BUDGET.recipe_epochs
print(f"budget {BUDGET.name!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs per run")

# %%
# The course's setup and the recipe, side by side
# -----------------------------------------------
# Both runs start from the same weights (seed 0). ``compare_models`` with one model is simply
# one run through the store, so a rebuild of these docs reuses it.

course = fmc.compare_models(("deeper",), lr=0.1, epochs=EPOCHS, data=(train, test),
                            store=STORE)
print("the recipe:", RECIPE, "lr", RECIPE_LR, "and a validation split of 0.1")
recipe = fmc.compare_models(("deeper",), lr=RECIPE_LR, epochs=EPOCHS, data=(train, test),
                            store=STORE, val_split=0.1, **RECIPE)
plain, modern = course.runs[0].history, recipe.runs[0].history
for label, h in (("course", plain), ("recipe", modern)):
    print(f"{label:>7}: test accuracy {h.final_accuracy:.1%} after {h.epochs_trained} epochs, "
          f"{h.seconds_per_epoch:.1f} s per epoch, step {h.metadata['step']!r}")

# %%
# Test accuracy per epoch. On the quick budget (a sixth of the images, five epochs) the
# recipe's late, small steps already show; on all images the gap widens to several points.

fig = plot_comparison([plain, modern], metric="test_accuracy",
                      labels=["course: SGD 0.1, batch 64", "recipe (see above)"])

# %%
# The recipe's learning rate, epoch by epoch (the rate of each epoch's first step): the
# one-cycle ramp up, then the long anneal.

for r in modern.trained:
    print(f"epoch {r.epoch}: lr {r.lr:.4f}, validation accuracy {r.val_accuracy:.1%}, "
          f"test accuracy {r.test_accuracy:.1%}")

# %%
# Everything the run was set up with is in its History's metadata (and in the key of the
# store), so a table of results always says which recipe produced it.

print({k: modern.metadata[k] for k in ("optimizer", "momentum", "nesterov", "weight_decay",
                                       "schedule", "label_smoothing", "augment", "val_split",
                                       "precision", "ema", "train_size", "val_size")})
