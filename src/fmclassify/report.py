"""The assignment report: every table and figure of Q1.1-Q1.7, measured in one run.

:func:`run_assignment` trains the runs each question needs (through :mod:`fmclassify.experiments`),
then writes into ``out``:

* ``report.md`` and ``report.html`` (self-contained: figures embedded), sections Q1.1 to Q1.7;
* ``figures/*.png``;
* ``runs/*.json``, every run's History (and gradient trace), keyed by its full configuration;
* ``results.json``, every table.

Finished runs are never trained twice and an unfinished one resumes from its last finished
epoch, so after an interrupt the same call continues and yields the same report. Every number
in the text is computed from the runs of this report; the observations for Q1.3 and Q1.6 are
sentences built from those numbers, not canned prose.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fmclassify._io import atomic_write_bytes
from fmclassify._observations import lr_observations, model_observations
from fmclassify._tables import format_cell
from fmclassify.data import ImageDataset, load_dataset
from fmclassify.exceptions import ConfigError
from fmclassify.experiments import (
    ExperimentResult,
    compare_models,
    convergence_study,
    gradient_study,
    lr_sweep,
)
from fmclassify.parameters import count_parameters
from fmclassify.registry import build_model, get_model_spec
from fmclassify.runs import RunResult, RunStore

__all__ = ["BUDGETS", "AssignmentReport", "Budget", "check_assignment", "run_assignment"]


@dataclass(frozen=True)
class Budget:
    """How much training the report spends on each question.

    Parameters
    ----------
    name : str
        ``"quick"`` or ``"full"``.
    train_size : int or None
        Training images used (the first N of the training set); None for all of them.
    epochs : int
        Epochs per run of Q1.1 and Q1.4.
    max_epochs : int
        The convergence budget of Q1.2.
    gradient_steps : int
        Steps traced for Q1.7.
    """

    name: str
    train_size: int | None
    epochs: int
    max_epochs: int
    gradient_steps: int = 100

    def describe(self) -> str:
        """One sentence for the report's header."""
        images = "all training images" if self.train_size is None else (
            f"the first {self.train_size:,} training images")
        return (f"budget '{self.name}': {images}, {self.epochs} epochs per run for Q1.1 and "
                f"Q1.4, convergence runs capped at {self.max_epochs} epochs, "
                f"{self.gradient_steps} traced steps for Q1.7")


#: The two budgets: ``quick`` finishes in minutes on a laptop CPU, ``full`` is the course's.
BUDGETS: dict[str, Budget] = {
    "quick": Budget("quick", train_size=20_000, epochs=3, max_epochs=15),
    "full": Budget("full", train_size=None, epochs=10, max_epochs=600),
}

DEFAULT_LRS = (1.0, 0.1, 0.01, 0.001)
DEFAULT_MODELS = ("base", "deeper", "wider")


@dataclass
class AssignmentReport:
    """What :func:`run_assignment` measured and wrote.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.
    budget : Budget
        The budget used.
    results : dict
        ``"q1_1"``, ``"q1_2"``, ``"q1_4"``, ``"q1_7"``: the :class:`ExperimentResult` of each.
    markdown : str
        The text of ``report.md``.
    """

    out: Path
    budget: Budget
    results: dict[str, ExperimentResult]
    markdown: str

    @property
    def markdown_path(self) -> Path:
        """``OUT/report.md``."""
        return self.out / "report.md"

    @property
    def html_path(self) -> Path:
        """``OUT/report.html``."""
        return self.out / "report.html"


