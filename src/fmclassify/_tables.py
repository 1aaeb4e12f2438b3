"""Every table the package shows, and the one renderer of its three forms.

Private. A :class:`Table` is a header, rows of formatted cells, which columns hold numbers, a
title, and what follows the rows (totals, a legend of symbols, notes). :func:`to_text`,
:func:`to_markdown` and :func:`to_html` render it, so a table reads the same in a terminal, in
``report.md``, in ``report.html`` and in a notebook: :class:`fmclassify.ParameterReport`,
:class:`fmclassify.History`, :class:`fmclassify.ActivationStats`, the interpretation and the
learning-rate range test, every experiment result and every table of the assignment report.

Every text that reaches HTML goes through :func:`html.escape` (model names, class names and
notes are user data, and a ``<`` in them must never become markup), and a ``|`` in a Markdown
cell is escaped so it never splits the cell.

Beside the renderer sit the cell formatters the tables share (:func:`percent`, :func:`fixed`,
:func:`elide`) and the columns of each experiment kind (:data:`COLUMNS`,
:func:`experiment_table`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COLUMNS",
    "NA",
    "Table",
    "elide",
    "experiment_table",
    "fixed",
    "format_cell",
    "percent",
    "to_html",
    "to_markdown",
    "to_text",
]

#: What a cell without a number shows; the row then says why in words.
NA = "n/a"

#: For each experiment kind: (column key, header) pairs, in the course's layout.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "lr_sweep": [
        ("lr", "Learning rate"), ("final_accuracy", "Final accuracy"),
        ("best_accuracy", "Best accuracy"), ("mean_accuracy", "Avg accuracy (over epochs)"),
        ("final_train_loss", "Final train loss"), ("outcome", "Status"),
        ("seconds_per_epoch", "s/epoch"),
    ],
    "convergence_study": [
        ("lr", "Learning rate"), ("converged_epoch", "Converged at epoch"),
        ("epochs_trained", "Epochs trained"), ("final_accuracy", "Final accuracy"),
        ("best_accuracy", "Best accuracy"), ("outcome", "Status"),
        ("seconds_per_epoch", "s/epoch"),
    ],
    "compare_models": [
        ("model", "Model"), ("parameters", "Trainable parameters"),
        ("final_accuracy", "Final accuracy"), ("best_accuracy", "Best accuracy"),
        ("mean_accuracy", "Avg accuracy (over epochs)"), ("outcome", "Status"),
        ("seconds_per_epoch", "s/epoch"),
    ],
    "gradient_study": [
        ("lr", "Learning rate"), ("gradient_statistic", "Statistic"),
        ("gradient_steps", "Steps"), ("gradient_first", "Step 1"),
        ("gradient_last", "Last step"), ("gradient_mean", "Mean over steps"),
        ("outcome", "Status"),
    ],
}

_PERCENT = {"final_accuracy", "best_accuracy", "mean_accuracy"}
_TEXT = {"outcome", "status", "model", "gradient_statistic"}


@dataclass(frozen=True)
class Table:
    """A table of formatted cells, and what is said above and below it.

    Parameters
    ----------
    header : sequence of str
        Column headings.
    rows : sequence of sequence of str
        The cells, already formatted, one per column.
    right : collection of int
        Columns of numbers, aligned right; the others align left.
    title : str
        A line above the table; empty for none.
    notes : sequence of str
        Lines below the table (status, caveats, conventions).
    code : collection of int
        Columns shown as code in Markdown (layer names, formulas).
    totals : sequence of (str, str)
        ``(label, value)`` lines right under the rows, values aligned in text.
    symbols : sequence of str
        A legend of the symbols the cells use, under the heading "Symbols:".
    empty : str
        What stands in for the header and rows when there are no rows; empty (the default)
        shows the header alone.
    framed : bool
        False (the default) for a table that sits among other text, a summary or a section
        of a report: the title is one plain (bold) line and the notes are plain lines. True
        for a table that stands alone as a sheet of its own: in text a blank line under the
        title and a rule above and below the rows, in Markdown the title as a ``###``
        heading, and in all three forms the notes as a list under the heading "Notes:".
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    right: Collection[int] = frozenset()
    title: str = ""
    notes: Sequence[str] = ()
    code: Collection[int] = frozenset()
    totals: Sequence[tuple[str, str]] = ()
    symbols: Sequence[str] = ()
    empty: str = ""
    framed: bool = False


