"""The gallery's "inside" pages as the notebooks Sphinx-Gallery writes, run in a real kernel.

Each ``docs/examples/plot_inside_*.py`` page is turned into a notebook by Sphinx-Gallery's own
functions with the gallery's settings from ``docs/conf.py``: the notebook its "Download Jupyter
notebook" link gives. It runs in a fresh ipykernel (this interpreter, through a kernel spec in a
temporary ``JUPYTER_PATH``, as in test_notebooks.py) on the real Fashion-MNIST with the quick
budget, and the test checks what a student sees:

* every Figure a page binds to a top-level name (what the gallery's scraper shows on the web
  page) is shown in the notebook as a picture, by a cell that ends with it;
* every fmclassify object a cell ends with is shown as an HTML table;
* no cell writes to stderr or prints a warning.

A last cell, added after the page's own, asks the kernel what each cell showed (IPython's
``Out``) and which Figures the page's names hold; the checks read its answer.

The course's question pages, ``plot_q1_*.py``, are students' templates: each is run the same
way (in one shared folder, in order, so that Q1.3 and Q1.6 read back the runs Q1.1, Q1.2 and
Q1.4 kept in ``runs-quick``), and each cell's pictures and HTML tables are counted against what
the web page shows for the same block. A first cell, added before the page's own, counts the
latter in the kernel as the docs build does: the Figures ``gallery_support.figures_to_show``
finds among the page's names, the pyplot figures open when the cell ends, and an HTML table
when the cell's value has one (``capture_repr`` in docs/conf.py).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REAL_DATA

nbformat = pytest.importorskip(
    "nbformat", reason='notebook tests need the test extra: pip install "fmclassify[test]"')
nbclient = pytest.importorskip(
    "nbclient", reason='notebook tests need the test extra: pip install "fmclassify[test]"')
pytest.importorskip(
    "ipykernel", reason='notebook tests need the test extra: pip install "fmclassify[test]"')
_DOCS_EXTRA = 'the gallery notebooks need the docs extra: pip install "fmclassify[docs]"'
py_source_parser = pytest.importorskip("sphinx_gallery.py_source_parser", reason=_DOCS_EXTRA)
gen_gallery = pytest.importorskip("sphinx_gallery.gen_gallery", reason=_DOCS_EXTRA)
sg_notebook = pytest.importorskip("sphinx_gallery.notebook", reason=_DOCS_EXTRA)

DOCS = Path(__file__).parents[1] / "docs"
EXAMPLES = DOCS / "examples"
PAGES = sorted(EXAMPLES.glob("plot_inside_*.py"))
KERNEL = "fmclassify-gallery-python"
# Seconds. The pages take well under a minute on the quick budget; a cell may take a few
# times longer on a busy machine, and only a hung cell should fail on time.
CELL_TIMEOUT = 300

#: The fmclassify objects each page must show as a table (by their class names).
TABLES = {
    "plot_inside_interpret.py": {"History", "Interpretation"},
    "plot_inside_lr_find.py": {"LRFinderResult", "ExperimentResult"},
    "plot_inside_activations.py": {"ActivationStats", "History"},
    "plot_inside_shapes_and_compute.py": {"ParameterReport"},
    "plot_inside_loggers.py": {"History"},
}

# What each cell showed, and which cell showed each fmclassify Figure bound to a page's global
# name (None: no cell ended with it). A page's own pyplot figures are the inline backend's to
# show (and by now closed by it, so their canvas no longer says they were pyplot's).
PROBE = """\
import json as _json
from matplotlib.figure import Figure as _Figure
_shown = {id(_value): _count for _count, _value in Out.items()}
_figures = {}
for _name, _value in list(globals().items()):
    if _name.startswith("_"):
        continue
    _items = _value if isinstance(_value, (list, tuple)) else [_value]
    _ours = [_v for _v in _items if isinstance(_v, _Figure)
             and type(_v).__module__.startswith("fmclassify")]
    if _ours and _items is _value:
        _figures[_name] = None  # the scraper shows a list's figures; a notebook shows a list
    elif _ours:
        _figures[_name] = _shown.get(id(_value))
print(_json.dumps({"results": {_count: [type(_value).__module__, type(_value).__qualname__]
                               for _count, _value in Out.items()},
                   "figures": _figures}))
