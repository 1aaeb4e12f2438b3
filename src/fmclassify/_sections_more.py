"""The report's last sections (Q1.5-Q1.7, the modern recipe), its summary, and its assembly.

Private to the assignment report; the first sections and the shared pieces are in
:mod:`fmclassify._sections`.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from fmclassify._budget import BUDGETS, RECIPE, RECIPE_LR
from fmclassify._observations import (
    gradient_observation,
    lr_observations,
    model_observations,
    recipe_observation,
    trend,
    why_no_number,
)
from fmclassify._report_doc import Document, Picture
from fmclassify._sections import (
    Measured,
    comparisons,
    intro,
    outcome,
    pictures,
    q1_1,
    q1_2,
    q1_3,
    q1_4,
)
from fmclassify._tables import NA, Table, format_cell, percent
from fmclassify.experiments import ExperimentResult

__all__ = ["q1_5", "q1_6", "q1_7", "recipe", "summary_rows", "write_report"]


def write_report(out: Path, m: Measured) -> tuple[str, str]:
    """The report's Markdown and its self-contained HTML; figures are written under ``out``."""
    from fmclassify.plotting import unshown  # lazy: matplotlib only when drawing

    doc = Document(out, "fmclassify assignment report")
    intro(doc, m)
    doc.heading("Summary")
    doc.table(Table(["Question", "What we measured", "The course"], summary_rows(m),
                    notes=(m.budget_note(),)))
    doc.contents()
    with unshown():  # the report's figures go to its files, never into a notebook's cell
        for section in (q1_1, q1_2, q1_3, q1_4, q1_5, q1_6, q1_7, recipe):
            section(doc, m)
    return doc.markdown(), doc.html()


# -- Q1.5 to Q1.7 -------------------------------------------------------------------------------


def q1_5(doc: Document, m: Measured) -> None:
    """Trainable parameters: ours by formula (checked against numel), the course's beside."""
    doc.heading("Q1.5 Trainable parameters, layer by layer")
    rows = []
    for name, report in m.params.items():
        course = m.course.models.get(name) if m.course else None
        same = NA if course is None else "yes" if course.parameters == report.trainable else "no"
        rows.append([name, f"{report.trainable:,}", f"{course.parameters:,}" if course else NA,
                     same])
    doc.table(Table(["Model", "Trainable parameters (by formula)", "Course", "Same"], rows,
                    right=frozenset({1, 2}), notes=(
                        "Every layer's formula is checked against the parameter tensors' "
                        "numel; the tables below show each formula and, for one input "
                        "image, each layer's output shape and multiply-adds.",)))
    for name, report in m.params.items():
        doc.heading(f"{name}: {report.trainable:,} trainable parameters", 3)
        doc.code(str(report).rstrip())


def q1_6(doc: Document, m: Measured) -> None:
    """Conclusions on structure, from the Q1.4 table."""
    doc.heading("Q1.6 Structure: what the measurements show")
    doc.bullets(model_observations(m.results["q1_4"]))


def _trends(result: ExperimentResult, lr: float) -> tuple[float, float] | None:
    """The first-tenth and last-tenth sizes of an lr's traces, averaged over finite seeds."""
    found = [t for r in result.groups().get(lr, []) if r.gradients
             and (t := trend(r.gradients["values"])) is not None]
    if not found:
        return None
    return statistics.fmean(t[0] for t in found), statistics.fmean(t[1] for t in found)


def _trend_cell(t: tuple[float, float] | None) -> str:
    if t is None:
        return NA
    return f"{t[0]:.1e} → {t[1]:.1e}"


def q1_7(doc: Document, m: Measured) -> None:
    """The mean gradient and the mean absolute gradient per step, the hint, the flow."""
    signed, size, steps = m.results["q1_7"], m.results["q1_7_abs"], m.budget.gradient_steps
    doc.heading("Q1.7 The gradient over the first training steps")
    doc.para(f"At each of the first {steps} steps, after backward and before the update, the "
             "mean of every entry of every trainable parameter's gradient (the course's "
             "quantity; positive and negative entries cancel) and the mean of their absolute "
             "values (the typical size of an entry).")
    trends = {lr: (_trends(signed, lr), _trends(size, lr)) for lr in signed.groups()}
    for i, (result, what) in enumerate(((signed, "The mean gradient (the course's quantity)"),
                                        (size, "The mean absolute gradient"))):
        doc.table(_gradient_table(m, result, [t[i] for t in trends.values()], what))
    lr = _hint_lr(trends)
    if lr is not None:
        doc.para(gradient_observation(lr, *trends[lr], m.course.gradient_hint if m.course else
                                      "nothing about it", steps))
    _gradient_figures(doc, m)


