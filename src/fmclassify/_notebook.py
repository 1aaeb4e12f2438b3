"""Jupyter: are we in a kernel, and showing an object once when the running cell ends.

Private to the package. IPython is never imported here: a kernel has always imported it
already, and a plain script should not pay for it.

:func:`show_at_cell_end` is how a library figure behaves like one of matplotlib's own under the
inline backend: matplotlib-inline keeps every pyplot figure made during a cell and displays it
when the cell ends (its ``post_execute`` hook, ``flush_figures``), wherever it was made and
whatever the cell returns. This module does the same for objects handed to it, through IPython's
``post_run_cell`` event, with one difference that keeps each picture single: an object already
displayed during the cell, as the cell's own value (``history.plot()`` on the last line) or by
``display(fig)``, is not shown again (matplotlib would show ``fig`` twice in both cases). The
object reports its displays through :func:`mark_shown`, from its ``_repr_mimebundle_``, which
IPython calls each time it formats the object for display.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["in_notebook", "mark_shown", "show_at_cell_end"]


def in_notebook() -> bool:
    """Whether the code runs inside a Jupyter kernel (Jupyter, JupyterLab, Colab, VS Code).

    True when an IPython shell with a kernel is running (ipykernel's shell and Colab's, which
    derives from it); False in a terminal IPython, a plain interpreter, or a script.

    Returns
    -------
    bool
        True inside a notebook kernel.
    """
    return _kernel_shell() is not None


def _kernel_shell() -> Any:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


class _CellEnd:
    """The objects to show when the running cell ends, and the two IPython hooks that do it.

    One instance per process (:data:`_CELL_END`); it hooks the kernel's shell once, the first
    time an object is queued (during a cell, since only user code makes figures). Objects are
    queued only between ``pre_run_cell`` and ``post_run_cell``: code run outside a cell (a
    widget's callback, a silent execution) shows nothing, rather than into a later cell.
    """

    def __init__(self) -> None:
        self.pending: list[Any] = []  # strong: `interp.plot_confusion_matrix()` drops its figure
        self.shell: Any = None
        self.in_cell = False

    def queue(self, obj: Any) -> bool:
        shell = _kernel_shell()
        if shell is None:
            return False
        if shell is not self.shell:  # first use in this kernel: we are inside a cell
            shell.events.register("pre_run_cell", self._cell_starts)
            shell.events.register("post_run_cell", self._cell_ends)
            self.shell, self.in_cell = shell, True
        if self.in_cell:
            self.pending.append(obj)
        return self.in_cell

    def shown(self, obj: Any) -> None:
        self.pending = [o for o in self.pending if o is not obj]

    def _cell_starts(self, info: Any = None) -> None:
        self.in_cell = True
        self.pending.clear()  # left by a cell whose post_run_cell never came (interrupted)

    def _cell_ends(self, result: Any = None) -> None:
        from IPython.display import display  # a kernel has imported IPython

        self.in_cell = False
        pending, self.pending = self.pending, []
        value = getattr(result, "result", None)  # the cell's value, should it not have told us
        for obj in pending:
            if obj is not value:
                display(obj)


_CELL_END = _CellEnd()


def show_at_cell_end(obj: Any) -> bool:
    """Show ``obj`` once, with :func:`IPython.display.display`, when the running cell ends.

    Not shown again if it is the value the cell itself displays (its last line). Outside a
    notebook kernel, or outside a running cell, nothing is kept.

    Parameters
    ----------
    obj : object
        Anything IPython can display (a matplotlib Figure here).

    Returns
    -------
    bool
        True if ``obj`` was queued (it is then held until the cell ends).
    """
    return _CELL_END.queue(obj)


def mark_shown(obj: Any) -> None:
    """Tell that ``obj`` was displayed: the end of the cell need not show it again.

    Parameters
    ----------
    obj : object
        An object passed to :func:`show_at_cell_end`; any other object is ignored.
    """
    _CELL_END.shown(obj)
