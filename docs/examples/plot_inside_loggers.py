r"""
Inside training: watching a run while it trains
===============================================

A History is complete when ``fit`` returns. A run of the full budget takes minutes to hours,
and you want to see before then whether the loss is falling, whether it has diverged, and
whether it is worth waiting for. Three callbacks log each finished epoch as it happens; each
reads only the epoch's record, never the training steps, so none of them slows a step down.

:class:`~fmclassify.LivePlot`
   The figure of ``history.plot()``, redrawn after each epoch. In a Jupyter notebook it
   appears below the cell and is updated in place; elsewhere (a script, a terminal) it is
   written to a PNG file that an image viewer can keep reloading. With a ``path`` in a
   notebook, it does both.
:class:`~fmclassify.CSVLogger`
   The History's table as a CSV file, rewritten after each epoch: ``tail`` it, or read it
   with pandas or a spreadsheet while the run goes on.
:class:`~fmclassify.TensorBoardLogger`
   TensorBoard scalars (``Loss/train``, ``Loss/test``, ``Accuracy/test``, ...), one point per
   epoch. Give each run a subfolder of one log folder and TensorBoard overlays them:
   ``tensorboard --logdir <folder>``. It needs the optional extra ``fmclassify[tensorboard]``.

After the run, the History writes the same table itself: :meth:`~fmclassify.History.to_csv`,
and :meth:`~fmclassify.History.to_dataframe` for pandas (the extra ``fmclassify[pandas]``).
Every file is replaced atomically, so a reader never sees half of one.
"""

# %%
# The budget and the data
# -----------------------
# One short run of the course's MLP: on the quick budget 2 epochs on the first 6,000
# training images, on the full budget 10 epochs on all of them.

import os
import shutil
import tempfile
from pathlib import Path

import fmclassify as fmc

BUDGET = os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"FMCLASSIFY_DOCS_BUDGET must be 'quick' or 'full', got {BUDGET!r}")
QUICK = BUDGET == "quick"
# The docs build names a folder of its own; run by hand, the runs go to the temp folder.
RUNS = os.environ.get("FMCLASSIFY_GALLERY_RUNS") or Path(tempfile.gettempdir(), "fmclassify")
LOGS = Path(RUNS, BUDGET, "logs")
shutil.rmtree(LOGS, ignore_errors=True)  # start afresh: TensorBoard would show older runs too

train, test = fmc.load_dataset("fashion-mnist")
if QUICK:
    train, test = train.subset(6_000), test.subset(2_000)
EPOCHS = 2 if QUICK else 10
print(f"budget {BUDGET!r}: {len(train):,} training and {len(test):,} test images, "
      f"{EPOCHS} epochs, lr 0.1, batch 64, plain SGD, seed 0")

# sphinx_gallery_capture_repr = ("_repr_html_",)  # a cell's last value shows as its table

# %%
# Train with the loggers attached
# -------------------------------
# TensorBoard is optional: without it, the logger says at construction what to install,
# before any training, and the run goes on without it.

loggers = [fmc.LivePlot(path=LOGS / "live.png"), fmc.CSVLogger(LOGS / "history.csv")]
try:
    loggers.append(fmc.TensorBoardLogger(LOGS / "tensorboard" / "base-lr0.1"))
except ImportError as missing:
    print(missing)

model = fmc.build_model("base", seed=0)
history = fmc.Trainer(model, lr=0.1, epochs=EPOCHS, seed=0, callbacks=loggers,
                      progress=False).fit(train, test)
history

# %%
# What the loggers left behind
# ----------------------------
# The live figure's last state is the figure of ``history.plot()``:

curves = history.plot()
curves

# %%
# The files, and the CSV file as a spreadsheet would read it (one row per epoch, epoch 0 the
# untrained model; empty cells where a value does not exist, such as the training loss
# before any training):

for path in sorted(LOGS.iterdir()):
    if path.is_dir():  # TensorBoard's: one event file per run, named by host and time
        for run in sorted(path.iterdir()):
            print(f"{run.relative_to(LOGS)}/  ({len(list(run.iterdir()))} event file(s))")
    else:
        print(f"{path.relative_to(LOGS)}  ({path.stat().st_size:,} bytes)")
print()
print((LOGS / "history.csv").read_text())

# %%
# The same table for pandas, read from the History after the run (to plot it your own way,
# join several runs, or save it in another format):

try:
    frame = history.to_dataframe()
except ImportError as missing:  # pandas is optional too
    print(missing)
    frame = None
frame
