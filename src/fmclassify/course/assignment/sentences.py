"""Sentences as a notebook shows them: the observation functions' return type.

Examples
--------
>>> notes = Sentences(["lr 0.1 ends highest.", "lr 1 thrashed."])
>>> print(notes)
* lr 0.1 ends highest.
* lr 1 thrashed.
>>> type(notes + ["More."]).__name__
'Sentences'
>>> notes._repr_html_()
'<ul><li>lr 0.1 ends highest.</li><li>lr 1 thrashed.</li></ul>'
"""

from __future__ import annotations

import html

__all__ = ["Sentences"]


class Sentences(list[str]):
    """A list of sentences that Jupyter (and the tutorial gallery) shows as a bulleted list.

    A plain :class:`list` in every other way: the report's questions join, index and write
    them as before. ``str()`` gives one ``* sentence`` line each.
    """

    def __add__(self, other: list[str]) -> Sentences:  # type: ignore[override]
        """Sentences, still: ``model_observations(r) + structure_observations(r, p)``.

        A sentence both hold (a caveat such as the one on single seeds) is kept once.
        """
        return Sentences([*self, *(s for s in other if s not in self)])

    def _repr_html_(self) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in self) + "</ul>"

    def __str__(self) -> str:
        return "\n".join(f"* {s}" for s in self)
