"""What a user sees in a fresh Jupyter kernel: figures as pictures, objects as tables, no warnings.

Each test builds a notebook with nbformat and runs it in a real ipykernel (nbclient), on the
small synthetic data of ``helpers.make_dataset``, on the CPU. The kernel is this interpreter
(``sys.executable``), through a kernel spec written to a temporary folder that ``JUPYTER_PATH``
puts first, under a name no other spec has; IPython's profile folder is a temporary one too,
so no user configuration or extension changes what the kernel shows. ``PYTHONPATH`` starts
with the folder of the fmclassify these tests imported, so the kernel runs the same code (a
worktree's ``src`` under ``PYTHONPATH=src``, which the kernel's working folder would not find).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason='notebook tests need the test extra: pip install "fmclassify[test]"')
nbclient = pytest.importorskip(
    "nbclient", reason='notebook tests need the test extra: pip install "fmclassify[test]"')
pytest.importorskip(
    "ipykernel", reason='notebook tests need the test extra: pip install "fmclassify[test]"')

TESTS = Path(__file__).parent
# The folder holding the fmclassify these tests import (this tree's src/ under PYTHONPATH=src,
# else the installed copy): the kernel imports the same one, whatever its working directory.
PACKAGE_ROOT = Path(__import__("fmclassify").__file__).resolve().parents[1]
KERNEL = "fmclassify-test-python"
CELL_TIMEOUT = 60  # seconds; the first cell imports torch on a possibly busy machine


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory):
    """The name of a kernel spec that starts this interpreter's ipykernel, in a clean setting."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fmclassify tests", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        mp.delenv("MPLBACKEND", raising=False)  # as a fresh kernel: ipykernel picks inline
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        yield KERNEL


class RecordingClient(nbclient.NotebookClient):
    """A NotebookClient that also keeps (cell index, message type, display id) of each message.

    nbclient folds ``update_display_data`` into the output it updates, so the finished
    notebook alone cannot show that a display was updated in place.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[tuple[int, str, str | None]] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        transient = msg["content"].get("transient") or {}
        self.messages.append((cell_index, msg["msg_type"], transient.get("display_id")))
        return super().process_message(msg, cell, cell_index)


def run(cells: list[str], kernel: str, cwd: Path) -> tuple[Any, RecordingClient]:
    """Execute the cells in a new kernel (shut down afterwards); the notebook and the client."""
    setup = f"import sys\nsys.path.insert(0, {str(TESTS)!r})  # tests/helpers.py"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in [setup, *cells]])
    client = RecordingClient(nb, kernel_name=kernel, timeout=CELL_TIMEOUT,
                             startup_timeout=CELL_TIMEOUT,
                             resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb, client


def outputs(nb: Any, index: int) -> list[Any]:
    return nb.cells[index + 1].outputs  # index counts the cells passed to run(), not setup


def result(nb: Any, index: int) -> dict[str, Any]:
    """The data of the cell's ``execute_result``: what its last line showed."""
    found = [o for o in outputs(nb, index) if o.output_type == "execute_result"]
    assert len(found) == 1, f"cell {index} showed no value: {outputs(nb, index)}"
    return dict(found[0].data)


def assert_quiet(nb: Any) -> None:
    """No cell wrote to stderr or printed anything that reads as a warning."""
    for i, cell in enumerate(nb.cells):
        for out in cell.outputs:
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"cell {i} ({cell.source.splitlines()[0]!r}) wrote to stderr: {out.text!r}")
            text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
            assert "Warning" not in text and "IProgress" not in text, f"cell {i}: {text!r}"


FIT = """\
import fmclassify as fmc
from helpers import make_dataset
train, test = make_dataset(128, seed=0), make_dataset(64, seed=1, split="test")
model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
tracer = fmc.GradientTracer(steps=5)
history = fmc.Trainer(model, lr=0.1, epochs=2, device="cpu", callbacks=[tracer]).fit(train, test)
"""

