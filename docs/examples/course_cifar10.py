r"""
Another course: CIFAR-10 in one file
====================================

The Fashion-MNIST assignment is one course among others. A
:class:`~fmclassify.course.Course` is data: a data set, its models and learning rates, two
budgets and an ordered list of :class:`~fmclassify.course.Question` objects. Each question
plans the runs it needs (:class:`~fmclassify.course.Experiment` objects, built from the public
``*_specs`` functions), writes its section of the report, and gives one line of the summary
(:class:`~fmclassify.course.SummaryRow`). :func:`~fmclassify.course.run_course` trains the runs
of every question together (a run two questions plan trains once; an interrupted report picks
up where it stopped) and writes ``report.md``, a self-contained ``report.html``, ``figures/``
and ``results.json``.

This page is a whole second course, written with public names only: two questions about
CIFAR-10. Does a modern training recipe beat plain SGD for the same network? How does
accuracy grow with the width of a one-hidden-layer network?

.. note::

   This page is shown, not run, when the docs are built: CIFAR-10 is not available offline
   there. Run it with your data: ``python course_cifar10.py`` finds CIFAR-10 where
   :func:`~fmclassify.load_dataset` looks (``$FMCLASSIFY_DATA``, the user cache), else
   downloads it, and writes its report into ``cifar10-report/``.
"""

# %%
# The models
# ----------
# A registered builder takes the data's shape, so one name serves any image size. Three
# widths of one hidden layer: for 3x32x32 images, 3072 inputs to ``width`` units to 10.
# ``override=True``: a notebook that runs this cell twice, or a program that imports this
# file twice, replaces the registration instead of failing.

from matplotlib.figure import Figure

import fmclassify as fmc
from fmclassify.course import (
    Budget,
    Course,
    Experiment,
    Question,
    SummaryRow,
    comparisons,
    percent,
    register_course,
    run_course,
)

WIDTHS = (64, 256, 1024)


def mlp_of_width(width):
    """A builder of the one-hidden-layer MLP of ``width`` units, for any image shape."""
    def build(*, num_classes=10, in_channels=3, image_size=32):
        return fmc.MLP(in_features=in_channels * image_size**2, hidden=(width,),
                       num_classes=num_classes)
    return build


for width in WIDTHS:
    fmc.register_model(f"mlp-{width}", description=f"one hidden layer of {width} units",
                       override=True)(mlp_of_width(width))


# %%
# A modern recipe against plain SGD
# ---------------------------------
# The course's CNN (``deeper``, which adapts itself to 3x32x32 images) trained twice: with
# plain SGD at the course's learning rate, and with the recipe of the
# :doc:`recipes page <plot_training_recipes>`, here with random crops too, CIFAR-10's
# classic augmentation. Each setup is one :class:`~fmclassify.course.Experiment`; a question
# names its parts (``""`` is its main one) and reads them back with
# ``answers.part(self, name)``.

RECIPE = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "one-cycle",
          "label_smoothing": 0.1, "augment": ("crop", "flip"), "batch_size": 128}
RECIPE_LR = 0.05  # the one-cycle schedule's peak


class Recipe(Question):
    key, title = "recipe", "Does a modern recipe beat plain SGD for the same network?"
    network = "deeper"

    def plan(self, plan):
        def runs(lr, **recipe):
            return Experiment("compare_models", "model", fmc.compare_models_specs(
                (self.network,), lr, plan.budget.epochs, plan.seeds, **recipe))
        return {"plain": runs(plan.lrs[0]), "": runs(RECIPE_LR, **RECIPE)}

    def write(self, doc, answers):
        plain, recipe = answers.part(self, "plain"), answers[self]
        doc.heading(self.title)
        recipe_words = ", ".join(f"{k} {v}" for k, v in RECIPE.items())
        doc.para(f"The course's CNN, {answers.budget.epochs} epochs each: plain SGD (lr "
                 f"{plain.runs[0].spec.lr:g}, batch 64), then {recipe_words}, with a peak "
                 f"lr of {RECIPE_LR:g}. {answers.budget_note()}")
        doc.table(plain.to_table(title="Plain SGD"))
        doc.table(recipe.to_table(title="The modern recipe"))
        # first seed of each setup on one axes; test accuracy only, as label smoothing
        # raises the recipe's training loss by design
        both = fmc.ExperimentResult("compare_models", plain.runs[:1] + recipe.runs[:1])
        comparisons(doc, both, self.key, metrics=("test_accuracy",))

    def summary(self, answers):
        plain, recipe = (answers.part(self, p).rows()[0].final_accuracy
                         for p in ("plain", ""))
        return SummaryRow("A modern recipe for the CNN",
                          f"plain SGD {percent(plain)}, the recipe {percent(recipe)}")


