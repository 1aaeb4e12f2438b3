"""Q1.7: the mean gradient and its size over the first steps, against the course's hint."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fmclassify._tables import NA, Table, format_cell
from fmclassify.course.answers import Answers
from fmclassify.course.assignment.learning_rates import join
from fmclassify.course.assignment.observations import gradient_observation, trend
from fmclassify.course.document import Document, Picture
from fmclassify.course.pieces import outcome, pictures
from fmclassify.course.questions import Experiment, Plan, Question, SummaryRow
from fmclassify.experiments import ExperimentResult, GroupRow, gradient_study_specs
from fmclassify.gradients import GradientTracer
from fmclassify.runs import RunSpec

__all__ = ["Gradients"]


class Gradients(Question):
    """Q1.7: per step, the mean of every gradient entry (signed) and of their sizes.

    Three experiments: ``""`` the course's signed mean, ``"abs"`` the mean absolute value,
    ``"flow"`` the first seed's signed runs again, traced per layer.
    """

    key, title = "q1_7", "Q1.7 The gradient over the first training steps"

    def plan(self, plan: Plan) -> Mapping[str, Experiment]:
        """Both statistics at every rate for ``budget.gradient_steps`` steps; the flow."""
        traces = {part: Experiment("gradient_study", "lr", gradient_study_specs(
            plan.models[0], plan.lrs, plan.budget.gradient_steps, statistic, plan.seeds,
            train_size=plan.train_size)) for part, statistic in (("", "mean"),
                                                                  ("abs", "mean_abs"))}
        flow = _per_layer(traces[""].specs, plan.seeds[0])
        return {**traces, "flow": Experiment("gradient_study", "lr", flow)}

    def write(self, doc: Document, m: Answers) -> None:
        """The two tables, the hint against the measurements, the figures and the flow."""
        signed, size = m[self], m.part(self, "abs")
        steps = m.budget.gradient_steps
        doc.heading(self.title)
        doc.para(f"At each of the first {steps} steps, after backward and before the update, "
                 "the mean of every entry of every trainable parameter's gradient (the "
                 "course's quantity; positive and negative entries cancel) and the mean of "
                 "their absolute values (the typical size of an entry).")
        trends = {lr: (_trends(signed, lr), _trends(size, lr)) for lr in signed.groups()}
        for i, (result, what) in enumerate((
                (signed, "The mean gradient (the course's quantity)"),
                (size, "The mean absolute gradient"))):
            doc.table(_table(m, result, [t[i] for t in trends.values()], what, i == 0))
        lr = _hint_lr(trends)
        if lr is not None:
            hint = m.published.gradient_hint if m.published else "nothing about it"
            doc.para(gradient_observation(lr, *trends[lr], hint, steps))
        self._figures(doc, m)

    def _figures(self, doc: Document, m: Answers) -> None:
        runs = {}
        for part in ("", "abs"):
            result = m.part(self, part)
            seed0 = ExperimentResult(result.kind, [r for r in result.runs if r.spec.seed == 0])
            runs[part] = pictures(doc, seed0, "q1_7_abs" if part else "q1_7", "gradients",
                                  lambda r: f"{r.spec.label}, seed {r.spec.seed}")
        paired: list[Picture] = [p for pair in zip(runs[""], runs["abs"], strict=True)
                                 for p in pair]
        doc.grid(paired, columns=2, header=["mean gradient (signed)", "mean |gradient|"])
        doc.heading("Gradient flow, layer by layer", 3)
        doc.para("The mean absolute gradient of each parameter tensor per step (seed 0, the "
                 "same runs traced per layer): a layer whose gradients vanish or explode "
                 "stands out.")
        doc.grid(pictures(doc, m.part(self, "flow"), self.key, "flow",
                          lambda r: f"{r.spec.label}: mean |gradient| per tensor"), columns=2)

    def summary(self, m: Answers) -> SummaryRow:
        """Per rate, how the size of each statistic moved over the traced steps."""
        signed, size = m[self], m.part(self, "abs")
        out = []
        for lr in signed.groups():
            a, b = _trends(signed, lr), _trends(size, lr)
            if a is None or b is None:
                out.append(f"lr {lr:g}: no finite trace")
                continue
            out.append(f"lr {lr:g}: size of the mean {_arrow(a)}, mean |g| {_arrow(b)}")
        return SummaryRow("Q1.7 the gradient's first steps",
                          join(out) + f" over {m.budget.gradient_steps} steps",
                          f"hint: {m.published.gradient_hint}" if m.published else NA)


def _per_layer(specs: tuple[RunSpec, ...] | Any, first: int) -> list[RunSpec]:
    """The first seed's signed runs again with a per-layer tracer (the gradient flow).

    Each spec is the gradient study's own, with ``per_layer=True`` added to its tracer: the
    same training, the same whole-model mean (gradients.py computes it the same way).
    """
    flows = []
    for spec in specs:
        if spec.seed == first and spec.tracer is not None:
            config = GradientTracer(**{**dict(spec.tracer), "per_layer": True}).config()
            flows.append(replace(spec, tracer=tuple(sorted(config.items()))))
    return flows


def _trends(result: ExperimentResult, lr: float) -> tuple[float, float] | None:
    """The first-tenth and last-tenth sizes of an lr's traces, averaged over finite seeds."""
    found = [t for r in result.groups().get(lr, []) if r.gradients
             and (t := trend(r.gradients["values"])) is not None]
    if not found:
        return None
    return statistics.fmean(t[0] for t in found), statistics.fmean(t[1] for t in found)


def _trend_cell(t: tuple[float, float] | None) -> str:
    return NA if t is None else f"{t[0]:.1e} → {t[1]:.1e}"


def _table(m: Answers, result: ExperimentResult, trends: list[tuple[float, float] | None],
           what: str, signed: bool) -> Table:
    """One statistic per lr: steps 1 and N, the mean over the steps, the hint against it."""
    steps = m.budget.gradient_steps
    k = max(1, steps // 10)
    hint = "decrease" if m.published else NA
    rows = [[f"{row.lr:g}", *_cells(row), _trend_cell(t), hint,
             NA if t is None else _arrow(t), outcome(row, result.kind, m.budget)]
            for row, t in zip(result.rows(), trends, strict=True)]
    header = ["Learning rate", "Step 1", f"Step {steps}", "Mean over steps",
              f"Size, steps 1-{k} → {steps - k + 1}-{steps}", "Course's hint", "Measured",
              "Outcome"]
    notes = [m.budget_note(), "A trace with a non-finite step gives no statistic: its steps "
             "before it are in the figures."] if signed else []
    title = what + (f"; the course's hint: {m.published.gradient_hint}" if m.published else "")
    return Table(header, rows, right=frozenset(range(1, 5)), title=title, notes=tuple(notes))


def _cells(row: GroupRow) -> list[str]:
    return [format_cell(k, getattr(row, k), getattr(row, f"{k}_std"))
            for k in ("gradient_first", "gradient_last", "gradient_mean")]


def _hint_lr(sizes: dict[float, Any]) -> float | None:
    """The course's lr 0.1 when both its traces are finite, else the first lr whose are."""
    usable = [lr for lr, (a, b) in sizes.items() if a is not None and b is not None]
    return 0.1 if 0.1 in usable else (usable[0] if usable else None)


def _arrow(t: tuple[float, float]) -> str:
    return (f"down {100 * (1 - t[1] / t[0]):.0f}%" if t[1] < t[0]
            else f"up {t[1] / t[0]:.3g}x" if t[0] else "up")