LIVE = """\
from fmclassify.loggers import LivePlot
live = LivePlot(every_seconds=0)
h = fmc.History(metadata=history.metadata)
h.append(history.records[0])
run = fmc.RunContext(model=model, history=h, epochs=2)
live.on_fit_start(run)
for record in history.records[1:]:
    h.append(record)
    live.on_epoch_end(run, record)
live.on_fit_end(run, h)
"""

CELLS = {
    "import": "import fmclassify",
    "fit": FIT,  # with the default progress bar: the ipywidgets bar, here
    "bar": "from fmclassify._progress import progress_bar\n"
           "bar = progress_bar(range(2), leave=False)\nlist(bar)\nprint(type(bar).__module__)",
    "history.plot": "history.plot()",
    "tracer.plot": "tracer.plot()",
    "comparison": "from fmclassify import plotting\nplotting.plot_comparison([history, history])",
    "History": "history",
    "ParameterReport": "fmc.count_parameters(model)",
    "ExperimentResult": "from fmclassify.runs import RunResult, RunSpec\n"
                        "spec = RunSpec(model='base', lr=0.1, epochs=2)\n"
                        "fmc.ExperimentResult(kind='lr_sweep', runs=[RunResult(spec, history)])",
    "LivePlot": LIVE,
    "pyplot": "print('matplotlib.pyplot' in sys.modules)",
}
FIGURES = ("history.plot", "tracer.plot", "comparison")
TABLES = ("History", "ParameterReport", "ExperimentResult")


@pytest.fixture(scope="module")
def executed(kernel: str, tmp_path_factory: pytest.TempPathFactory):
    nb, client = run(list(CELLS.values()), kernel, tmp_path_factory.mktemp("cwd"))
    return nb, client, {name: i for i, name in enumerate(CELLS)}


def test_nothing_warns_or_writes_to_stderr(executed):
    nb, _, _ = executed
    assert_quiet(nb)


@pytest.mark.parametrize("name", FIGURES)
def test_figures_show_as_pictures(executed, name):
    nb, _, at = executed
    data = result(nb, at[name])
    assert "image/png" in data, f"{name} showed {data.get('text/plain')!r}, not a picture"
    assert len(pictures(nb, at[name])) == 1  # the cell's value is not shown again at its end


@pytest.mark.parametrize("name", TABLES)
def test_objects_show_as_html_tables(executed, name):
    nb, _, at = executed
    data = result(nb, at[name])
    assert "text/html" in data and "<table>" in data["text/html"], f"{name}: {sorted(data)}"


def test_history_table_reads_the_run(executed):
    nb, _, at = executed
    page = result(nb, at["History"])["text/html"]
    assert "History of model=base, lr=0.1: completed, 2 epochs trained" in page
    assert page.count("<tr>") == 1 + 3  # header, epochs 0, 1, 2


def test_progress_bar_is_the_widget_with_ipywidgets(executed):
    nb, _, at = executed
    printed = "".join(o.get("text", "") for o in outputs(nb, at["bar"]))
    assert printed.strip() == "tqdm.notebook"
    widget = "application/vnd.jupyter.widget-view+json"
    assert any(widget in o.get("data", {}) for o in outputs(nb, at["fit"]))  # the Trainer's


def test_liveplot_updates_one_display_in_place(executed):
    nb, client, at = executed
    cell = at["LivePlot"] + 1  # the client counts the setup cell too
    shown = [o for o in outputs(nb, at["LivePlot"]) if o.output_type == "display_data"]
    assert len(shown) == 1 and "image/png" in shown[0].data
    sent = [(kind, did) for i, kind, did in client.messages if i == cell and did]
    assert sent[0][0] == "display_data"
    assert [kind for kind, _ in sent[1:]] == ["update_display_data"] * 3  # 2 epochs, fit end
    assert len({did for _, did in sent}) == 1  # all to the same display


def test_figures_never_import_pyplot(executed):
    nb, _, at = executed
    assert "".join(o.get("text", "") for o in outputs(nb, at["pyplot"])).strip() == "False"


