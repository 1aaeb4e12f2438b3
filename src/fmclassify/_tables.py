"""Tables of experiments and of the report: what the cells say, and one renderer for three forms.

Private; used by :class:`fmclassify.ExperimentResult` and by the assignment report. A
:class:`Table` is header, rows of formatted cells, the columns of numbers, a title and notes;
:func:`to_markdown`, :func:`to_html` and :func:`to_text` render it, so a table reads the same
in ``report.md``, in ``report.html``, in a notebook and in a terminal. Every text that reaches
HTML is escaped (model names and notes are user data), and a ``|`` in a Markdown cell is
escaped so it never splits the cell.

(:class:`fmclassify.ParameterReport` and :class:`History` keep their own layouts, in
``_render`` and ``_display``: a formula table with totals and a legend, and an epoch table.)
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COLUMNS",
    "NA",
    "Table",
    "experiment_table",
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
        Columns of numbers, aligned right.
    title : str
        A line above the table (bold in Markdown and HTML); empty for none.
    notes : sequence of str
        Lines below the table.
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    right: Collection[int] = frozenset()
    title: str = ""
    notes: Sequence[str] = field(default_factory=tuple)


def to_markdown(table: Table, *, note_prefix: str = "") -> str:
    """The table in GitHub-flavoured Markdown: title, header row, rule, rows, notes."""
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---:" if i in table.right else "---"
                          for i in range(len(table.header))) + "|"
    lines = [row(table.header), rule, *(row(r) for r in table.rows)]
    parts = ([f"**{table.title}**"] if table.title else []) + ["\n".join(lines)]
    parts += [f"{note_prefix}{note}" for note in table.notes]
    return "\n\n".join(parts)


def to_html(table: Table) -> str:
    """The table as an HTML fragment (a ``<div>``), every text escaped."""
    def row(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(
            f'<{tag} class="{"num" if i in table.right else "txt"}">{html.escape(c)}</{tag}>'
            for i, c in enumerate(cells)) + "</tr>"

    body = "".join(row(r, "td") for r in table.rows)
    top = f"<p><strong>{html.escape(table.title)}</strong></p>" if table.title else ""
    bottom = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table.notes)
    return (f"<div class='table'>{top}<table><thead>{row(table.header, 'th')}</thead>"
            f"<tbody>{body}</tbody></table>{bottom}</div>")


def to_text(table: Table) -> str:
    """The table as aligned plain text, columns two spaces apart, then the notes."""
    cells = [list(table.header), *(list(r) for r in table.rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(table.header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in table.right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = ([table.title] if table.title else []) + [line(cells[0]), rule]
    lines += [line(r) for r in cells[1:]] + list(table.notes)
    return "\n".join(lines)


def percent(value: float | None, std: float | None = None, digits: int = 1) -> str:
    """A fraction in percent, with ``± std`` (in points) when given: ``"85.1% ± 0.4"``."""
    if value is None:
        return NA
    text = f"{100 * value:.{digits}f}%"
    return text + (f" ± {100 * std:.{digits}f}" if std is not None else "")


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
