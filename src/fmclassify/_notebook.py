"""Are we in Jupyter? One question, asked by the progress bars and by :class:`LivePlot`.

Private to the package. IPython is never imported here: a kernel has always imported it
already, and a plain script should not pay for it.
"""

from __future__ import annotations

import sys

__all__ = ["in_notebook"]


def in_notebook() -> bool:
    """Whether the code runs inside a Jupyter kernel (Jupyter, JupyterLab, Colab, VS Code).

    True when an IPython shell with a kernel is running (ipykernel's shell and Colab's, which
    derives from it); False in a terminal IPython, a plain interpreter, or a script.

    Returns
    -------
    bool
        True inside a notebook kernel.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