def run_assignment(
    out: str | os.PathLike[str],
    *,
    budget: Literal["quick", "full"] | Budget = "quick",
    seeds: int = 1,
    dataset: str = "fashion-mnist",
    models: Sequence[str] = DEFAULT_MODELS,
    lrs: Sequence[float] = DEFAULT_LRS,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    progress: bool = True,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
) -> AssignmentReport:
    """Run every experiment of the assignment and write the report into ``out``.

    Parameters
    ----------
    out : path-like
        Output folder (created). Runs already finished there are reused.
    budget : {"quick", "full"} or Budget, default "quick"
        ``quick`` trains on a subset for a few epochs; ``full`` uses the course's settings.
    seeds : int, default 1
        Runs per configuration (seeds 0..N-1); tables show mean and standard deviation.
    dataset : str, default "fashion-mnist"
        Any name :func:`~fmclassify.load_dataset` knows.
    models : sequence of str
        Models compared in Q1.4 (and tabled in Q1.5); the first is used for Q1.1, Q1.2, Q1.7.
    lrs : sequence of float
        Learning rates of Q1.1, Q1.2 and Q1.7.
    data : (ImageDataset, ImageDataset), optional
        Use these instead of loading ``dataset``.
    progress : bool, default True
        Show each run's epoch bar.
    device : str, default "auto"
        Training device.
    on_run : callable, optional
        Called after each run (the command line's overall progress bar).
    executor : concurrent.futures.Executor, optional
        Where the runs train (e.g. Dask's ``client.get_executor()``); default: processes on
        this machine, one per core.
    workers : int, optional
        Processes of the default pool; ``1`` trains every run one by one in this process.

    Returns
    -------
    AssignmentReport

    Raises
    ------
    ConfigError
        For an unknown budget, seeds < 1, or empty models or lrs.
    """
    plan = check_assignment(budget, seeds, models, lrs)
    out_dir = _claim_output_folder(Path(out))
    train, test = data if data is not None else load_dataset(dataset)
    if plan.train_size is not None and plan.train_size < len(train):
        train = train.subset(plan.train_size)
    store = RunStore(out_dir / "runs")
    # Every run takes the Trainer's default step, as `fmclassify train` and the gallery do,
    # so a run gives the same numbers wherever it is started.
    common: dict[str, Any] = {"data": (train, test), "store": store, "progress": progress,
                              "device": device, "on_run": on_run, "seeds": tuple(range(seeds)),
                              "executor": executor, "workers": workers}
    base = models[0]
    results = {
        "q1_1": lr_sweep(base, lrs, plan.epochs, **common),
        "q1_2": convergence_study(base, lrs, plan.max_epochs, **common),
        "q1_4": compare_models(models, 0.1, plan.epochs, **common),
        "q1_7": gradient_study(base, lrs, plan.gradient_steps, **common),
    }
    shape = {"num_classes": train.num_classes, "in_channels": train.image_shape[0],
             "image_size": train.image_shape[1]}
    params = {m: count_parameters(build_model(m, **shape)) for m in models}
    doc = _Document()
    _write_sections(doc, out_dir, plan, train, test, results, params)
    markdown = doc.markdown()
    atomic_write_bytes(out_dir / "report.md", markdown.encode())
    atomic_write_bytes(out_dir / "report.html", doc.html(out_dir).encode())
    tables = {k: r.table() for k, r in results.items()}
    atomic_write_bytes(out_dir / "results.json", json.dumps(
        {"budget": asdict(plan), "dataset": train.name, "tables": tables,
         "parameters": {m: p.to_dict() for m, p in params.items()}},
        indent=1, default=str).encode())
    return AssignmentReport(out_dir, plan, results, markdown)


_MARKER = ".fmclassify-report"


def _claim_output_folder(out: Path) -> Path:
    """Refuse a folder that holds someone else's files; mark ours so reruns may reuse it."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise ConfigError(
            f"output folder {str(out)!r} already holds files that fmclassify did not write; "
            "choose a new or empty folder so none of them is overwritten"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).touch()
    return out


def total_runs(seeds: int, models: Sequence[str], lrs: Sequence[float]) -> int:
    """How many runs :func:`run_assignment` trains (for an overall progress bar)."""
    return seeds * (3 * len(lrs) + len(models))


def check_assignment(budget: str | Budget, seeds: int, models: Sequence[str],
                     lrs: Sequence[float]) -> Budget:
    """Check :func:`run_assignment`'s arguments (before any data is loaded); return the budget.

    Raises
    ------
    ConfigError, UnknownModelError
        For an unknown budget or model, seeds < 1, or empty or non-positive lrs.
    """
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ConfigError(f"unknown budget {budget!r}; choose {' or '.join(BUDGETS)}")
        budget = BUDGETS[budget]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an integer >= 1, got {seeds!r}")
    if not models:
        raise ConfigError("models must name at least one registered model, e.g. base")
    for name in models:
        get_model_spec(name)  # a typo fails here, before any run trains
    if not lrs or any(isinstance(lr, bool) or not isinstance(lr, (int, float))
                      or not math.isfinite(lr) or lr <= 0 for lr in lrs):
        raise ConfigError(f"lrs must be positive learning rates, got {list(lrs)!r}")
    return budget


# -- the document -------------------------------------------------------------------------------


class _Document:
    """Blocks rendered both to Markdown and to self-contained HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def figure(self, path: str, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))

    def code(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def markdown(self) -> str:
        out: list[str] = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in value))
            elif kind == "table":
                header, rows = value
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "img":
                out.append(f"![{value[1]}]({value[0]})")
            elif kind == "pre":
                out.append("```\n" + value + "\n```")
        return "\n\n".join(out) + "\n"

    def html(self, root: Path) -> str:
        e = html.escape
        parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
                 "<title>fmclassify assignment report</title><style>",
                 "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}",
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;",
                 "padding:.25em .6em;text-align:right}th{background:#eee}",
                 "img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}",
                 "</style></head><body>"]
        for kind, value in self.blocks:
            if kind == "h":
                parts.append(f"<h{value[0]}>{e(value[1])}</h{value[0]}>")
            elif kind == "p":
                parts.append(f"<p>{e(value)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                header, rows = value
                parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header)
                             + "</tr>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r)
                                                 + "</tr>" for r in rows) + "</table>")
            elif kind == "img":
                data = base64.b64encode((root / value[0]).read_bytes()).decode()
                parts.append(f"<figure><img alt='{e(value[1])}' src='data:image/png;base64,"
                             f"{data}'><figcaption>{e(value[1])}</figcaption></figure>")
            elif kind == "pre":
                parts.append(f"<pre>{e(value)}</pre>")
        parts.append("</body></html>")
        return "\n".join(parts)


