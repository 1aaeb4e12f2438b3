"""Progress bars that suit where the code runs, and never print a warning.

``tqdm.auto`` picks the notebook bar inside Jupyter, but when ipywidgets is not installed it
warns ("IProgress not found. Please update jupyter and ipywidgets.") at *import* time, so a
plain ``import fmclassify`` in a fresh Colab or VS Code kernel printed that warning.
:func:`progress_bar` decides per bar instead: the widget bar only in a Jupyter kernel where
ipywidgets imports, else tqdm's plain text bar, and never imports either before it is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.std import tqdm

from fmclassify._notebook import in_notebook

__all__ = ["progress_bar"]

T = TypeVar("T")


def progress_bar(iterable: Iterable[T] | None = None, **tqdm_kwargs: Any) -> tqdm[T]:
    """A tqdm bar: the notebook widget in Jupyter when ipywidgets is installed, else text.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over, as for :class:`tqdm.tqdm`; or None for a bar updated by hand.
    **tqdm_kwargs
        Passed to tqdm unchanged (``total``, ``desc``, ``unit``, ``leave``, ``disable``, ...).
        A bar with ``disable=True`` is always the plain one, so it draws nothing at all.

    Returns
    -------
    tqdm.std.tqdm
        A ``tqdm.notebook.tqdm`` (a subclass) in a notebook with ipywidgets, else a
        ``tqdm.std.tqdm`` writing to stderr.

    Examples
    --------
    >>> bar = progress_bar(range(3), disable=True)
    >>> sum(bar), type(bar).__module__
    (3, 'tqdm.std')
    """
    widget = None if tqdm_kwargs.get("disable", False) else _notebook_bar()
    cls = widget if widget is not None else tqdm
    return cls(iterable, **tqdm_kwargs)


def _notebook_bar() -> type[tqdm[Any]] | None:
    """The widget bar class of tqdm when it can draw here, else None (and never a warning)."""
    if not in_notebook():
        return None
    try:
        from tqdm import notebook  # imports ipywidgets if it can; no warning when it cannot
    except ImportError:
        return None
    if getattr(notebook, "IProgress", None) is None:  # ipywidgets missing or broken
        return None
    bar: type[tqdm[Any]] = notebook.tqdm
    return bar
