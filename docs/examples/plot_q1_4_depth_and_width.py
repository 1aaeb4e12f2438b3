r"""
Q1.4: deeper or wider?
======================

**The question.** Besides the quickstart MLP, train a deeper and a wider network with the same
settings (learning rate 0.1, batch 64, plain SGD). Report the accuracy and the number of
trainable parameters of each.

**The three networks**, all registered by name (`fmclassify.list_models`):

``base``
   The quickstart MLP: 784-512-512-10 with ReLU.
``deeper``
   The course's CNN: two convolution blocks (3x3 convolution, batch norm, ReLU, 2x2 max-pool;
   32 then 64 channels), then three linear layers 2304-600-120-10 with dropout after the first.
   It is deeper in layers, and different in kind: a convolution applies the same small filter at
   every position of the image, so it holds few weights and looks at neighbouring pixels
   together, while a linear layer on the flattened image gives every pixel its own weight.
``wider``
   An MLP with the same depth as ``base`` and wider hidden layers: 784-1024-728-10.

Depth and width are not the only differences: the CNN also has batch normalization and dropout,
which change how it trains. So this comparison answers "which of these three networks does
better here", not "does depth beat width" in general.

**Your answer** is the first cell. It runs on the **quick** budget (the first 10,000 training
images, 5 epochs, three seeds per network). For the course's protocol (all 60,000 images, 10
epochs), change ``"quick"`` to ``"full"`` in its ``BUDGET`` line, or set
``FMCLASSIFY_DOCS_BUDGET=full`` before you start Python or Jupyter.
"""

# %%
# The comparison
# --------------
# `fmclassify.compare_models` trains each network with the same settings, data and seeds. The
# table gives the trainable parameters of each, and its accuracies as the mean over the seeds ±
# their standard deviation; ``fmclassify.compare_parameters(MODELS)`` gives the parameter counts
# alone, and the Q1.5 page counts them layer by layer.

import os

import fmclassify as fmc
from fmclassify.report import BUDGETS

# "quick": the first 10,000 training images, 5 epochs; "full": the course's protocol.
BUDGET = BUDGETS[os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")]
SEEDS = (0, 1, 2)  # three runs per network, as the assignment report
STORE = f"runs-{BUDGET.name}"  # finished runs are kept here: the Q1.6 page reads them back
# sphinx_gallery_start_ignore
# The docs build keeps every page's runs in a folder of its own (see docs/conf.py).
if "FMCLASSIFY_GALLERY_RUNS" in os.environ:
    STORE = os.path.join(os.environ["FMCLASSIFY_GALLERY_RUNS"], BUDGET.name)
# sphinx_gallery_end_ignore

train, test = fmc.load_dataset("fashion-mnist")
MODELS = ("base", "deeper", "wider")
result = fmc.compare_models(MODELS, lr=0.1, epochs=BUDGET.epochs, seeds=SEEDS,
                            data=(BUDGET.select(train), test), store=STORE)
result

# %%
# The first seed's curves.

from fmclassify.plotting import plot_comparison

first_seed = [run.history for run in result.runs if run.spec.seed == SEEDS[0]]
accuracy = plot_comparison(first_seed, metric="test_accuracy",
                           title=f"test accuracy, seed {SEEDS[0]}")
train_loss = plot_comparison(first_seed, metric="train_loss",
                             title=f"training loss, seed {SEEDS[0]}")

# %%
# What the runs show
# ------------------
# Written by the code from the table above, with the function the assignment report uses
# (``fmclassify.course.assignment.observations``). A network is called more accurate than
# another only when their final accuracies differ by more than the spread of their seeds.

from fmclassify.course.assignment.observations import model_observations

model_observations(result)

# %%
# The Q1.5 page counts these parameters layer by layer, by hand and with
# `fmclassify.count_parameters`; the Q1.6 page draws the conclusions on structure.
