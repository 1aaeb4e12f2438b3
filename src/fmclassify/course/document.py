"""The report as a list of blocks, rendered to Markdown and to one self-contained HTML file.

Private to the assignment report. Tables go through :mod:`fmclassify._tables`, the one renderer
every experiment table uses. Figures are written once as PNG files under ``figures/``:
``report.md`` links them, ``report.html`` embeds the same bytes as ``data:`` URIs, so the HTML
file needs nothing beside it (no stylesheet, script or image is fetched from anywhere).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmclassify._io import atomic_write_bytes
from fmclassify._tables import Table, to_html, to_markdown

__all__ = ["Document", "Picture", "slug"]

# Table cells carry their alignment inline (see _tables.to_html); the selectors on it keep
# numbers on one line and give the last text column room.
_STYLE = """
body{font-family:system-ui,sans-serif;max-width:84em;margin:1.5em auto;padding:0 1.5em;
line-height:1.45;color:#222}
h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
div.table{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
td,th{border:1px solid #bbb;padding:.2em .45em;vertical-align:top}
td[style$=left]:last-child{min-width:12em}th{max-width:10em}
th{background:#eef1f5}td[style$=right]{white-space:nowrap}
p.note{font-size:.9em;color:#444;margin:.2em 0}
.grid{display:grid;gap:.8em;margin:.8em 0}
.grid figure{margin:0;border:1px solid #ddd;padding:.3em;background:#fafafa}
.grid img{width:100%;height:auto}.grid h4{margin:.2em 0;text-align:center}
figcaption{font-size:.85em;color:#444;text-align:center}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
nav.toc{background:#f6f8fa;border:1px solid #ddd;padding:.4em 1.2em;display:inline-block}
"""


@dataclass(frozen=True)
class Picture:
    """A figure written to ``figures/NAME.png``: its path, caption and PNG bytes."""

    path: str
    caption: str
    png: bytes


def slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text.strip().lower()))


class Document:
    """Blocks of a report, rendered by :meth:`markdown` and :meth:`html`.

    Parameters
    ----------
    out : pathlib.Path
        The report folder; figures are written under ``out/figures``.
    title : str
        The top heading, and the HTML page's title.
    """

    def __init__(self, out: Path, title: str) -> None:
        self.out, self.title = out, title
        self.blocks: list[tuple[str, Any]] = [("h", (1, title))]

    def heading(self, text: str, level: int = 2) -> None:
        """A heading; level-2 headings make the table of contents."""
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        """A paragraph of plain text."""
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        """A bulleted list (nothing when empty)."""
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, table: Table) -> None:
        """A table (see :mod:`fmclassify._tables`)."""
        self.blocks.append(("table", table))

    def code(self, text: str) -> None:
        """Preformatted text."""
        self.blocks.append(("pre", text))

    def contents(self) -> None:
        """The table of contents: every level-2 heading, wherever it is."""
        self.blocks.append(("toc", None))

    def picture(self, figure: Any, name: str, caption: str) -> Picture:
        """Write ``figure`` to ``figures/NAME.png`` and return it, to place in a grid."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
        rel = f"figures/{name}.png"
        atomic_write_bytes(self.out / rel, buffer.getvalue())
        return Picture(rel, caption, buffer.getvalue())

    def grid(self, pictures: Sequence[Picture], columns: int = 2,
             header: Sequence[str] = ()) -> None:
        """Figures in rows of ``columns``, optionally under column titles (e.g. seeds)."""
        if pictures:
            self.blocks.append(("grid", (list(pictures), max(1, columns), list(header))))

    # -- rendering ----------------------------------------------------------------------------

    def _headings(self) -> list[str]:
        return [v[1] for k, v in self.blocks if k == "h" and v[0] == 2]

    def markdown(self) -> str:
        """The report as GitHub-flavoured Markdown; figures link ``figures/*.png``."""
        out: list[str] = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in value))
            elif kind == "table":
                out.append(to_markdown(value))
            elif kind == "pre":
                out.append("```\n" + value + "\n```")
            elif kind == "toc":
                out.append("\n".join(f"- [{h}](#{slug(h)})" for h in self._headings()))
            elif kind == "grid":
                out.append(_markdown_grid(*value))
        return "\n\n".join(out) + "\n"

    def html(self) -> str:
        """The report as one HTML page, figures embedded: it references no other file."""
        e = html.escape
        parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
                 f"<title>{e(self.title)}</title><style>{_STYLE}</style></head><body>"]
        for kind, value in self.blocks:
            if kind == "h":
                level, text = value
                parts.append(f"<h{level} id='{slug(text)}'>{e(text)}</h{level}>")
            elif kind == "p":
                parts.append(f"<p>{e(value)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                parts.append(f"<div class='table'>{to_html(value)}</div>")  # scrolls if wide
            elif kind == "pre":
                parts.append(f"<pre>{e(value)}</pre>")
            elif kind == "toc":
                items = "".join(f"<li><a href='#{slug(h)}'>{e(h)}</a></li>"
                                for h in self._headings())
                parts.append(f"<nav class='toc'><strong>Contents</strong><ul>{items}</ul></nav>")
            elif kind == "grid":
                parts.append(_html_grid(*value))
        parts.append("</body></html>")
        return "\n".join(parts)


def _markdown_grid(pictures: list[Picture], columns: int, header: list[str]) -> str:
    """Figures as a Markdown table of images, ``columns`` to a row."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a bare | would end the cell

    head = [cell(h) for h in header] or [""] * min(columns, len(pictures))
    rows = [pictures[i:i + columns] for i in range(0, len(pictures), columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"![{cell(p.caption)}]({p.path})" for p in row] + [""] * (len(head) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_grid(pictures: list[Picture], columns: int, header: list[str]) -> str:
    """Figures in a CSS grid, each embedded as a ``data:`` URI."""
    e = html.escape
    cells = [f"<h4>{e(h)}</h4>" for h in header]
    for p in pictures:
        data = base64.b64encode(p.png).decode()
        cells.append(f"<figure><img alt='{e(p.caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(p.caption)}</figcaption></figure>")
    style = f"grid-template-columns:repeat({columns},minmax(0,1fr))"
    return f"<div class='grid' style='{style}'>{''.join(cells)}</div>"
