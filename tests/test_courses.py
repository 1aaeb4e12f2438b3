"""A course is data: questions as objects, courses found like models, one report for any course.

The assignment is the first course; these tests add a question to it without touching a
library file, write a course of their own, find courses through the ``fmclassify.courses``
entry-point group, and run the ``courses`` and ``course NAME`` commands.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings

import pytest

import fmclassify as fmc
from fmclassify import course as courses
from fmclassify.cli import main
from fmclassify.course import (
    Answers,
    Budget,
    Course,
    Experiment,
    Question,
    SummaryRow,
    count_runs,
    get_course,
    list_courses,
    register_course,
    run_course,
)
from fmclassify.course.assignment import ASSIGNMENT
from fmclassify.exceptions import ConfigError
from helpers import make_dataset

TINY = Budget("tiny", train_size=None, epochs=2, max_epochs=3, gradient_steps=5,
              threshold=0.05, patience=1, window=1, recipe_epochs=0)
BUDGETS = {"quick": TINY, "full": TINY}


def tiny_data(name: str = "synthetic"):
    return tuple(dataclasses.replace(ds, name=name) for ds in (
        make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")))


class BatchSizes(Question):
    """An extra question: does a larger batch change the first model's accuracy?"""

    key, title = "batch", "Q1.8 Batch size"

    def plan(self, plan):
        return {"": Experiment("compare_models", "model", [
            dataclasses.replace(s, batch_size=128) for s in fmc.compare_models_specs(
                plan.models[:1], 0.1, plan.budget.epochs, plan.seeds)])}

    def write(self, doc, answers: Answers):
        doc.heading(self.title)
        doc.table(answers[self].to_table(title="batch 128"))
        doc.para(f"{len(answers[self].runs)} runs at batch 128.")

    def summary(self, answers):
        row = answers[self].rows()[0]
        return SummaryRow("Q1.8 batch 128", f"{100 * row.final_accuracy:.1f}%")


def test_adding_a_question_is_one_object_and_one_line(tmp_path):
    extended = dataclasses.replace(ASSIGNMENT, name="extended",
                                   questions=(*ASSIGNMENT.questions, BatchSizes()),
                                   budgets=BUDGETS)
    args = {"budget": "quick", "seeds": 1, "models": ("base",), "lrs": (0.5,)}
    total = count_runs(extended, **args)
    assert total == count_runs(dataclasses.replace(ASSIGNMENT, budgets=BUDGETS), **args) + 1
    seen = []
    report = run_course(extended, tmp_path, data=tiny_data(), progress=False, workers=1,
                        on_run=seen.append, **args)
    md = report.markdown
    assert "## Q1.8 Batch size" in md and "runs at batch 128." in md
    assert "- [Q1.8 Batch size](#q18-batch-size)" in md  # in the table of contents
    assert "| Q1.8 batch 128 |" in md  # its summary row
    assert len(seen) == total == len(list((tmp_path / "runs").glob("*.json")))
    tables = json.loads((tmp_path / "results.json").read_text())["tables"]
    assert [r.spec.batch_size for r in report.results["batch"].runs] == [128]
    assert tables["batch"] == report.results["batch"].table()


class Widths(Question):
    key, title = "widths", "Accuracy against width"

    def plan(self, plan):
        return {"": Experiment("compare_models", "model", fmc.compare_models_specs(
            plan.models, plan.lrs[0], plan.budget.epochs, plan.seeds))}

    def write(self, doc, answers):
        doc.heading(self.title)
        doc.table(answers[self].to_table())
        courses.comparisons(doc, answers[self], self.key, metrics=("test_accuracy",))

    def summary(self, answers):
        rows = answers[self].rows()
        return SummaryRow(self.title, "; ".join(f"{r.model}: {r.final_accuracy:.2f}"
                                               for r in rows))


class Discussion(Question):
    key, title = "words", "What widening did"

    def __init__(self, widths: Question) -> None:
        self.widths = widths

    def write(self, doc, answers):
        doc.heading(self.title)
        best = max(answers[self.widths].rows(), key=lambda r: r.final_accuracy)
        doc.para(f"The most accurate is {best.model}.")


def test_a_course_of_its_own_runs_resumes_and_trains_nothing_twice(tmp_path):
    widths = Widths()
    mine = Course("widths-demo", "Widths", [widths, Discussion(widths)], dataset="synthetic",
                  models=("base", "wider"), lrs=(0.1,), budgets=BUDGETS)
    report = run_course(mine, tmp_path, seeds=1, data=tiny_data(), progress=False, workers=1)
    md = report.markdown
    assert md.startswith("# Widths\n")
    assert "## Accuracy against width" in md and "The most accurate is" in md
    assert "| Accuracy against width | base:" in md
    assert "the course:" not in md  # no published numbers: nothing is set beside ours
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == md.count("![") == 1
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    again = run_course(mine, tmp_path, seeds=1, data=tiny_data(), progress=False, workers=1)
    assert again.markdown.replace(" ", "") != "" and stamps == {
        p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}