def _save_figure(fig: Any, out: Path, name: str) -> str:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    rel = f"figures/{name}.png"
    atomic_write_bytes(out / rel, buffer.getvalue())
    return rel


def _table_block(doc: _Document, result: ExperimentResult) -> None:
    from fmclassify._tables import COLUMNS

    columns = COLUMNS[result.kind]
    rows = result.table()
    doc.table([h for _, h in columns],
              [[format_cell(k, r.get(k), r.get(f"{k}_std")) for k, _ in columns] for r in rows])


def _figures(doc: _Document, out: Path, result: ExperimentResult, prefix: str,
             per_run: bool = True) -> None:
    from fmclassify import plotting

    for run in result.runs if per_run else ():
        fig = plotting.plot_history(run.history)
        doc.figure(_save_figure(fig, out, f"{prefix}-{run.spec.key}"),
                   f"Loss and accuracy per epoch, {run.spec.label}, seed {run.spec.seed}")
    if len(result.runs) > 1:
        labels = [f"{r.spec.label} (seed {r.spec.seed})" for r in result.runs]
        for metric, what in (("test_accuracy", "test accuracy"), ("train_loss", "training loss")):
            fig = plotting.plot_comparison(result.histories, metric=metric, labels=labels)
            doc.figure(_save_figure(fig, out, f"{prefix}-comparison-{metric}"),
                       f"Overall {what} comparison")


def _write_sections(doc: _Document, out: Path, plan: Budget, train: ImageDataset,
                    test: ImageDataset, results: dict[str, ExperimentResult],
                    params: dict[str, Any]) -> None:
    first = results["q1_1"].runs[0].history.metadata
    doc.heading("fmclassify assignment report", 1)
    doc.para(f"Data: {train.name}, {len(train):,} training and {len(test):,} test images "
             f"(checksum {train.checksum[:12] or 'n/a'}). {plan.describe()}. Batch size "
             f"{first.get('batch_size')}, optimizer {first.get('optimizer')}, device "
             f"{first.get('device')}, torch {first.get('versions', {}).get('torch')}; every "
             "step runs through autograd, as in the course's loop.")
    doc.para("Accuracies are on the test set. 'Final' is after the last epoch, 'best' the "
             "highest over the epochs, 'avg' the mean over the epochs (the course's "
             "'Avg Accuracy'). A run whose loss became non-finite is reported as diverged; "
             "one that thrashes is flagged unstable (an epoch's training loss over 5% above "
             "both the untrained network's and that of guessing, ln(classes), or a fall of "
             "more than 10 accuracy points between two epochs).")
    sections: list[tuple[str, str, Callable[[], None]]] = [
        ("q1_1", "Q1.1 Learning rates", lambda: _figures(doc, out, results["q1_1"], "q1_1")),
        ("q1_2", "Q1.2 Epochs to convergence",
         lambda: _figures(doc, out, results["q1_2"], "q1_2", per_run=False)),
    ]
    for key, title, figures in sections:
        doc.heading(title)
        _table_block(doc, results[key])
        figures()
    doc.heading("Q1.3 Learning rate: what the measurements show")
    doc.bullets(lr_observations(results["q1_1"], results["q1_2"]))
    doc.heading("Q1.4 Deeper and wider networks")
    _table_block(doc, results["q1_4"])
    _figures(doc, out, results["q1_4"], "q1_4")
    doc.heading("Q1.5 Trainable parameters, layer by layer")
    for name, report in params.items():
        doc.heading(f"{name}: {report.trainable:,} trainable parameters", 3)
        doc.code(str(report))
    doc.heading("Q1.6 Structure: what the measurements show")
    doc.bullets(model_observations(results["q1_4"]))
    doc.heading("Q1.7 Mean gradient over the first training steps")
    _table_block(doc, results["q1_7"])
    _gradient_figure(doc, out, results["q1_7"])


def _gradient_figure(doc: _Document, out: Path, result: ExperimentResult) -> None:
    from fmclassify import plotting

    for run in result.runs:
        if not run.gradients:
            continue
        stat = run.gradients.get("statistic", "mean")
        fig = plotting.plot_gradients(run.gradients["values"], statistic=stat,
                                      title=f"gradient {stat}, {run.spec.label}")
        doc.figure(_save_figure(fig, out, f"q1_7-{run.spec.key}"),
                   f"Gradient {stat} per step, {run.spec.label}, seed {run.spec.seed}")