"""


def gallery_conf() -> dict[str, Any]:
    """Sphinx-Gallery's defaults updated with ``sphinx_gallery_conf`` of docs/conf.py.

    The dict is read from conf.py's source (it is a literal), since importing conf.py would
    run its build steps.
    """
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "sphinx_gallery_conf"
            for target in node.targets
        ):
            defaults = {**gen_gallery.DEFAULT_GALLERY_CONF, "rst_link_targets": {},
                        "src_dir": str(DOCS)}
            return {**defaults, **ast.literal_eval(node.value)}
    raise AssertionError("docs/conf.py has no sphinx_gallery_conf = {...}")


def gallery_notebook(page: Path, folder: Path) -> Any:
    """Write the notebook Sphinx-Gallery makes of ``page`` into ``folder``; read it back.

    The blocks are cleaned as ``sphinx_gallery.gen_rst`` cleans them before it writes the
    notebook: ignore blocks out, then (as conf.py asks) the ``# sphinx_gallery_...`` comments.
    """
    conf = gallery_conf()
    _, blocks = py_source_parser.split_code_and_text_blocks(str(page))
    cleaned = []
    for block in blocks:
        content = py_source_parser.remove_ignore_blocks(block.content)
        if conf["remove_config_comments"]:
            content = py_source_parser.remove_config_comments(content)
        cleaned.append(py_source_parser.Block(block.type, content, block.lineno))
    if cleaned[-1].content.isspace():
        cleaned = cleaned[:-1]
    path = folder / page.with_suffix(".ipynb").name
    sg_notebook.save_notebook(sg_notebook.jupyter_notebook(cleaned, conf, folder), path)
    return nbformat.read(path, as_version=4)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, real_data: Any):
    """A kernel spec for this interpreter, started as the docs build runs the gallery.

    The quick budget, the real data where conftest.py finds it, a fresh folder of runs (runs
    are keyed by their settings, not by the code that trained them: never reuse old ones) and
    one CPU thread; otherwise as test_notebooks.py: no user configuration, no MPLBACKEND.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fmclassify gallery tests", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        mp.delenv("MPLBACKEND", raising=False)  # as a fresh kernel: ipykernel picks inline
        # the fmclassify these tests imported (a worktree's src/ under PYTHONPATH=src, which
        # the kernel's working folder would not find), not another installed copy
        package_root = Path(__import__("fmclassify").__file__).resolve().parents[1]
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [str(package_root), *filter(None, [os.environ.get("PYTHONPATH")])]))
        mp.setenv("FMCLASSIFY_DOCS_BUDGET", "quick")
        mp.setenv("FMCLASSIFY_GALLERY_RUNS", str(root / "runs"))
        mp.setenv("FMCLASSIFY_DATA", str(REAL_DATA))
        # One intra-op thread: on a shared CPU, torch's thread pool keeps waiting for threads
        # that are not scheduled, and the pages run several times slower. No check here reads
        # a number the thread count could change.
        mp.setenv("OMP_NUM_THREADS", "1")
        yield KERNEL


@dataclass
class Executed:
    """A page's notebook after the run: its cells, what the probe found, and how long it took."""

    page: Path
    cells: list[Any]  # the page's cells, without the probe
    results: dict[int, str]  # execution count -> "module.Class" of the value the cell showed
    figures: dict[str, int | None]  # global name -> execution count of the cell that showed it
    seconds: float

    def code_cells(self) -> list[Any]:
        return [cell for cell in self.cells if cell.cell_type == "code"]

    def shown(self, count: int) -> dict[str, Any]:
        """The data of the ``execute_result`` of the cell with that execution count."""
        cell = next(c for c in self.code_cells() if c.execution_count == count)
        found = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert len(found) == 1, f"{self.page.name}: cell {count} showed {cell.outputs}"
        return dict(found[0].data)


