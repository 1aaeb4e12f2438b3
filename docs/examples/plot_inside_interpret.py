r"""
Inside a model: which clothes it mixes up
=========================================

A test accuracy of 85 % says how often the model is wrong, not *how*. On Fashion-MNIST the two
are very different questions: a model that confuses trousers with bags has learned little,
while one that confuses shirts with T-shirts makes the mistakes a person squinting at a
28x28 grey thumbnail would make. Before you spend hours on a bigger network or a longer
schedule, look at the mistakes: they tell you whether more training can help at all.

:func:`~fmclassify.interpret` runs a trained model once over a data set and keeps its scores.
Every table and figure of the :class:`~fmclassify.Interpretation` it returns reads that cache,
so asking for another view never runs the model again.

The views
---------
**The confusion matrix.** Row *i*, column *j* counts the images of true class *i* that the
model predicted as class *j*; a perfect model fills only the diagonal. With
``normalize="true"`` each row is divided by its class's images, so the diagonal is the
fraction of that class recognised: its **recall**, what a course table of "accuracy per class"
means.

**Per class.** :meth:`~fmclassify.Interpretation.per_class` adds **precision** (of the images
predicted as a class, the fraction that are) and **F1**, their harmonic mean. A class with
high recall and low precision is a *sink*: the model sends doubtful images there.

**The most confused pairs.** :meth:`~fmclassify.Interpretation.most_confused` lists the
largest off-diagonal cells: (true class, predicted class, count).

**The top losses.** An image's loss is its cross-entropy, :math:`-\log p_\text{true}`, so a
loss of 4.6 means the model gave the true class 1 % (:math:`e^{-4.6}`). The images with the
largest losses are the model's *confident* mistakes;
:meth:`~fmclassify.Interpretation.plot_top_losses` shows them with their labels. Some are
honest mistakes, and some are images whose label you would dispute yourself.
"""

# %%
# The budget and the data
# -----------------------
# The quick budget trains on the first 6,000 training images for 3 epochs and interprets the
# first 2,000 test images; the full budget uses all images and 10 epochs.

import math
import os

import fmclassify as fmc

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"

train, test = fmc.load_dataset("fashion-mnist")
if QUICK:
    train, test = train.subset(6_000), test.subset(2_000)
EPOCHS = 3 if QUICK else 10
print(f"budget {BUDGET!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs, Adam at lr 0.001, batch 64, seed 0")

# sphinx_gallery_capture_repr = ("_repr_html_",)  # a cell's last value shows as its table

# %%
# Train the course's MLP
# ----------------------
# The quickstart network (``base``, 784-512-512-10). Adam at its usual rate 0.001 rather than
# the course's plain SGD at 0.1: on the quick budget's 6,000 images, three epochs of plain SGD
# leave the model unfinished, and an unfinished model's mistakes say more about the training
# than about the data. A cell that ends with a History shows its table.

model = fmc.build_model("base", seed=0)
history = fmc.Trainer(model, lr=0.001, optimizer="adam", epochs=EPOCHS, seed=0,
                      progress=False).fit(train, test)
history

# %%
# Interpret it
# ------------
# One pass over the test images. The Interpretation shows itself as the per-class table and
# the five most confused pairs; ``interp.to_dataframe()`` gives that table as a pandas
# DataFrame.

interp = fmc.interpret(model, test)
interp

# %%
# The confusion matrix, each row divided by its class's images: the diagonal is each class's
# recall, and each off-diagonal cell the share of the row's images sent to the wrong column.

confusion = interp.plot_confusion_matrix(normalize="true")
confusion

# %%
# The per-class metrics, from the worst-recognised class to the best.

rows = sorted(interp.per_class(), key=lambda row: row["recall"])
print(f"{'class':<12} {'recall':>7} {'precision':>9} {'f1':>6} {'images':>7}")
for row in rows:
    print(f"{row['class']:<12} {row['recall']:>7.1%} {row['precision']:>9.1%} "
          f"{row['f1']:>6.3f} {row['support']:>7,}")

