"""What a user sees in a fresh Jupyter kernel: figures as pictures, objects as tables, no warnings.

Each test builds a notebook with nbformat and runs it in a real ipykernel (nbclient), on the
small synthetic data of ``helpers.make_dataset``, on the CPU. The kernel is this interpreter
(``sys.executable``), through a kernel spec written to a temporary folder that ``JUPYTER_PATH``
puts first, under a name no other spec has; IPython's profile folder is a temporary one too,
so no user configuration or extension changes what the kernel shows.
"""

from __future__ import annotations

import json
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
