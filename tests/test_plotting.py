"""Figures: the plotted lines carry the run's numbers; nothing goes through pyplot."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from fmclassify.exceptions import ConfigError
from fmclassify.history import ConvergenceVerdict, EpochRecord, History
from fmclassify.plotting import plot_comparison, plot_gradients, plot_history


def make_history(
    model: str = "base",
    lr: float = 0.1,
    accs: tuple[float, ...] = (0.7, 0.8, 0.85),
    status: str = "completed",
) -> History:
    h = History(metadata={"model": model, "lr": lr}, status=status)  # type: ignore[arg-type]
    h.append(EpochRecord(0, None, 2.30, 0.10, 0.0))
    for epoch, acc in enumerate(accs, start=1):
        h.append(EpochRecord(epoch, 1.0 / epoch, 1.2 / epoch, acc, 2.0))
    return h


def ydata(fig: Figure, axes: int, line: int) -> list[float]:
    return [float(v) for v in fig.axes[axes].get_lines()[line].get_ydata()]


def xdata(fig: Figure, axes: int, line: int) -> list[float]:
    return [float(v) for v in fig.axes[axes].get_lines()[line].get_xdata()]


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plotting function used pyplot's global figures"


def test_plot_history_draws_losses_and_accuracy() -> None:
    h = make_history()
    fig = plot_history(h)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert xdata(fig, 0, 0) == [1, 2, 3]  # train loss: trained epochs only
    assert ydata(fig, 0, 0) == pytest.approx([1.0, 0.5, 1 / 3])
    assert xdata(fig, 0, 1) == [0, 1, 2, 3]  # test loss: from the untrained model on
    assert ydata(fig, 0, 1) == pytest.approx([2.3, 1.2, 0.6, 0.4])
    assert xdata(fig, 1, 0) == [0, 1, 2, 3]
    assert ydata(fig, 1, 0) == pytest.approx([10.0, 70.0, 80.0, 85.0])  # percent
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["train", "test"]
    assert fig.get_suptitle() == "base, lr=0.1"


def test_plot_history_title_override_and_missing_metadata() -> None:
    h = make_history()
    assert plot_history(h, title="my run").get_suptitle() == "my run"
    h.metadata.clear()
    assert plot_history(h).get_suptitle() == "training run"
    h.metadata["lr"] = 0.001
    assert plot_history(h).get_suptitle() == "lr=0.001"


def test_plot_history_marks_divergence() -> None:
    h = make_history(lr=10.0, accs=(0.1, 0.1), status="diverged")
    h.diverged_epoch = 3
    fig = plot_history(h)
    for ax in fig.axes:
        marks = [ln for ln in ax.get_lines() if ln.get_label() == "diverged at epoch 3"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [3, 3]


def test_plot_history_marks_convergence() -> None:
    h = make_history(status="converged")
    h.convergence = ConvergenceVerdict(epoch=2, epochs_watched=2)
    fig = plot_history(h)
    marks = [ln for ln in fig.axes[1].get_lines() if ln.get_label() == "converged at epoch 2"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [2, 2]


def test_history_plot_delegates_and_renders() -> None:
    h = make_history()
    fig = h.plot(title="x")
    assert ydata(fig, 1, 0) == pytest.approx([10.0, 70.0, 80.0, 85.0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # renders without pyplot or a display
    assert buf.getvalue().startswith(b"\x89PNG")


def test_plot_history_of_an_empty_run() -> None:
    fig = plot_history(History())
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1]
    assert ydata(fig, 0, 1) == []


def test_plot_comparison_overlays_runs_labelled_by_lr() -> None:
    runs = [make_history(lr=0.1, accs=(0.8, 0.85)), make_history(lr=0.01, accs=(0.6, 0.7))]
    fig = plot_comparison(runs)
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.get_lines()] == ["lr=0.1", "lr=0.01"]
    assert ydata(fig, 0, 0) == pytest.approx([10.0, 80.0, 85.0])
    assert ydata(fig, 0, 1) == pytest.approx([10.0, 60.0, 70.0])
    assert ax.get_ylabel() == "test accuracy (%)"


def test_plot_comparison_of_train_loss_starts_at_epoch_one() -> None:
    fig = plot_comparison([make_history()], metric="train_loss")
    assert xdata(fig, 0, 0) == [1, 2, 3]
    assert ydata(fig, 0, 0) == pytest.approx([1.0, 0.5, 1 / 3])


def test_plot_comparison_labels_by_model_mapping_or_argument() -> None:
    runs = [make_history(model="base"), make_history(model="wider")]
    labels = [ln.get_label() for ln in plot_comparison(runs).axes[0].get_lines()]
    assert labels == ["base", "wider"]
    mixed = [make_history(model="base", lr=0.1), make_history(model="wider", lr=0.01)]
    labels = [ln.get_label() for ln in plot_comparison(mixed).axes[0].get_lines()]
    assert labels == ["base, lr=0.1", "wider, lr=0.01"]
    same = [make_history(), make_history()]
    labels = [ln.get_label() for ln in plot_comparison(same).axes[0].get_lines()]
    assert labels == ["base, lr=0.1 #1", "base, lr=0.1 #2"]
    fig = plot_comparison({"a": runs[0], "b": runs[1]}, metric="test_loss", title="T")
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["a", "b"]
    assert fig.axes[0].get_title() == "T"
    fig = plot_comparison(runs, labels=["one", "two"])
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["one", "two"]


def test_plot_comparison_says_which_run_diverged() -> None:
    bad = make_history(lr=10.0, accs=(0.1,), status="diverged")
    bad.diverged_epoch = 2
    fig = plot_comparison([make_history(), bad])
    assert fig.axes[0].get_lines()[1].get_label() == "lr=10 (diverged at epoch 2)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"histories": []}, r"plot_comparison needs at least one History; got none"),
        (
            {"metric": "accuracy"},
            r"unknown metric 'accuracy'; available: test_accuracy, test_loss, train_loss",
        ),
        ({"labels": ["only one"]}, r"got 1 labels for 2 histories; pass one label per run"),
    ],
)
def test_plot_comparison_errors(kwargs: dict, message: str) -> None:
    args = {"histories": [make_history(), make_history(lr=0.01)], **kwargs}
    with pytest.raises(ConfigError, match=message):
        plot_comparison(**args)


def test_plot_gradients_draws_values_per_step() -> None:
    values = [3e-5, -1e-5, 2e-6, float("nan"), 1e-6]
    fig = plot_gradients(values)
    assert xdata(fig, 0, 0) == [1, 2, 3, 4, 5]
    got = ydata(fig, 0, 0)
    assert got[:3] == pytest.approx(values[:3]) and got[4] == pytest.approx(values[4])
    zero = fig.axes[0].get_lines()[1]  # the signed mean gets a zero line
    assert list(zero.get_ydata()) == [0, 0]
    assert fig.axes[0].get_ylabel() == "mean gradient"
    assert fig.get_suptitle() == "mean gradient over the first 5 steps"


def test_plot_gradients_per_layer_and_statistic() -> None:
    per_layer = {"0.weight": [1.0, 2.0], "0.bias": [0.5, 0.25]}
    fig = plot_gradients([3.0, 4.0], statistic="l2_norm", per_layer=per_layer, title="t")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 1  # no zero line for a norm
    assert [ln.get_label() for ln in fig.axes[1].get_lines()] == ["0.weight", "0.bias"]
    assert ydata(fig, 1, 1) == [0.5, 0.25]
    assert fig.axes[0].get_ylabel() == "gradient L2 norm"
    assert fig.get_suptitle() == "t"


def test_plot_gradients_rejects_an_unknown_statistic() -> None:
    with pytest.raises(ConfigError, match="unknown statistic 'max'; available: mean, mean_abs"):
        plot_gradients([1.0], statistic="max")


def test_gradient_plot_leaves_gaps_for_values_json_wrote_as_none():
    """A diverging lr's trace, read back from a run's JSON, holds None for NaN/inf steps."""
    import math

    from fmclassify.plotting import plot_gradients

    fig = plot_gradients([0.1, None, 0.3, float("inf")], statistic="mean_abs")
    ydata = list(fig.axes[0].get_lines()[0].get_ydata())
    assert ydata[0] == 0.1 and ydata[2] == 0.3
    assert math.isnan(ydata[1]) and math.isinf(ydata[3])


# -- every figure shows as a picture in a notebook, and none is kept alive by pyplot ----------

def test_new_figure_is_a_plain_figure_that_renders_a_png() -> None:
    from fmclassify.plotting import new_figure

    fig = new_figure(figsize=(3.0, 2.0))
    assert isinstance(fig, Figure) and fig.get_layout_engine() is not None  # constrained
    assert fig._repr_png_() is None  # as IPython: no blank area for a figure without axes
    fig.subplots().plot([0, 1], [1, 0])
    assert fig._repr_png_().startswith(b"\x89PNG")
    assert new_figure(layout=None).get_layout_engine() is None


def sample_figures() -> dict[str, Figure]:
    """One figure per public plot function of fmclassify.plotting (add one for a new plot)."""
    from fmclassify import plotting

    return {
        "plot_history": plotting.plot_history(make_history()),
        "plot_comparison": plotting.plot_comparison([make_history(), make_history(lr=0.01)]),
        "plot_gradients": plotting.plot_gradients([1.0, 2.0], per_layer={"w": [1.0, 0.5]}),
        "plot_confusion_matrix": plotting.plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"]),
        "plot_top_losses": plotting.plot_top_losses([[[0.0, 1.0], [1.0, 0.0]]], ["t"]),
        "plot_lr_find": plotting.plot_lr_find([1e-3, 1e-2, 1e-1], [2.3, 2.0, 2.5],
                                              [2.3, 2.1, 2.2], {"steepest": 1e-2}),
        "plot_gradient_flow": plotting.plot_gradient_flow({"w": [0.1, 0.2], "b": [0.01, 0.02]}),
        "plot_gradient_heatmap": plotting.plot_gradient_heatmap({"w": [1e-3, 2e-3]}),
        "plot_activation_stats": plotting.plot_activation_stats(
            {"relu": [{"epoch": 1, "dead_fraction": 0.1, "mean": 0.5, "std": 0.2}]}),
    }


def test_every_plot_shows_as_a_png_through_ipython_display() -> None:
    from IPython.core.formatters import DisplayFormatter

    from fmclassify import plotting

    figures = sample_figures()
    public = {n for n in plotting.__all__ if n.startswith("plot_")}
    assert public <= set(figures), f"add a sample call for {sorted(public - set(figures))}"
    formatter = DisplayFormatter()  # what a notebook kernel uses, with nothing registered
    for name, fig in figures.items():
        data, _ = formatter.format(fig)
        assert "image/png" in data, f"{name} would show as text in a fresh notebook kernel"


def test_figures_are_freed_when_unreferenced() -> None:
    import gc
    import weakref

    ref = weakref.ref(plot_history(make_history()))
    gc.collect()
    assert ref() is None  # nothing (pyplot's figure manager) keeps a figure alive


def test_plot_history_draws_the_validation_split() -> None:
    h = make_history()
    h.records = [h.records[0]] + [
        EpochRecord(r.epoch, r.train_loss, r.test_loss, r.test_accuracy, r.seconds,
                    val_loss=0.9 / r.epoch, val_accuracy=r.test_accuracy - 0.05)
        for r in h.trained]
    fig = plot_history(h)
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["train", "test", "val"]
    assert xdata(fig, 0, 2) == [1, 2, 3] and ydata(fig, 0, 2) == pytest.approx([0.9, 0.45, 0.3])
    assert ydata(fig, 1, 1) == pytest.approx([65.0, 75.0, 80.0])
    assert fig.axes[1].get_ylabel() == "accuracy (%)"


def test_a_hundred_figures_made_in_a_loop_do_not_stay_in_memory() -> None:
    """Agg and a script: nothing shown, nothing held (not by pyplot, not by the library)."""
    import gc
    import weakref

    assert matplotlib.get_backend().lower() == "agg"
    before = plt.get_fignums()
    refs = [weakref.ref(plot_history(make_history())) for _ in range(100)]
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0
    assert plt.get_fignums() == before


def test_figures_outside_a_kernel_are_never_held_for_a_cell() -> None:
    from fmclassify import _notebook

    plot_history(make_history())
    assert _notebook._CELL_END.pending == [] and _notebook._CELL_END.shell is None


def test_figure_grid_pastes_the_figures_two_a_row_at_their_own_size() -> None:
    from matplotlib.image import imread

    from fmclassify.plotting import FigureGrid, new_figure, unshown

    with unshown():
        grid = FigureGrid(a=new_figure(figsize=(2.0, 1.0), layout=None),
                          b=new_figure(figsize=(3.0, 1.0), layout=None),
                          c=new_figure(figsize=(2.0, 2.0), layout=None),
                          empty=new_figure(figsize=(9.0, 9.0)))
    assert grid.to_png() is None  # as a Figure: no picture of figures without axes
    for name in "abc":
        grid[name].add_axes((0.0, 0.0, 1.0, 1.0)).set_axis_off()  # fill the figure: no crop
    picture = imread(io.BytesIO(grid._repr_png_()), format="png")
    pad = round(2 * 0.1 * 72)  # bbox_inches="tight" pads 0.1 inch, as the inline backend
    assert picture.shape[:2] == (2 * (2 * 72 + pad), 2 * (3 * 72 + pad))  # 2 rows, 2 columns
    assert grid["a"].get_size_inches().tolist() == [2.0, 1.0]  # figures are left as they were
    assert list(grid) == ["a", "b", "c", "empty"] and isinstance(grid, dict)


class FakeKernelShell:
    """As much of ipykernel's shell as the cell-end hook uses: a kernel and IPython's events."""

    kernel = object()

    def __init__(self) -> None:
        self.hooks: dict[str, list] = {}

    @property
    def events(self):
        shell = self

        class Events:
            def register(self, name, hook):
                shell.hooks.setdefault(name, []).append(hook)
        return Events()

    def run_cell(self, make, *, value=None):
        for hook in self.hooks.get("pre_run_cell", []):
            hook(None)
        made = make()
        result = type("ExecutionResult", (), {"result": value(made) if value else None})()
        for hook in self.hooks.get("post_run_cell", []):
            hook(result)
        return made


@pytest.fixture
def fake_kernel(monkeypatch):
    """A process that looks like a kernel; IPython's display() replaced by a recorder."""
    import sys
    import types

    from fmclassify import _figures, _notebook

    shell = FakeKernelShell()
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell
    shown: list = []
    display_module = types.ModuleType("IPython.display")
    display_module.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(_notebook, "_CELL_END", _notebook._CellEnd())
    monkeypatch.setattr(_figures, "_backend_shows", lambda: True)  # conftest chose Agg
    # the first figure hooks the shell from inside a cell; later cells run the hooks
    shell.run_cell(lambda: plot_history(make_history()))
    shown.clear()
    return shell, shown