# %%
# The five most frequent mistakes, each also as a share of its true class's images (the
# number in the normalized matrix above):

support = {row["class"]: row["support"] for row in interp.per_class()}
for true, predicted, count in interp.most_confused(5):
    print(f"{true:>12} -> {predicted:<12} {count:>4} images, "
          f"{count / support[true]:.0%} of all {true} images")

# %%
# The nine images the model got most wrong, each titled "true / predicted" with its loss.

worst = interp.plot_top_losses(9)
worst

# %%
# What the mistakes show
# ----------------------
# Printed from the interpretation above. Fashion-MNIST's ten classes fall into groups that
# look alike at 28x28 pixels: four garments for the upper body, three kinds of shoes, and
# three classes that look like nothing else (trousers, dresses, bags).

TOPS = {"T-shirt/top", "Pullover", "Coat", "Shirt"}
SHOES = {"Sandal", "Sneaker", "Ankle boot"}
matrix = interp.confusion_matrix()
mistakes = int(matrix.sum() - matrix.diagonal().sum())


def within(group):
    """The mistakes whose true and predicted class both lie in ``group``."""
    index = [i for i, name in enumerate(interp.classes) if name in group]
    return int(matrix[index][:, index].sum() - matrix.diagonal()[index].sum())


tops, shoes = within(TOPS), within(SHOES)
print(f"accuracy {interp.accuracy:.1%}: {mistakes:,} mistakes in {len(interp):,} images")
print(f"{tops:,} mistakes ({tops / mistakes:.0%}) confuse one upper-body garment with another, "
      f"and {shoes:,} ({shoes / mistakes:.0%}) one shoe with another;")
print(f"{mistakes - tops - shoes:,} ({(mistakes - tops - shoes) / mistakes:.0%}) cross the "
      "groups.")
weakest = [row["class"] for row in rows[:4]]
print(f"The four worst-recognised classes: {', '.join(weakest)}; "
      + ("exactly the upper-body garments." if set(weakest) == TOPS
         else f"{len(set(weakest) & TOPS)} of them upper-body garments."))
print(f"The worst is {rows[0]['class']} ({rows[0]['recall']:.0%} recall), the best "
      f"{rows[-1]['class']} ({rows[-1]['recall']:.0%}).")
sink = max(interp.per_class(), key=lambda row: row["recall"] - row["precision"])
print(f"The largest gap of recall over precision is {sink['class']}'s "
      f"({sink['recall']:.0%} against {sink['precision']:.0%}): the class the model sends "
      "doubtful images to.")
top_losses = interp.top_losses(9)
print(f"The nine top losses run from {top_losses[0][1]:.1f} to {top_losses[-1][1]:.1f} nats: "
      f"the model gave the true class between {math.exp(-top_losses[0][1]):.2%} and "
      f"{math.exp(-top_losses[-1][1]):.2%}.")

# %%
# **Reading the numbers.** The classes that fail are the upper-body garments, and the shirt
# most of all: at 28x28 pixels a shirt is a T-shirt with a collar and buttons a pixel or two
# wide, or a pullover or a coat without their texture. A class that looks like no other
# (trousers, bags) is rarely wrong. So the model is not guessing at random but running out of
# detail, and its top losses show it: for several of them you might pick the model's label
# yourself, since Fashion-MNIST's labels come from the shop's catalogue, not from the picture.
#
# What to do with it: more epochs of the same MLP help little with the shirt, because the fine
# detail that tells it apart is what a network on flattened pixels sees worst. The
# convolutions of the course's CNN (``deeper``) look at neighbouring pixels together, and the
# :doc:`recipes page <plot_training_recipes>` shows what augmentation adds; interpret those
# models the same way and compare the upper-body rows of their confusion matrices with these.
