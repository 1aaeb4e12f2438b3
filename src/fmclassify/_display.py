"""How objects show in a notebook: small tables as HTML and as text, and "are we in Jupyter?".

Private to the package; the ``_repr_html_`` and ``__str__`` of :class:`~fmclassify.History`
(and of other result objects) build their cells once and render them with :func:`html_table`
or :func:`text_table`, so a table reads the same in a notebook and in a terminal.

Every piece of text that reaches HTML goes through :func:`html.escape`: model names, metadata
and notes are user data, and a ``<`` in them must never become markup.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any

__all__ = ["elide", "fixed", "html_table", "in_notebook", "percent", "text_table"]

_CELL = 'style="text-align:{align}"'


def in_notebook() -> bool:
    """Whether the code runs inside a Jupyter kernel (Jupyter, JupyterLab, Colab, VS Code).

    True when an IPython shell with a kernel is running (ipykernel's shell and Colab's, which
    derives from it); False in a terminal IPython, a plain interpreter, or a script. IPython is
    never imported here: a kernel has always imported it already.

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


def html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    right: Collection[int] = (),
    notes: Sequence[str] = (),
) -> str:
    """An HTML table with a bold title above and notes below, every string escaped.

    Parameters
    ----------
    header : sequence of str
        Column headings.
    rows : sequence of sequence of str
        The cells, already formatted as text.
    title : str, optional
        A line shown in bold above the table.
    right : collection of int, optional
        Indices of the columns to align right (numbers).
    notes : sequence of str, optional
        Lines shown below the table (status, metadata, caveats).

    Returns
    -------
    str
        A ``<div>`` holding the title, the table and the notes.

    Examples
    --------
    >>> html_table(["a"], [["<1>"]], title="t & u")
    '<div><p><strong>t &amp; u</strong></p><table><thead><tr><th style="text-align:left">a</th></tr></thead><tbody><tr><td style="text-align:left">&lt;1&gt;</td></tr></tbody></table></div>'
    """  # noqa: E501
    aligns = [_CELL.format(align="right" if i in right else "left") for i in range(len(header))]
    head = "".join(f"<th {a}>{html.escape(h)}</th>" for a, h in zip(aligns, header, strict=True))
    body = "".join(
        "<tr>"
        + "".join(f"<td {a}>{html.escape(c)}</td>" for a, c in zip(aligns, row, strict=True))
        + "</tr>"
        for row in rows
    )
    top = f"<p><strong>{html.escape(title)}</strong></p>" if title else ""
    bottom = "".join(f"<p>{html.escape(note)}</p>" for note in notes)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div>{top}{table}{bottom}</div>"


def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    right: Collection[int] = (),
    notes: Sequence[str] = (),
) -> str:
    """The same table as :func:`html_table`, as aligned plain text.

    Parameters
    ----------
    header, rows, title, right, notes
        As for :func:`html_table`.

    Returns
    -------
    str
        The title, the header, the rows and the notes, one per line, columns two spaces apart.

    Examples
    --------
    >>> print(text_table(["epoch", "loss"], [["1", "0.5"], ["10", "0.25"]], right={0, 1}))
    epoch  loss
        1   0.5
       10  0.25
    """
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    lines = [title] if title else []
    lines += [line(header), *(line(r) for r in rows), *notes]
    return "\n".join(lines)


def percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals, ``"-"`` for None: ``0.8512 -> "85.12"``."""
    return "-" if value is None else f"{100.0 * value:.2f}"


def fixed(digits: int) -> Callable[[Any], str]:
    """A formatter of numbers with ``digits`` decimals, ``"-"`` for None.

    Examples
    --------
    >>> fixed(2)(0.123), fixed(2)(None), fixed(1)(float("inf"))
    ('0.12', '-', 'inf')
    """
    return lambda v: "-" if v is None else f"{v:.{digits}f}"


def elide(rows: list[list[str]], keep: int) -> list[list[str]]:
    """The first and last ``keep`` rows with a row of ``...`` between them.

    Rows are returned unchanged when there are at most ``2 * keep + 1`` of them, so a hidden
    part always hides at least two rows.
    """
    if len(rows) <= 2 * keep + 1:
        return rows
    return [*rows[:keep], ["..."] * len(rows[0]), *rows[-keep:]]
