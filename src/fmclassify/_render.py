"""Render one table with its totals, legend and notes as aligned text, Markdown or HTML.

Private: :class:`fmclassify.ParameterReport` and :class:`fmclassify.ActivationStats` describe
their table as a :class:`Table` and print it with these functions, so the three forms never
disagree on what a table holds.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Table", "html_table", "markdown_table", "text_table"]


@dataclass(frozen=True)
class Table:
    """A titled table: header, rows of cells, and what follows it.

    Parameters
    ----------
    title : str
        The line above the table.
    header : sequence of str
        Column names.
    cells : sequence of sequence of str
        The rows, one cell per column.
    right : frozenset of int
        Columns of numbers, aligned right.
    code : frozenset of int
        Columns shown as code in Markdown (names, formulas).
    totals : sequence of (str, str)
        ``(label, value)`` lines under the table.
    symbols, notes : sequence of str
        The legend and the notes, each under its heading when not empty.
    empty : str
        What stands in for a table without rows.
    """

    title: str
    header: Sequence[str]
    cells: Sequence[Sequence[str]]
    right: frozenset[int] = frozenset()
    code: frozenset[int] = frozenset()
    totals: Sequence[tuple[str, str]] = ()
    symbols: Sequence[str] = ()
    notes: Sequence[str] = ()
    empty: str = "(no rows)"


def text_table(table: Table) -> str:
    """The table as aligned plain text, two spaces between columns, rules above and below."""
    header, cells, right = list(table.header), [list(c) for c in table.cells], table.right
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [table.title, "", line(header), rule, *(line(c) for c in cells), rule]
    if not cells:
        lines[2:] = [table.empty]
    if table.totals:
        label_width = max(len(label) for label, _ in table.totals) + 1
        number_width = max(len(value) for _, value in table.totals)
        lines += [
            f"{label + ':':<{label_width}} {value:>{number_width}}" for label, value in table.totals
        ]
    if table.symbols:
        lines += ["", "Symbols:", *(f"  {s}" for s in table.symbols)]
    if table.notes:
        lines += ["", "Notes:", *(f"  - {n}" for n in table.notes)]
    return "\n".join(lines) + "\n"


def markdown_table(table: Table) -> str:
    """The table as GitHub-flavoured Markdown, totals as a bold list, then legend and notes."""
    lines = [f"### {table.title}", ""]
    if table.cells:
        n = len(table.header)
        lines += [
            "| " + " | ".join(table.header) + " |",
            "|" + "|".join("---:" if i in table.right else "---" for i in range(n)) + "|",
        ]
        for cells in table.cells:
            shown = [f"`{c}`" if i in table.code else c for i, c in enumerate(cells)]
            lines.append("| " + " | ".join(shown) + " |")
    else:
        lines.append(table.empty)
    if table.totals:
        lines += ["", *(f"- **{label}:** {value}" for label, value in table.totals)]
    if table.symbols:
        lines += ["", "Symbols:", "", *(f"- {s}" for s in table.symbols)]
    if table.notes:
        lines += ["", "Notes:", "", *(f"- {n}" for n in table.notes)]
    return "\n".join(lines) + "\n"


def html_table(table: Table) -> str:
    """The table as an HTML fragment (what a notebook shows), every text escaped."""

    def row(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(
            f'<{tag} style="text-align:{"right" if i in table.right else "left"}">'
            f"{html.escape(c)}</{tag}>"
            for i, c in enumerate(cells)
        ) + "</tr>"  # fmt: skip

    if table.cells:
        body = "".join(row(c, "td") for c in table.cells)
        shown = f"<table><thead>{row(table.header, 'th')}</thead><tbody>{body}</tbody></table>"
    else:
        shown = f"<p>{html.escape(table.empty)}</p>"
    parts = [f"<div><strong>{html.escape(table.title)}</strong>", shown]
    if table.totals:
        totals = "<br>".join(html.escape(f"{label}: {value}") for label, value in table.totals)
        parts.append(f"<p>{totals}</p>")
    for heading, items in (("Symbols", table.symbols), ("Notes", table.notes)):
        if items:
            entries = "".join(f"<li>{html.escape(i)}</li>" for i in items)
            parts.append(f"<p>{heading}:</p><ul>{entries}</ul>")
    return "".join(parts) + "</div>"
