"""Sphinx configuration of the fmclassify documentation.

Build it with ``bash scripts/build-docs.sh`` (warnings are errors). The gallery in
``docs/examples`` runs at build time on the real Fashion-MNIST; the environment variable
``FMCLASSIFY_DOCS_BUDGET`` picks its budget: ``quick`` (the default, minutes on a laptop CPU)
or ``full`` (the course's settings, hours on a CPU).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # gallery_support: the figure scraper and the example order

# Figures are rendered to files; never open a window, whatever the user's matplotlibrc says.
os.environ.setdefault("MPLBACKEND", "Agg")

from sphinx.util import logging as sphinx_logging

import fmclassify  # after the backend is chosen
from fmclassify import cli

# -- the gallery's budget ---------------------------------------------------------------------

BUDGET_VAR = "FMCLASSIFY_DOCS_BUDGET"
BUDGET = os.environ.get(BUDGET_VAR, "quick")
if BUDGET not in ("quick", "full"):
    raise ValueError(f"{BUDGET_VAR} must be 'quick' or 'full', got {BUDGET!r}")

GALLERY_OUT = DOCS / "auto_examples"
#: The examples keep finished runs here, so that Q1.3 and Q1.6 reuse the runs of Q1.1, Q1.2 and
#: Q1.4 instead of training them again; they read the folder from ``FMCLASSIFY_GALLERY_RUNS``.
#: It is emptied at the start of every build: runs are keyed by their configuration, not by the
#: code that trained them, so a page rerun after a change to the library must not reuse runs of
#: an older build. Inside this checkout's build tree, two checkouts never share it.
RUN_STORE = DOCS / "_build" / "gallery-runs"
shutil.rmtree(RUN_STORE, ignore_errors=True)
os.environ["FMCLASSIFY_GALLERY_RUNS"] = str(RUN_STORE)


def _fresh_gallery_if_budget_changed() -> None:
    """Rerun every example when the budget differs from the last build's (or on a fresh tree).

    Sphinx-Gallery reruns an example only when its source changed; a new budget changes no
    source, so the old pages would stay.
    """
    marker = GALLERY_OUT / ".budget"
    previous = marker.read_text().strip() if marker.exists() else None
    if previous != BUDGET:
        shutil.rmtree(GALLERY_OUT, ignore_errors=True)
        GALLERY_OUT.mkdir(parents=True)
        marker.write_text(BUDGET + "\n")


_fresh_gallery_if_budget_changed()


# -- the command line's own output, captured at build time ---------------------------------------

CLI_OUT = DOCS / "api" / "generated" / "cli"
CLI_CAPTURES = {
    "help": ["--help"],
    "models-help": ["models", "--help"],
    "params-help": ["params", "--help"],
    "train-help": ["train", "--help"],
    "assignment-help": ["assignment", "--help"],
    "sweep-help": ["sweep", "--help"],
    "course-help": ["course", "--help"],
    "courses": ["courses"],
    "models": ["models"],
    "params-deeper": ["params", "deeper"],
}


def _capture_cli() -> None:
    """Write what ``fmclassify ARGS`` prints for each of :data:`CLI_CAPTURES` (for cli.rst)."""
    CLI_OUT.mkdir(parents=True, exist_ok=True)
    os.environ["COLUMNS"] = "92"  # argparse wraps the help text to this width
    for name, argv in CLI_CAPTURES.items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # --help exits 0
                code = exc.code
        if code not in (0, None):
            raise RuntimeError(f"`fmclassify {' '.join(argv)}` exited with {code}")
        text = f"$ fmclassify {' '.join(argv)}\n{out.getvalue()}"
        path = CLI_OUT / f"{name}.txt"
        if not path.exists() or path.read_text() != text:  # unchanged files keep their mtime
            path.write_text(text)


_capture_cli()

# -- project ----------------------------------------------------------------------------------

project = "fmclassify"
author = "The fmclassify developers"
copyright = "The fmclassify developers"
release = fmclassify.__version__
version = release

# -- general ----------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # only for including CHANGELOG.md
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples"]  # examples/: the gallery's sources, not pages
root_doc = "index"
default_role = "py:obj"
nitpicky = False

# autodoc, autosummary, napoleon: NumPy docstrings, one generated page per public name
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the NumPy docstrings state every type
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

# Intersphinx stays off: the build must work offline, and a failed inventory fetch warns.

# -- offline pages: MathJax from a local copy ----------------------------------------------------
# The built pages load no script, style or font from the network (scripts/check-offline-docs.py
# checks every page after the build): formulas are typeset by MathJax 3 from the copy that the
# docs extra's ``sphinx-mathjax-offline`` installs; the build copies it to ``_static/mathjax``,
# so the repository holds none of its files. Only its files are used, not its extension.


def _local_mathjax() -> Path:
    """The folder holding ``mathjax/`` of the installed ``sphinx-mathjax-offline``."""
    from importlib import metadata

    try:
        dist = metadata.distribution("sphinx-mathjax-offline")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "the docs serve MathJax from the package sphinx-mathjax-offline, which is not "
            "installed: run `bash scripts/setup.sh docs`") from None
    static = Path(str(dist.locate_file("sphinx-mathjax-offline/static")))
    if not (static / "mathjax" / "tex-chtml.js").is_file():
        raise RuntimeError(f"sphinx-mathjax-offline has no mathjax/tex-chtml.js under {static}")
    return static


MATHJAX_STATIC = _local_mathjax()
mathjax_path = "mathjax/tex-chtml.js"  # relative to _static: TeX input, CommonHTML output

# -- Sphinx-Gallery ---------------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_support.ExampleOrder",
    # fmclassify returns Figures that pyplot does not manage: our scraper shows those, the
    # built-in one shows figures an example makes with pyplot (see gallery_support.py).
    "image_scrapers": ("gallery_support.scrape_figures", "matplotlib"),
    # A cell's last value shows as a notebook shows it: an object with an HTML form (an
    # experiment's table, a parameter report, a DataFrame) as that HTML table, any other value
    # as its text. Figures are the scrapers' to show, never as "<Figure size ...>" text; nor
    # is a list of them (the scraper shows each).
    "capture_repr": ("_repr_html_", "__repr__"),
    "ignore_repr_types": r"matplotlib|fmclassify\._figures|^<class '(list|tuple)'>$",
    "doc_module": ("fmclassify",),
    "backreferences_dir": "api/generated/backreferences",
    "min_reported_time": 0,
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_signature": False,
}

# -- HTML -------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"fmclassify {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "installation": [], "quickstart": [], "cli": [], "changelog": []}
# _static: custom.css (tables that wrap or scroll inside the page, figures as wide as the page);
# MATHJAX_STATIC: its mathjax/ folder becomes _static/mathjax.
html_static_path = ["_static", str(MATHJAX_STATIC)]
html_css_files = ["custom.css"]


# -- checks -----------------------------------------------------------------------------------


def _check_public_names(app: object) -> None:
    """Warn (an error under -W) for a public name without an API entry, docstring or example.

    Every name of ``fmclassify.__all__`` must be listed in api/index.rst and have a docstring
    with an "Examples" section; ``__version__``, a string, needs a ``#:`` doc comment instead
    (its page adds the example).
    """
    import inspect

    from sphinx.pycode import ModuleAnalyzer

    listed = set(re.findall(r"^   (\w+)$", (DOCS / "api" / "index.rst").read_text(),
                            flags=re.MULTILINE))
    attr_docs = ModuleAnalyzer.for_module("fmclassify").find_attr_docs()
    problems = []
    for name in fmclassify.__all__:
        if name not in listed:
            problems.append(f"{name} is not listed in docs/api/index.rst")
        if name == "__version__":
            if ("", name) not in attr_docs:
                problems.append(f"{name} has no '#:' doc comment in src/fmclassify/__init__.py")
            continue
        doc = inspect.getdoc(getattr(fmclassify, name)) or ""
        if not doc:
            problems.append(f"{name} has no docstring")
        elif not re.search(r"^Examples\n-{8}", doc, flags=re.MULTILINE):
            problems.append(f"the docstring of {name} has no Examples section")
    if problems:
        sphinx_logging.getLogger(__name__).warning(
            "public names of fmclassify.__all__ need an API page with a docstring and an "
            "example: %s", "; ".join(problems))


_EXECUTION_TIMES_CDN = re.compile(r"^  \.\. raw:: html\n.*?(?=^  \.\. list-table::)",
                                  flags=re.MULTILINE | re.DOTALL)


def _offline_execution_times(app: object, docname: str, source: list[str]) -> None:
    """Drop the CDN scripts and styles of Sphinx-Gallery's execution-times pages.

    Sphinx-Gallery writes ``sg_execution_times.rst`` with a raw HTML block that loads jQuery,
    DataTables and Bootstrap from CDNs to make its table sortable; the table is written sorted
    by time already, so without that block it is a plain table that works offline.
    """
    if docname.rsplit("/", 1)[-1] == "sg_execution_times":
        source[0] = _EXECUTION_TIMES_CDN.sub("", source[0])


def _reread_execution_times(app: object, env: object, added: set[str], changed: set[str],
                            removed: set[str]) -> list[str]:
    """Read the execution-times pages every build, so an incremental build drops their CDN
    block too (a doctree cached before :func:`_offline_execution_times` would keep it).
    """
    found = getattr(env, "found_docs", set())
    return [d for d in found if d.rsplit("/", 1)[-1] == "sg_execution_times"]


def setup(app: object) -> None:
    """Connect the checks and the offline fix of the execution-times pages."""
    app.connect("builder-inited", _check_public_names)  # type: ignore[attr-defined]
    app.connect("source-read", _offline_execution_times)  # type: ignore[attr-defined]
    app.connect("env-get-outdated", _reread_execution_times)  # type: ignore[attr-defined]