def to_text(table: Table) -> str:
    """The table as aligned plain text, columns two spaces apart.

    Parameters
    ----------
    table : Table
        What to render.

    Returns
    -------
    str
        The title, the header and the rows, then totals, symbols and notes; no final newline.

    Examples
    --------
    >>> print(to_text(Table(["epoch", "loss"], [["1", "0.5"], ["10", "0.25"]], right={0, 1})))
    epoch  loss
        1   0.5
       10  0.25
    """
    widths = [max(len(r[i]) for r in [table.header, *table.rows])
              for i in range(len(table.header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in table.right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = ["  ".join("-" * w for w in widths)] if table.framed else []
    if table.rows or not table.empty:
        grid = [line(table.header), *rule, *(line(r) for r in table.rows), *rule]
    else:
        grid = [table.empty]
    if table.totals:
        label_width = max(len(label) for label, _ in table.totals) + 1
        value_width = max(len(value) for _, value in table.totals)
        grid += [f"{label + ':':<{label_width}} {value:>{value_width}}"
                 for label, value in table.totals]
    symbols = ["Symbols:", *(f"  {s}" for s in table.symbols)] if table.symbols else []
    if not table.framed:
        top = [table.title] if table.title else []
        return "\n".join([*top, *grid, *symbols, *table.notes])
    notes = ["Notes:", *(f"  - {n}" for n in table.notes)] if table.notes else []
    blocks = [[table.title] if table.title else [], grid, symbols, notes]
    return "\n\n".join("\n".join(b) for b in blocks if b)


def to_markdown(table: Table, *, note_prefix: str = "") -> str:
    r"""The table in GitHub-flavoured Markdown: title, header row, rule, rows, then the rest.

    Parameters
    ----------
    table : Table
        What to render.
    note_prefix : str, optional
        Put before every note (``"Note: "``); nothing by default.

    Returns
    -------
    str
        Blocks separated by blank lines (title, table, totals, symbols, notes), no final
        newline, so a document can place the table between paragraphs.

    Examples
    --------
    >>> print(to_markdown(Table(["model", "acc"], [["a|b", "85.1%"]], right={1}, title="T")))
    **T**
    <BLANKLINE>
    | model | acc |
    |---|---:|
    | a\|b | 85.1% |
    """
    def row(cells: Sequence[str], code: Collection[int] = ()) -> str:
        shown = [f"`{c}`" if i in code else c for i, c in enumerate(cells)]
        return "| " + " | ".join(c.replace("|", "\\|") for c in shown) + " |"

    rule = "|" + "|".join("---:" if i in table.right else "---"
                          for i in range(len(table.header))) + "|"
    if table.rows or not table.empty:
        grid = "\n".join([row(table.header), rule, *(row(r, table.code) for r in table.rows)])
    else:
        grid = table.empty
    title = (f"### {table.title}" if table.framed else f"**{table.title}**") if table.title else ""
    blocks = [title, grid]
    blocks.append("\n".join(f"- **{label}:** {value}" for label, value in table.totals))
    if table.symbols:
        blocks += ["Symbols:", "\n".join(f"- {s}" for s in table.symbols)]
    notes = [f"{note_prefix}{n}" for n in table.notes]
    if table.framed and notes:
        blocks += ["Notes:", "\n".join(f"- {n}" for n in notes)]
    elif not table.framed:
        blocks += notes
    return "\n\n".join(b for b in blocks if b)


def to_html(table: Table) -> str:
    """The table as an HTML fragment (what a notebook shows), every text escaped.

    Cells carry their alignment inline (``style="text-align:right"``), so the table reads
    right with no stylesheet; notes of an unframed table are ``<p class='note'>``.

    Parameters
    ----------
    table : Table
        What to render.

    Returns
    -------
    str
        A ``<div>`` holding the title, the table, and the totals, symbols and notes.

    Examples
    --------
    >>> to_html(Table(["a"], [["<1>"]], title="t & u"))
    '<div><p><strong>t &amp; u</strong></p><table><thead><tr><th style="text-align:left">a</th></tr></thead><tbody><tr><td style="text-align:left">&lt;1&gt;</td></tr></tbody></table></div>'
    """  # noqa: E501
    e = html.escape

    def row(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(
            f'<{tag} style="text-align:{"right" if i in table.right else "left"}">{e(c)}</{tag}>'
            for i, c in enumerate(cells)) + "</tr>"

    def listed(heading: str, items: Sequence[str]) -> str:
        entries = "".join(f"<li>{e(i)}</li>" for i in items)
        return f"<p>{heading}:</p><ul>{entries}</ul>" if items else ""

    parts = [f"<p><strong>{e(table.title)}</strong></p>" if table.title else ""]
    if table.rows or not table.empty:
        body = "".join(row(r, "td") for r in table.rows)
        parts.append(f"<table><thead>{row(table.header, 'th')}</thead>"
                     f"<tbody>{body}</tbody></table>")
    else:
        parts.append(f"<p>{e(table.empty)}</p>")
    if table.totals:
        parts.append("<p>" + "<br>".join(e(f"{label}: {value}")
                                         for label, value in table.totals) + "</p>")
    parts.append(listed("Symbols", table.symbols))
    if table.framed:
        parts.append(listed("Notes", table.notes))
    else:
        parts += [f"<p class='note'>{e(n)}</p>" for n in table.notes]
    return "<div>" + "".join(parts) + "</div>"


# -- cells --------------------------------------------------------------------------------------


def percent(value: float | None, std: float | None = None, digits: int = 1) -> str:
    """A fraction in percent, with ``± std`` (in points) when given: ``"85.1% ± 0.4"``."""
    if value is None:
        return NA
    text = f"{100 * value:.{digits}f}%"
    return text + (f" ± {100 * std:.{digits}f}" if std is not None else "")


def fixed(digits: int, *, scale: float = 1.0) -> Callable[[Any], str]:
    """A formatter of numbers with ``digits`` decimals, ``"-"`` for None.

    Parameters
    ----------
    digits : int
        Decimals shown.
    scale : float, optional
        Multiplies the value first: ``100`` shows a fraction as percentage points.

    Returns
    -------
    callable
        Value (a number or None) to text.

    Examples
    --------
    >>> fixed(2)(0.123), fixed(2)(None), fixed(1)(float("inf")), fixed(2, scale=100)(0.8512)
    ('0.12', '-', 'inf', '85.12')
    """
    return lambda v: "-" if v is None else f"{scale * v:.{digits}f}"


def elide(rows: list[list[str]], keep: int) -> list[list[str]]:
    """The first and last ``keep`` rows with a row of ``...`` between them.

    Rows are returned unchanged when there are at most ``2 * keep + 1`` of them, so a hidden
    part always hides at least two rows.

    Examples
    --------
    >>> elide([[str(i)] for i in range(5)], 1)
    [['0'], ['...'], ['4']]
    """
    if len(rows) <= 2 * keep + 1:
        return rows
    return [*rows[:keep], ["..."] * len(rows[0]), *rows[-keep:]]


def format_cell(key: str, value: Any, std: Any = None) -> str:
    """Format one value of an experiment row: accuracies in percent, counts with separators."""
    if value is None:
        return NA
    if key in _PERCENT:
        return percent(value, std)
    if key.startswith("gradient_") and isinstance(value, float):
        return f"{value:.3e}" + (f" ± {std:.1e}" if std is not None else "")
    if key == "parameters" and isinstance(value, (int, float)):
        return f"{int(value):,}"
    if key in ("epochs_trained", "converged_epoch") and isinstance(value, float):
        text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
        return text + (f" ± {std:.1f}" if std is not None else "")
    if key == "lr":
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.4f}" if key.endswith("loss") else f"{value:.2f}"
    return str(value)


def experiment_table(rows: Sequence[Mapping[str, Any]], kind: str, *, title: str = "",
                     notes: Sequence[str] = ()) -> Table:
    """The :class:`Table` of an experiment's rows, with the kind's columns."""
    columns = COLUMNS.get(kind) or [(k, k) for k in (rows[0] if rows else {})]
    cells = [[format_cell(k, r.get(k), r.get(f"{k}_std")) for k, _ in columns] for r in rows]
    right = {i for i, (k, _) in enumerate(columns) if k not in _TEXT}
    return Table([h for _, h in columns], cells, right=frozenset(right), title=title,
                 notes=tuple(notes))
