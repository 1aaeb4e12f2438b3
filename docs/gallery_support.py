"""Sphinx-Gallery helpers for the fmclassify docs: a figure scraper and the example order.

conf.py names these by their qualified names (``"gallery_support.scrape_figures"``), as
Sphinx-Gallery recommends, so that the configuration stays picklable.

Why a scraper of our own
------------------------
fmclassify builds its figures with :class:`matplotlib.figure.Figure` directly, never through
:mod:`matplotlib.pyplot` (the library shows nothing and leaks no global "current figure").
Sphinx-Gallery's built-in matplotlib scraper only sees figures that pyplot manages
(``plt.get_fignums()``), so it would miss every figure the library returns, and pyplot has no
public way to adopt a figure it did not create.

:func:`scrape_figures` does what the built-in scraper already does for animations: after each
code block it looks through the example's global names. Every :class:`~matplotlib.figure.Figure`
bound to a top-level name that it has not shown before (``fig = history.plot()``), or held in a
list or tuple bound to one (``curves = [h.plot() for h in histories]``), is saved and shown under
that block. A dict is not searched, so ``figures = result.plot()`` shows nothing by itself.
Figures that pyplot manages are left to the built-in scraper, which runs after this one, so
nothing is shown twice. An example therefore reads like ordinary user
code: keep the Figure in a variable and it appears on the page.
"""

from __future__ import annotations

import weakref
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["EXAMPLE_ORDER", "ExampleOrder", "figures_to_show", "scrape_figures"]

#: Gallery order: the course's questions first, then what goes beyond them (a training
#: recipe, then the tools that look inside a model and its training: ``plot_inside_*``),
#: and last a second course of one's own.
EXAMPLE_ORDER = (
    "plot_q1_1_learning_rates.py",
    "plot_q1_2_convergence.py",
    "plot_q1_3_learning_rate_discussion.py",
    "plot_q1_4_depth_and_width.py",
    "plot_q1_5_counting_parameters.py",
    "plot_q1_6_structure.py",
    "plot_q1_7_gradients.py",
    "plot_training_recipes.py",
    "plot_inside_interpret.py",
    "plot_inside_lr_find.py",
    "plot_inside_gradient_flow.py",
    "plot_inside_activations.py",
    "plot_inside_shapes_and_compute.py",
    "plot_inside_loggers.py",
    "plot_plugin_model.py",
    "plot_other_datasets.py",
    "plot_torchvision_params.py",
    "course_cifar10.py",  # shown, not run: CIFAR-10 is not there when the docs are built
)

# Every figure this scraper has seen, shown or left to pyplot's scraper. Weak, so a figure
# the example drops is not kept alive; examples run one after another in this process.
_seen: weakref.WeakSet[Any] = weakref.WeakSet()


def scrape_figures(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any],
                   **kwargs: Any) -> str:
    """Save the Figures newly bound to the example's global names; return their rST.

    Parameters
    ----------
    block, block_vars, gallery_conf
        As Sphinx-Gallery passes them to every image scraper.
    **kwargs
        Ignored (Sphinx-Gallery's scraper signature).

    Returns
    -------
    str
        The rST that embeds the images, or ``""`` when the block made no new figure.
    """
    from sphinx_gallery.scrapers import figure_rst

    new = figures_to_show(block_vars["example_globals"])
    if not new:
        return ""
    paths = []
    for fig, image_path in zip(new, block_vars["image_path_iterator"], strict=False):
        fig.savefig(image_path)
        paths.append(PurePosixPath(Path(image_path).as_posix()))
    titles = ", ".join(t for t in (_title(f) for f in new) if t)
    return figure_rst(paths, gallery_conf["src_dir"], titles)


def figures_to_show(namespace: dict[str, Any]) -> list[Any]:
    """The Figures :func:`scrape_figures` shows after a block that left ``namespace``.

    Those bound to a name of ``namespace`` (or held in a list or tuple bound to one) that it
    has not seen before and that pyplot does not manage; each is then marked as seen. The
    gallery's notebook test asks the same of a page run in a kernel, to count what the web
    page shows.

    Parameters
    ----------
    namespace : dict
        The example's global names.

    Returns
    -------
    list of matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    new = []
    for value in list(namespace.values()):
        for fig in _figures_in(value, Figure):
            if fig in _seen:
                continue
            _seen.add(fig)
            if fig.canvas.manager is None:  # pyplot's figures have a manager: not ours to show
                new.append(fig)
    return new


def _figures_in(value: Any, figure_type: type) -> list[Any]:
    """A Figure, or the Figures of a list or tuple of them; dicts are not searched.

    ``figures = result.plot()`` (a dict of every figure of an experiment) is thereby not shown
    wholesale: an example picks the ones it means to show.
    """
    if isinstance(value, figure_type):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, figure_type) for v in value
    ):
        return list(value)
    return []


def _title(fig: Any) -> str:
    """The figure's suptitle, else its first axes title (the image's alt text)."""
    if fig.get_suptitle():
        return str(fig.get_suptitle())
    for ax in fig.axes:
        if ax.get_title():
            return str(ax.get_title())
    return ""


class ExampleOrder:
    """Sort key for ``within_subsection_order``: :data:`EXAMPLE_ORDER`, then by file name.

    Parameters
    ----------
    src_dir : str
        The gallery's source folder (Sphinx-Gallery passes it; unused).
    """

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        """Return the key: position in :data:`EXAMPLE_ORDER` (unlisted files last), name."""
        name = Path(filename).name
        rank = EXAMPLE_ORDER.index(name) if name in EXAMPLE_ORDER else len(EXAMPLE_ORDER)
        return rank, name

    def __repr__(self) -> str:
        return "ExampleOrder()"