@pytest.fixture(scope="module", params=PAGES, ids=lambda page: page.stem)
def executed(request: pytest.FixtureRequest, kernel: str,
             tmp_path_factory: pytest.TempPathFactory) -> Executed:
    page = request.param
    folder = tmp_path_factory.mktemp(page.stem)
    nb = gallery_notebook(page, folder)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=CELL_TIMEOUT,
                                     startup_timeout=60,
                                     resources={"metadata": {"path": str(folder)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    probe = json.loads("".join(o.get("text", "") for o in nb.cells[-1].outputs))
    results = {int(count): ".".join(kind) for count, kind in probe["results"].items()}
    return Executed(page, nb.cells[:-1], results, probe["figures"], seconds)


def test_every_inside_page_is_in_the_gallery_order():
    sys.path.insert(0, str(DOCS))
    try:
        from gallery_support import EXAMPLE_ORDER
    finally:
        sys.path.remove(str(DOCS))
    assert PAGES, "no docs/examples/plot_inside_*.py pages"
    missing = [page.name for page in PAGES if page.name not in EXAMPLE_ORDER]
    assert not missing, f"add {missing} to EXAMPLE_ORDER in docs/gallery_support.py"


@pytest.mark.integration
def test_nothing_warns_or_writes_to_stderr(executed: Executed):
    for cell in executed.code_cells():
        first = cell.source.splitlines()[0] if cell.source else ""
        for out in cell.outputs:
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{executed.page.name}: cell {first!r} wrote to stderr: {out.text!r}")
            text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
            assert "Warning" not in text, f"{executed.page.name}: cell {first!r}: {text!r}"


@pytest.mark.integration
def test_every_figure_shows_as_a_picture(executed: Executed):
    unshown = sorted(name for name, count in executed.figures.items() if count is None)
    assert not unshown, (f"{executed.page.name}: end a cell with each of {unshown}, or the "
                         "notebook does not show what the gallery shows")
    for name, count in executed.figures.items():
        data = executed.shown(count)
        assert "image/png" in data, f"{executed.page.name}: {name} showed {sorted(data)}"


@pytest.mark.integration
def test_fmclassify_objects_show_as_tables(executed: Executed):
    figures = set(executed.figures.values())
    tables = set()
    for count, kind in executed.results.items():
        if not kind.startswith("fmclassify.") or count in figures:
            continue
        data = executed.shown(count)
        assert "text/html" in data and "<table" in data["text/html"], (
            f"{executed.page.name}: a {kind} showed {sorted(data)}, not an HTML table")
        tables.add(kind.rsplit(".", 1)[-1])
    expected = TABLES.get(executed.page.name, set())
    assert expected <= tables, f"{executed.page.name} shows no {sorted(expected - tables)}"


@pytest.mark.integration
def test_each_notebook_runs_within_its_budget(executed: Executed):
    """A generous bound: the pages aim at well under a minute each on the quick budget."""
    assert executed.seconds < 4 * 60, (
        f"{executed.page.name} took {executed.seconds:.0f} s; shrink its quick budget")


# -- the question pages: templates whose notebooks show what the pages show --------------------

Q_PAGES = sorted(EXAMPLES.glob("plot_q1_*.py"))
# Seconds. A question page's first cell trains a question's runs on the quick budget (the
# CNN's three seeds take minutes on a busy two-core machine).
Q_CELL_TIMEOUT = 1200

#: The least each page shows: (pictures, HTML tables).
Q_SHOWS = {
    "plot_q1_1_learning_rates.py": (6, 1),
    "plot_q1_2_convergence.py": (6, 2),
    "plot_q1_3_learning_rate_discussion.py": (1, 1),
    "plot_q1_4_depth_and_width.py": (2, 1),
    "plot_q1_5_counting_parameters.py": (1, 3),
    "plot_q1_6_structure.py": (1, 1),
    "plot_q1_7_gradients.py": (2, 3),
}

# Run before the page's cells: per cell, what the web page shows for the same block. Its
# post_execute hook is registered before the inline backend's (which registers when pyplot is
# first imported), so it sees the cell's pyplot figures before the inline backend closes them.
COUNTER = """\
import sys as _sys
_sys.path.insert(0, {docs!r})
import gallery_support as _gallery
_IPYTHON = ("In", "Out", "exit", "quit", "get_ipython")
_page, _figures = {{}}, [0]

def _page_figures():
    names = {{k: v for k, v in get_ipython().user_ns.items()
             if not k.startswith("_") and k not in _IPYTHON}}
    pyplot = _sys.modules.get("matplotlib.pyplot")
    _figures[0] = len(_gallery.figures_to_show(names)) + (len(pyplot.get_fignums()) if pyplot
                                                          else 0)

def _page_table(result):
    value = result.result
    html = getattr(value, "_repr_html_", None)
    try:
        table = callable(html) and isinstance(html(), str)
    except Exception:
        table = False
    _page[result.execution_count] = {{"figures": _figures[0], "tables": int(table)}}
    _figures[0] = 0

get_ipython().events.register("post_execute", _page_figures)
get_ipython().events.register("post_run_cell", _page_table)
"""

REPORT = """\
import json as _json
print(_json.dumps(_page))
"""

ROLE = re.compile(r":(?:func|class|meth|mod|ref|doc|data|attr|obj|term|math):`")
MARKDOWN_TABLE = re.compile(r"^\|[-:| ]+\|$", flags=re.MULTILINE)


@dataclass
class QExecuted:
    """A question page's notebook after the run, and what the web page shows per cell."""

    page: Path
    cells: list[Any]  # the page's own cells
    page_shows: dict[int, dict[str, int]]  # execution count -> {"figures": n, "tables": n}
    seconds: float

    def code_cells(self) -> list[Any]:
        return [cell for cell in self.cells if cell.cell_type == "code"]


def shown(cell: Any, mime: str) -> int:
    """How many of a cell's outputs carry ``mime``."""
    return sum(mime in out.get("data", {}) for out in cell.outputs)


@pytest.fixture(scope="module")
def q_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one folder all question notebooks run in, as a student's would."""
    return tmp_path_factory.mktemp("questions")


@pytest.fixture(scope="module", params=Q_PAGES, ids=lambda page: page.stem)
def q_executed(request: pytest.FixtureRequest, kernel: str, q_folder: Path) -> QExecuted:
    page = request.param
    nb = gallery_notebook(page, q_folder)
    nb.cells.insert(0, nbformat.v4.new_code_cell(COUNTER.format(docs=str(DOCS))))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=Q_CELL_TIMEOUT,
                                     startup_timeout=60,
                                     resources={"metadata": {"path": str(q_folder)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    page_shows = json.loads("".join(o.get("text", "") for o in nb.cells[-1].outputs))
    return QExecuted(page, nb.cells[1:-1], {int(k): v for k, v in page_shows.items()}, seconds)


def test_every_question_page_is_in_the_gallery_order():
    assert [page.name for page in Q_PAGES] == list(Q_SHOWS)
    sys.path.insert(0, str(DOCS))
    try:
        from gallery_support import EXAMPLE_ORDER
    finally:
        sys.path.remove(str(DOCS))
    assert list(EXAMPLE_ORDER[:len(Q_PAGES)]) == list(Q_SHOWS)


@pytest.mark.parametrize("page", Q_PAGES, ids=lambda page: page.stem)
def test_a_question_page_opens_with_a_students_answer(page: Path, tmp_path: Path):
    """The first code cell of the notebook: public names only, the budget in one visible
    line, and nothing of the docs build (its run folder, a temporary folder)."""
    nb = gallery_notebook(page, tmp_path)
    first = next(cell for cell in nb.cells if cell.cell_type == "code").source
    tree = ast.parse(first)
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"os", "math", "fmclassify", "fmclassify.report"}, (page.name, modules)
    private = [node.attr for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_")]
    assert not private, f"{page.name} opens with private names {private}"
    for internal in ("GALLERY_RUNS", "tempfile", "sphinx_gallery"):
        assert internal not in first, f"{page.name}'s first cell shows {internal}"
    assert len(first.splitlines()) <= 20, f"{page.name}'s first cell is not a few lines"
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    if "BUDGET" in first:
        assert 'os.environ.get("FMCLASSIFY_DOCS_BUDGET", "quick")' in first
        assert "FMCLASSIFY_DOCS_BUDGET=full" in text, f"{page.name} never says how to go full"


@pytest.mark.parametrize("page", Q_PAGES, ids=lambda page: page.stem)
def test_question_notebooks_have_no_rst_roles(page: Path, tmp_path: Path):
    nb = gallery_notebook(page, tmp_path)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = ROLE.findall(cell.source)
            assert not found, f"{page.name}: raw rST {found} in {cell.source[:80]!r}"


@pytest.mark.integration
def test_a_question_notebook_shows_what_its_page_shows(q_executed: QExecuted):
    """Per cell: as many pictures and HTML tables as the web page shows for its block."""
    figures = tables = 0
    for cell in q_executed.code_cells():
        page = q_executed.page_shows[cell.execution_count]
        first = cell.source.splitlines()[0] if cell.source else ""
        got = shown(cell, "image/png"), shown(cell, "text/html")
        assert got == (page["figures"], page["tables"]), (
            f"{q_executed.page.name}, cell {first!r}: the notebook shows {got[0]} pictures and "
            f"{got[1]} HTML tables, the page {page['figures']} and {page['tables']}")
        figures, tables = figures + got[0], tables + got[1]
    least = Q_SHOWS[q_executed.page.name]
    assert (figures, tables) >= least and figures >= least[0] and tables >= least[1], (
        f"{q_executed.page.name} shows {figures} pictures and {tables} HTML tables; "
        f"at least {least} expected")


@pytest.mark.integration
def test_a_question_notebook_prints_no_table_and_no_warning(q_executed: QExecuted):
    for cell in q_executed.code_cells():
        first = cell.source.splitlines()[0] if cell.source else ""
        for out in cell.outputs:
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{q_executed.page.name}: cell {first!r} wrote to stderr: {out.text!r}")
            text = out.get("text", "")
            assert "Warning" not in text, f"{q_executed.page.name}: cell {first!r}: {text!r}"
            assert not MARKDOWN_TABLE.search(text), (
                f"{q_executed.page.name}: cell {first!r} prints a table as text; end the cell "
                "with an object that shows as an HTML table")


@pytest.mark.integration
def test_a_question_notebook_runs_within_its_budget(q_executed: QExecuted):
    """Generous: three seeds of the quick budget, on one CPU thread of a busy machine."""
    assert q_executed.seconds < 15 * 60, (
        f"{q_executed.page.name} took {q_executed.seconds:.0f} s")
