#!/usr/bin/env python3
"""Check that the built HTML docs load nothing from the network.

Scans every ``.html`` file under a folder (default ``docs/_build/html``) for a ``<script src>``
or a ``<link href>`` (stylesheets, preloads, icons: any ``rel``) whose URL starts with
``http://``, ``https://`` or ``//``. Plain ``<a href>`` links are fine: they load nothing.

Prints one line per offender, ``FILE:LINE: <TAG> URL``, and exits with 1 when there is one,
with 2 when the folder holds no HTML page (nothing was checked), else 0::

    python scripts/check-offline-docs.py                 # docs/_build/html
    python scripts/check-offline-docs.py path/to/html

``scripts/build-docs.sh`` runs it after every successful build.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path

#: (tag, attribute) pairs whose URL the browser fetches when it loads the page.
LOADED = {("script", "src"), ("link", "href")}
REMOTE_PREFIXES = ("http://", "https://", "//")


class _Finder(HTMLParser):
    """Collects (line, tag, url) for every remote URL in a :data:`LOADED` attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (tag, name) in LOADED and value and is_remote(value):
                self.found.append((self.getpos()[0], tag, value.strip()))

    handle_startendtag = handle_starttag


def is_remote(url: str) -> bool:
    """Whether loading ``url`` from a page reaches the network."""
    return url.strip().lower().startswith(REMOTE_PREFIXES)


def offenders(root: Path) -> tuple[int, list[str]]:
    """The number of pages under ``root`` and one ``FILE:LINE: <TAG> URL`` line per offender."""
    pages = sorted(root.rglob("*.html"))
    lines = []
    for page in pages:
        finder = _Finder()
        finder.feed(page.read_text(encoding="utf-8", errors="replace"))
        finder.close()
        lines += [f"{page}:{line}: <{tag}> {url}" for line, tag, url in finder.found]
    return len(pages), lines


def main(argv: list[str] | None = None) -> int:
    """Check the folder named in ``argv`` (default ``docs/_build/html``); the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: check-offline-docs.py [HTML_FOLDER]", file=sys.stderr)
        return 2
    root = Path(args[0] if args else "docs/_build/html")
    n_pages, lines = offenders(root)
    if n_pages == 0:
        print(f"check-offline-docs: no .html page under {root}: nothing checked",
              file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    if lines:
        print(f"check-offline-docs: {len(lines)} script/link URL(s) load from the network "
              f"in {root} ({n_pages} pages); the docs must work offline", file=sys.stderr)
        return 1
    print(f"check-offline-docs: {n_pages} pages under {root} load no script or style "
          "from the network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