def test_a_kernel_without_ipywidgets_stays_quiet(kernel, tmp_path):
    """Colab and VS Code kernels may lack ipywidgets: no "IProgress not found" warning."""
    cells = [
        "sys.modules['ipywidgets'] = None  # as a kernel without ipywidgets: import fails",
        "import fmclassify",
        "from fmclassify._progress import progress_bar\n"
        "bar = progress_bar(range(2), file=sys.stdout)\nlist(bar)\nprint(type(bar).__module__)",
        "from fmclassify.history import EpochRecord, History\n"
        "h = History()\nh.append(EpochRecord(0, None, 2.3, 0.1, 0.0))\nh.plot()",
    ]
    nb, _ = run(cells, kernel, tmp_path)
    assert_quiet(nb)
    assert "tqdm.std" in "".join(o.get("text", "") for o in outputs(nb, 2))
    assert "image/png" in result(nb, 3)


# -- every library figure a cell makes shows once, at the end of the cell, as pyplot's do -----

SHOWN = {
    "one": "fig = history.plot()",
    "two": "a = history.plot()\nb = tracer.plot()\nlen(history)",
    "sweep": "sweep = fmc.lr_sweep('base', lrs=(0.5, 0.05), epochs=1, data=(train, test),\n"
             "                     batch_size=32)\nfigures = sweep.plot()\nsorted(figures)",
    "sweep last": "sweep.plot()",
    # the README's line: the figure is made, dropped, and not the cell's value
    "interpret": "interp = fmc.interpret(model, test); interp.plot_confusion_matrix(); "
                 "interp.most_confused(5)",
    "confusion png": "import base64\nwith fmc.plotting.unshown():\n"
                     "    again = interp.plot_confusion_matrix()\n"
                     "print(base64.b64encode(again._repr_png_()).decode())",
    "unshown": "with fmc.plotting.unshown():\n    quiet = history.plot()",
    "plt.show": "import matplotlib.pyplot as plt\nfig = history.plot()\nplt.show()",
    "last value": "history.plot()",
    "display": "from IPython.display import display\nfig = history.plot()\ndisplay(fig)",
    "mixed": "own, ax = plt.subplots()\nax.plot([0, 1])\nours = tracer.plot()\nplt.show()",
    "agg": "%matplotlib agg\nfig = history.plot()\nown, ax = plt.subplots()",
}


@pytest.fixture(scope="module")
def shown(kernel: str, tmp_path_factory: pytest.TempPathFactory):
    nb, _ = run([FIT, *SHOWN.values()], kernel, tmp_path_factory.mktemp("cwd"))
    return nb, {name: i + 1 for i, name in enumerate(SHOWN)}


def pictures(nb: Any, index: int) -> list[Any]:
    return [o for o in outputs(nb, index) if "image/png" in o.get("data", {})]


@pytest.mark.parametrize(("name", "count"), [
    ("one", 1), ("two", 2), ("sweep", 1), ("sweep last", 1), ("interpret", 1), ("unshown", 0),
    ("plt.show", 1), ("last value", 1), ("display", 1), ("mixed", 2), ("agg", 0)])
def test_each_figure_a_cell_makes_shows_once(shown, name, count):
    nb, at = shown
    found = pictures(nb, at[name])
    kinds = [sorted(o.get("data", {})) for o in outputs(nb, at[name])]
    assert len(found) == count, f"{name!r} showed {kinds}"


def test_the_readme_interpret_line_shows_the_matrix_and_the_list(shown):
    nb, at = shown
    (picture,) = pictures(nb, at["interpret"])
    printed = "".join(o.get("text", "") for o in outputs(nb, at["confusion png"])).strip()
    assert picture.data["image/png"].strip() == printed  # the confusion matrix itself
    assert result(nb, at["interpret"])["text/plain"].startswith("[")  # most_confused's list


def test_a_sweep_shows_one_grid_and_still_indexes_like_a_dict(shown):
    nb, at = shown
    assert "comparison-test_accuracy" in result(nb, at["sweep"])["text/plain"]
    (grid,) = pictures(nb, at["sweep last"])
    assert grid.output_type == "execute_result"  # the cell's value, not shown a second time
    assert result(nb, at["sweep last"])["text/plain"].startswith("FigureGrid of 5 figures")
    assert_quiet(nb)