# %%
# Accuracy against width
# ----------------------
# The course's models (``plan.models``: the three widths, or what ``--models`` names) at the
# course's learning rate. Beside the experiment's own table and curves, a figure of our own:
# any matplotlib Figure goes into the report through ``doc.picture``.


class Width(Question):
    key, title = "width", "How does accuracy grow with width?"

    def plan(self, plan):
        return {"": Experiment("compare_models", "model", fmc.compare_models_specs(
            plan.models, plan.lrs[0], plan.budget.epochs, plan.seeds))}

    def write(self, doc, answers):
        result = answers[self]
        doc.heading(self.title)
        doc.table(result.to_table())
        rows = [r for r in result.rows() if r.final_accuracy is not None]
        fig = Figure(figsize=(5, 3.5), layout="constrained")
        ax = fig.subplots()
        ax.semilogx([answers.params[r.model].trainable for r in rows],
                    [100 * r.final_accuracy for r in rows], "o-")
        ax.set(xlabel="trainable parameters", ylabel="final test accuracy (%)")
        doc.grid([doc.picture(fig, f"{self.key}-accuracy", "Final accuracy against size")])
        comparisons(doc, result, self.key)

    def summary(self, answers):
        return SummaryRow("Accuracy by width", "; ".join(
            f"{r.model}: {percent(r.final_accuracy)}" for r in answers[self].rows()))


# %%
# The course
# ----------
# ``quick`` is for a CPU (the command line's default there): the first 5,000 training images,
# 5 epochs a run; ``full`` is all 50,000 for 30 epochs, for a GPU.

COURSE = Course(
    name="cifar10-demo",
    title="CIFAR-10: a modern recipe, and width",
    questions=(Recipe(), Width()),
    dataset="cifar10",
    models=tuple(f"mlp-{w}" for w in WIDTHS),
    lrs=(0.05,),
    budgets={"quick": Budget("quick", train_size=5_000, epochs=5),
             "full": Budget("full", train_size=None, epochs=30)},
    description="CIFAR-10: a modern recipe against plain SGD, and MLP widths",
)

# %%
# Run it
# ------
# :func:`~fmclassify.course.run_course` takes the course itself; on CIFAR-10 the quick
# budget's three seeds take minutes on a laptop's CPU. ``seeds=``, ``workers=`` and
# ``budget="full"`` are there too. :func:`~fmclassify.course.register_course` adds the course
# to the catalog, so that this program can run it by name as well
# (``run_course("cifar10-demo", ...)``). The ``__main__`` guard keeps the report from starting
# again where worker processes import this file (on macOS and Windows they do).
#
# To share the course, make this file a module of a package (``my_course.py``) and declare it
# in the entry-point group ``fmclassify.courses`` of the package's ``pyproject.toml``; the
# group ``fmclassify.models`` makes its models known wherever a model is looked up
# (``fmclassify models``, ``fmclassify train --model mlp-256``, worker processes that start
# afresh on macOS, Windows or a Dask cluster), not only once the course is loaded:
#
# .. code-block:: toml
#
#    [project.entry-points."fmclassify.courses"]
#    cifar = "my_course:COURSE"
#
#    [project.entry-points."fmclassify.models"]
#    cifar = "my_course"
#
# Whoever installs the package then sees it in ``fmclassify courses`` beside the assignment,
# and runs it with ``fmclassify course cifar10-demo --out cifar10-report`` (``--quick`` or
# ``--full``, ``--seeds``, ``--workers``, ``--data-root`` as for the assignment). A rerun of
# the same command after an interrupt trains only what had not finished.

if __name__ == "__main__":
    register_course(COURSE, replace=True)
    report = run_course(COURSE, "cifar10-report", budget="quick")
    print(f"report written to {report.markdown_path} and {report.html_path}")