def test_in_a_kernel_each_figure_shows_once_at_the_end_of_its_cell(fake_kernel):
    from fmclassify.plotting import unshown

    shell, shown = fake_kernel
    a, b = shell.run_cell(lambda: (plot_history(make_history()), plot_history(make_history())))
    assert shown == [a, b]
    shown.clear()
    shell.run_cell(lambda: plot_history(make_history()), value=lambda made: made)
    assert shown == []  # the cell's own value: IPython's display hook showed it
    shell.run_cell(lambda: plot_history(make_history())._repr_mimebundle_())
    assert shown == []  # displayed during the cell (display(fig) asks _repr_mimebundle_)

    def quietly():
        with unshown():
            return plot_history(make_history())

    shell.run_cell(quietly)
    assert shown == []
    outside = plot_history(make_history())  # made between cells (a widget's callback)
    shell.run_cell(lambda: None)
    assert shown == [] and outside is not None


def test_a_kernel_on_a_non_interactive_backend_shows_nothing(monkeypatch):
    from fmclassify import _figures

    assert matplotlib.rcParams._get("backend").lower() == "agg"  # conftest.py: as %matplotlib agg
    assert not _figures._backend_shows()
    inline = "module://matplotlib_inline.backend_inline"  # what ipykernel puts in MPLBACKEND
    monkeypatch.setattr(matplotlib.rcParams, "_get", lambda key: inline)
    assert _figures._backend_shows()