def test_a_course_is_checked_when_made():
    with pytest.raises(ConfigError, match="has no questions"):
        Course("empty", "Empty", [])
    with pytest.raises(ConfigError, match=r"\['widths'\] is taken twice"):
        Course("twice", "Twice", [Widths(), Widths()])
    with pytest.raises(ConfigError, match="has no budget full; give it budgets named quick"):
        Course("half", "Half", [Widths()], budgets={"quick": TINY})
    with pytest.raises(ConfigError, match="unknown budget 'huge'; choose auto, quick or full"):
        Course("ok", "Ok", [Widths()]).budget("huge")
    with pytest.raises(ConfigError, match="unknown kind 'sweep'; did you mean 'lr_sweep'"):
        Experiment("sweep", "lr", [])


def test_a_question_that_plans_something_else_fails_before_any_run(tmp_path):
    class Wrong(Question):
        key, title = "wrong", "Wrong"

        def plan(self, plan):
            return {"": fmc.lr_sweep_specs()}

    with pytest.raises(ConfigError, match=r"plan must return Experiments by part name, got list"):
        run_course(Course("w", "W", [Wrong()], budgets=BUDGETS), tmp_path / "out",
                   data=tiny_data(), seeds=1)
    assert not (tmp_path / "out").exists()  # checked before the folder is claimed


def test_answers_name_a_missing_part():
    answers = Answers(TINY, 1, *tiny_data(), results={}, params={})
    with pytest.raises(ConfigError, match="has no experiment 'abs' in this report"):
        answers.part(Widths(), "abs")
    with pytest.raises(ConfigError, match="inside a course's report only"):
        answers.trained_model(None)  # type: ignore[arg-type]


def test_courses_are_found_by_name_and_suggested():
    assert get_course("assignment") is ASSIGNMENT
    assert [q.key for q in ASSIGNMENT.questions] == [
        "q1_1", "q1_2", "q1_3", "q1_4", "q1_5", "q1_6", "q1_7", "recipe"]
    with pytest.raises(ConfigError, match="unknown course 'asignment'; did you mean "
                                          "'assignment'"):
        get_course("asignment")
    with pytest.raises(ConfigError, match="is registered already; pass replace=True"):
        register_course(dataclasses.replace(ASSIGNMENT, source="mine"))


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A distribution on sys.path whose entry points add one course and one that fails."""
    (tmp_path / "widths_course.py").write_text(
        "from fmclassify.course import Course\n"
        "from fmclassify.course.assignment import QUESTIONS\n"
        "COURSE = Course('plugged', 'Plugged', QUESTIONS[:2], description='from a plugin')\n")
    info = tmp_path / "widths_course-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: widths-course\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[fmclassify.courses]\nplugged = widths_course:COURSE\nbroken = no_such_module:X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FMCLASSIFY_NO_PLUGINS", raising=False)
    from fmclassify.course import catalog

    monkeypatch.setattr(catalog, "_plugins_loaded", False)
    monkeypatch.setattr(catalog, "_courses", dict(catalog._courses))
    return tmp_path


def test_plugins_add_courses_and_a_broken_one_is_skipped_with_a_warning(plugin):
    with pytest.warns(RuntimeWarning, match="course plugin 'broken' from 'widths-course' "
                                            "failed to load and was skipped"):
        names = [c.name for c in list_courses()]
    assert "plugged" in names and "assignment" in names
    assert get_course("plugged").source == "widths-course"


def test_the_courses_command_lists_them(plugin, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(["courses"]) == 0
    out = capsys.readouterr().out
    assert "assignment" in out and "fashion-mnist" in out and "8" in out
    assert "plugged" in out and "widths-course" in out and "from a plugin" in out


def test_course_runs_a_named_course_with_the_assignments_flags(plugin, monkeypatch, tmp_path,
                                                               capsys):
    data = tiny_data("fashion-mnist")
    monkeypatch.setattr(fmc.data, "load_dataset", lambda *a, **k: data)
    register_course(dataclasses.replace(get_course("plugged"), budgets=BUDGETS), replace=True)
    assert main(["course", "plugged", "--out", str(tmp_path / "r"), "--quick", "--seeds", "1",
                 "--models", "base", "--lrs", "0.5", "--workers", "1", "--no-progress"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.startswith("# Plugged\n") and "## Q1.1 Learning rates" in md
    assert "## Q1.2 Epochs to convergence" in md and "## Q1.4" not in md
    assert "report written to" in capsys.readouterr().out


def test_course_names_an_unknown_course_before_anything_runs(capsys, tmp_path):
    assert main(["course", "cifar", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown course 'cifar'" in err and "fmclassify courses" in err
    assert not (tmp_path / "x").exists()


def test_the_assignment_command_is_the_first_course(monkeypatch, tmp_path):
    called = {}

    def fake(course, out, **kwargs):
        called.update(course=course, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(courses, "run_course", fake)
    monkeypatch.setattr(fmc.data, "load_dataset", lambda *a, **k: tiny_data("fashion-mnist"))
    assert main(["assignment", "--out", str(tmp_path), "--no-progress", "--seeds", "2"]) == 130
    assert called["course"] is ASSIGNMENT and called["seeds"] == 2
    assert called["models"] is None and called["lrs"] is None  # the course's own


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