def _gradient_table(m: Measured, result: ExperimentResult,
                    trends: list[tuple[float, float] | None], what: str) -> Table:
    """One statistic per lr: steps 1 and N, the mean over the steps, the hint against it."""
    steps = m.budget.gradient_steps
    k = max(1, steps // 10)
    hint = "decrease" if m.course else NA
    rows = [[f"{row['lr']:g}", *_gradient_cells(row), _trend_cell(t), hint,
             NA if t is None else _arrow(t), outcome(row, result.kind, m.budget)]
            for row, t in zip(result.table(), trends, strict=True)]
    header = ["Learning rate", "Step 1", f"Step {steps}", "Mean over steps",
              f"Size, steps 1-{k} → {steps - k + 1}-{steps}", "Course's hint", "Measured",
              "Outcome"]
    notes = [m.budget_note(), "A trace with a non-finite step gives no statistic: its steps "
             "before it are in the figures."] if result is m.results["q1_7"] else []
    title = what + (f"; the course's hint: {m.course.gradient_hint}" if m.course else "")
    return Table(header, rows, right=frozenset(range(1, 5)), title=title, notes=tuple(notes))


def _gradient_cells(row: dict[str, Any]) -> list[str]:
    return [format_cell(k, row.get(k), row.get(f"{k}_std"))
            for k in ("gradient_first", "gradient_last", "gradient_mean")]


def _hint_lr(sizes: dict[float, Any]) -> float | None:
    """The course's lr 0.1 when both its traces are finite, else the first lr whose are."""
    usable = [lr for lr, (a, b) in sizes.items() if a is not None and b is not None]
    return 0.1 if 0.1 in usable else (usable[0] if usable else None)


def _gradient_figures(doc: Document, m: Measured) -> None:
    first = 0
    runs = {}
    for key in ("q1_7", "q1_7_abs"):
        result = m.results[key]
        seed0 = ExperimentResult(result.kind, [r for r in result.runs if r.spec.seed == first])
        runs[key] = pictures(doc, seed0, key, "gradients",
                             lambda r: f"{r.spec.label}, seed {r.spec.seed}")
    paired: list[Picture] = [p for pair in zip(runs["q1_7"], runs["q1_7_abs"], strict=True)
                             for p in pair]
    doc.grid(paired, columns=2, header=["mean gradient (signed)", "mean |gradient|"])
    flow = m.results["q1_7_flow"]
    doc.heading("Gradient flow, layer by layer", 3)
    doc.para("The mean absolute gradient of each parameter tensor per step (seed 0, the same "
             "runs traced per layer): a layer whose gradients vanish or explode stands out.")
    doc.grid(pictures(doc, flow, "q1_7", "flow",
                      lambda r: f"{r.spec.label}: mean |gradient| per tensor"), columns=2)


# -- beyond the course --------------------------------------------------------------------------


def _recipe_words() -> str:
    r = RECIPE
    return (f"SGD with momentum {r['momentum']} (Nesterov), weight decay {r['weight_decay']:g}, "
            f"a {r['schedule']} schedule peaking at lr {RECIPE_LR:g}, label smoothing "
            f"{r['label_smoothing']:g}, {' and '.join(r['augment'])} augmentation, batch "
            f"{r['batch_size']}")


def recipe(doc: Document, m: Measured) -> None:
    """The course's CNN trained with a modern recipe, beside its plain SGD runs."""
    doc.heading("Beyond the course: the same CNN, a modern training recipe")
    if "recipe" not in m.results:
        doc.para(f"Not run: budget '{m.budget.name}' trains no epoch of the recipe "
                 f"({_recipe_words()}); the quick and full budgets do.")
        return
    res, plan = m.results["recipe"], m.budget
    doc.para(f"The course's CNN (deeper) again, trained with {_recipe_words()}: what is the "
             "training setup, not the network, worth?")
    plain = next((r for r in m.results["q1_4"].table() if r["model"] == "deeper"), None)
    ours = res.table()[0]
    rows = [_recipe_row("modern recipe", ours, plan.recipe_epochs, m)]
    if plain is not None:
        rows.insert(0, _recipe_row("course's setup (Q1.4: SGD lr 0.1, batch 64)", plain,
                                   plan.epochs, m))
    course = m.course.models["deeper"].mean_accuracy if m.course else None
    if course is not None:
        rows.append(["the course (one run)", "10", NA, NA, percent(course, digits=2), NA, ""])
    notes = [m.budget_note()]
    if plan.recipe_epochs < BUDGETS["full"].recipe_epochs:
        notes.append(f"This budget trains the recipe {plan.recipe_epochs} epochs; --full "
                     f"trains it {BUDGETS['full'].recipe_epochs}.")
    doc.table(Table(["Setup", "Epochs", "Final accuracy", "Best accuracy", "Avg accuracy",
                     "s/epoch", "Outcome"], rows, right=frozenset(range(1, 6)),
                    notes=tuple(notes)))
    if ours["final_accuracy"] is not None:
        doc.para(recipe_observation(plain, ours, plan.recipe_epochs, plan.epochs, course))
    both = [r for r in m.results["q1_4"].runs if r.spec.model == "deeper"][:1] + res.runs[:1]
    # test accuracy only: label smoothing raises the recipe's training loss by design
    comparisons(doc, ExperimentResult("compare_models", both, group_by="lr"), "recipe",
                metrics=("test_accuracy",))


def _recipe_row(label: str, row: dict[str, Any], epochs: int, m: Measured) -> list[str]:
    return [label, str(epochs), percent(row["final_accuracy"], row.get("final_accuracy_std")),
            percent(row["best_accuracy"], row.get("best_accuracy_std")),
            percent(row["mean_accuracy"], row.get("mean_accuracy_std")),
            format_cell("seconds_per_epoch", row["seconds_per_epoch"]),
            outcome(row, "compare_models", m.budget)]


# -- the summary --------------------------------------------------------------------------------


def _join(items: list[str]) -> str:
    return "; ".join(items) if items else NA


def summary_rows(m: Measured) -> list[list[str]]:
    """One row per question: our answer in a line, and the course's."""
    c = m.course
    rows = [["Q1.1 accuracy per learning rate", _summary_q1_1(m),
             _join([f"lr {lr:g}: {percent(v.final_accuracy)}" for lr, v in c.sweep.items()])
             if c else NA],
            ["Q1.2 epochs to convergence", _summary_q1_2(m),
             _join([f"lr {lr:g}: {v.epochs}" for lr, v in c.convergence.items()]) if c else NA],
            ["Q1.3 the learning rate", _first(lr_observations(m.results["q1_1"],
                                                              m.results["q1_2"]), "After"), ""],
            ["Q1.4 deeper and wider (avg accuracy)", _join(
                [f"{r['model']}: {percent(r['mean_accuracy'], r.get('mean_accuracy_std'))}"
                 for r in m.results["q1_4"].table()]),
             _join([f"{k}: {percent(v.mean_accuracy, digits=2)}" for k, v in c.models.items()])
             if c else NA],
            ["Q1.5 trainable parameters",
             _join([f"{k}: {p.trainable:,}" for k, p in m.params.items()]),
             _join([f"{k}: {v.parameters:,}" for k, v in c.models.items()]) if c else NA],
            ["Q1.6 structure", _first(model_observations(m.results["q1_4"]), "The most"), ""],
            ["Q1.7 the gradient's first steps", _summary_q1_7(m),
             f"hint: {c.gradient_hint}" if c else NA],
            ["Beyond: a modern recipe for the CNN", _summary_recipe(m),
             f"deeper: {percent(c.models['deeper'].mean_accuracy, digits=2)} (avg, 10 epochs)"
             if c else NA]]
    return rows


def _first(sentences: list[str], start: str) -> str:
    return next((s for s in sentences if s.startswith(start)), sentences[0] if sentences else NA)


def _summary_q1_1(m: Measured) -> str:
    out = []
    for r in m.results["q1_1"].table():
        why = why_no_number(r, "lr_sweep")
        cell = why.split(":")[0] if why else percent(r["final_accuracy"],
                                                     r.get("final_accuracy_std"))
        flag = f" (unstable in {r['unstable']} of {r['seeds']})" if r["unstable"] else ""
        out.append(f"lr {r['lr']:g}: {cell}{flag}")
    return _join(out) + f", after {m.budget.epochs} epochs"


def _summary_q1_2(m: Measured) -> str:
    out = []
    for r in m.results["q1_2"].table():
        why = why_no_number(r, "convergence_study", max_epochs=m.budget.max_epochs)
        epoch = format_cell("converged_epoch", r.get("converged_epoch"),
                            r.get("converged_epoch_std"))
        out.append(f"lr {r['lr']:g}: {why.split(':')[0] if why else epoch}")
    return _join(out)


def _summary_q1_7(m: Measured) -> str:
    signed, size = m.results["q1_7"], m.results["q1_7_abs"]
    out = []
    for lr in signed.groups():
        a, b = _trends(signed, lr), _trends(size, lr)
        if a is None or b is None:
            out.append(f"lr {lr:g}: no finite trace")
            continue
        out.append(f"lr {lr:g}: size of the mean {_arrow(a)}, mean |g| {_arrow(b)}")
    return _join(out) + f" over {m.budget.gradient_steps} steps"


def _arrow(t: tuple[float, float]) -> str:
    return (f"down {100 * (1 - t[1] / t[0]):.0f}%" if t[1] < t[0]
            else f"up {t[1] / t[0]:.3g}x" if t[0] else "up")


def _summary_recipe(m: Measured) -> str:
    if "recipe" not in m.results:
        return f"not run on budget '{m.budget.name}'"
    row = m.results["recipe"].table()[0]
    why = why_no_number(row, "compare_models")
    if why:
        return why
    accuracy = percent(row["final_accuracy"], row.get("final_accuracy_std"))
    return f"deeper with the recipe: {accuracy} after {m.budget.recipe_epochs} epochs"
