"""A second course, written as a user would: the gallery page ``docs/examples/course_cifar10.py``.

The page defines a CIFAR-10 course with public names only. Here it runs end to end on small
files in CIFAR-10's real format: imported as a module and passed to ``run_course``, and as a
plugin distribution (an ``fmclassify.courses`` entry point naming the page's ``COURSE``)
through ``fmclassify courses`` and ``fmclassify course NAME``. A report SIGKILLed after some
of its runs are stored and run again equals an uninterrupted one, and a rerun of a finished
report trains nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fmclassify as fmc
from fmclassify import registry
from fmclassify.course import Budget, catalog, get_course, list_courses, register_course, run_course
from helpers import write_cifar_files

PAGE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "course_cifar10.py"
TIMEOUT = 300  # seconds any one command may take on a loaded two-core machine


@pytest.fixture
def isolated_registries(monkeypatch):
    """The page registers models (and a test registers its course): undo both afterwards."""
    monkeypatch.setattr(registry, "_models", dict(registry._models))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    monkeypatch.setattr(catalog, "_courses", dict(catalog._courses))


def import_page():
    """The page as a module, imported from its path as a student's script would be."""
    spec = importlib.util.spec_from_file_location("course_cifar10_page", PAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure_links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def summary_rows(markdown: str) -> list[list[str]]:
    """The rows of the report's summary table (header and rule left out)."""
    section = markdown.split("## Summary", 1)[1].split("\n\n")[1]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines()[2:]]


def check_report(out: Path, course) -> dict:
    """Every question answered: heading, summary row, figures on disk and embedded, tables."""
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    for question in course.questions:
        assert f"\n## {question.title}\n" in md
    rows = summary_rows(md)
    assert len(rows) == len(course.questions)
    assert all(len(row) == 2 for row in rows), rows  # no published numbers: no course column
    assert all("%" in measured and "n/a" not in measured for _, measured in rows), rows
    links = figure_links(md)
    assert len(links) >= len(course.questions)  # a figure per question at least
    for link in links:
        assert (out / link).read_bytes().startswith(b"\x89PNG")
    assert page.count("data:image/png;base64,") == len(links)
    assert "figures/" not in page  # self-contained: every picture is embedded
    tables = json.loads((out / "results.json").read_text())["tables"]
    for question in course.questions:
        assert tables[question.key], question.key
    assert {"recipe", "recipe_plain", "width"} <= set(tables)
    assert all(row["final_accuracy"] is not None for rows in tables.values() for row in rows)
    return tables


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """CIFAR-10 files (200 training, 41 test images), learnable by a small network."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_files(root / "cifar-10-batches-py", n=40, learnable=True)
    return root


def test_the_page_defines_a_course_of_public_names_only():
    text = PAGE.read_text()
    assert not re.search(r"fmclassify\._|from fmclassify\.\w+ import _|\bfmc\._", text)
    imports = set(re.findall(r"^(?:from|import) (\S+)", text, flags=re.M))
    assert imports <= {"fmclassify", "fmclassify.course", "matplotlib.figure"}, imports


def test_the_page_imported_runs_its_course_end_to_end(cifar, tmp_path, isolated_registries):
    page = import_page()
    course = page.COURSE
    assert course.dataset == "cifar10" and [q.key for q in course.questions] == [
        "recipe", "width"]
    assert {"mlp-64", "mlp-256", "mlp-1024"} <= {m.name for m in fmc.list_models("mlp-*")}
    train, test = fmc.load_dataset("cifar10", root=cifar, download=False)
    assert train.image_shape == (3, 32, 32)
    tiny = Budget("tiny", train_size=100, epochs=2)
    assert tiny.max_epochs == 2  # no convergence question: the cap is the epochs
    report = run_course(course, tmp_path / "out", budget=tiny, seeds=1, data=(train, test),
                        workers=1, progress=False)
    tables = check_report(report.out, course)
    assert set(tables) == set(report.results)
    assert len(list((report.out / "runs").glob("*.json"))) == 5  # 2 setups + 3 widths

    register_course(course)  # passed directly: then found by name like the assignment
    assert get_course("cifar10-demo") is course
    assert {"assignment", "cifar10-demo"} <= {c.name for c in list_courses()}


# -- as a plugin, through the command line ------------------------------------------------------


@pytest.fixture(scope="module")
def plugin(tmp_path_factory, cifar):
    """The page installed as the module of a distribution with an ``fmclassify.courses``
    entry point, and the environment of a subprocess that sees it (plugins on)."""
    folder = tmp_path_factory.mktemp("plugins")
    shutil.copy(PAGE, folder / "my_course.py")
    info = folder / "my_course-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-course\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fmclassify.courses]\ncifar = my_course:COURSE\n\n"
                                           "[fmclassify.models]\ncifar = my_course\n")
    env = {k: v for k, v in os.environ.items() if k != "FMCLASSIFY_NO_PLUGINS"}
    env.update(PYTHONPATH=os.pathsep.join([str(folder), *sys.path]), MPLBACKEND="Agg")
    return env


def course_command(out: Path, cifar: Path) -> list[str]:
    # --quick: the CPU's default, named so that a GPU machine runs the same budget; the data
    # shrunk further so that the page's quick budget (5 epochs) takes seconds
    return [sys.executable, "-m", "fmclassify", "course", "cifar10-demo", "--out", str(out),
            "--data-root", str(cifar), "--no-download", "--quick", "--device", "cpu",
            "--seeds", "1", "--workers", "1", "--no-progress", "--train-size", "100",
            "--test-size", "20"]


@pytest.fixture(scope="module")
def straight(plugin, cifar, tmp_path_factory):
    """The course run by the command line, uninterrupted."""
    out = tmp_path_factory.mktemp("straight") / "report"
    done = subprocess.run(course_command(out, cifar), capture_output=True, text=True,
                          env=plugin, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert f"report written to {out / 'report.md'}" in done.stdout
    return out


def listing(env: dict, *command: str) -> dict[str, str]:
    """The lines a listing command prints, by their first word."""
    done = subprocess.run([sys.executable, "-m", "fmclassify", *command], capture_output=True,
                          text=True, env=env, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}


def test_courses_lists_the_assignment_and_the_plugins_course(plugin):
    courses = listing(plugin, "courses")
    assert "assignment" in courses
    assert "cifar10" in courses["cifar10-demo"] and "my-course" in courses["cifar10-demo"]
    models = listing(plugin, "models", "mlp-*")  # the page's models, by its models entry point
    assert all("my-course" in models[f"mlp-{w}"] for w in (64, 256, 1024)), models


def test_the_plugins_course_runs_end_to_end_from_the_command_line(straight):
    check_report(straight, import_page().COURSE)
    budget = json.loads((straight / "results.json").read_text())["budget"]
    assert budget["name"] == "quick" and budget["epochs"] == 5


def without_seconds(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    for rows in results["tables"].values():
        for row in rows:
            row.pop("seconds_per_epoch")
            row.pop("seconds_per_epoch_std", None)
    return results


def without_timing(markdown: str) -> str:
    """The report with each table's s/epoch cell (its last, two decimals) masked."""
    return re.sub(r"\| \d+\.\d\d \|$", "| T |", markdown, flags=re.M)


def kill_after_some_runs(command: list[str], env: dict, runs: Path) -> int:
    """Start ``command`` in a process group of its own; SIGKILL the group once a run is
    stored; return how many were."""
    proc = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not list(runs.glob("*.json")):
            assert proc.poll() is None, "the report ended before a run was stored"
            assert time.monotonic() < deadline, "no run was stored in time"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the group: no worker outlives its report
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    return len(list(runs.glob("*.json")))


def test_sigkilled_then_rerun_equals_a_straight_run_and_a_finished_one_trains_nothing(
        plugin, cifar, straight, tmp_path):
    out = tmp_path / "report"
    command = course_command(out, cifar)
    stored = kill_after_some_runs(command, plugin, out / "runs")
    total = len(list((straight / "runs").glob("*.json")))
    assert 1 <= stored < total
    assert not (out / "report.md").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}

    rerun = subprocess.run(command, capture_output=True, text=True, env=plugin,
                           timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # none trained twice
    assert len(list((out / "runs").glob("*.json"))) == total
    assert not list((out / "runs").glob("*.ckpt"))  # the interrupted run finished
    assert without_seconds(out) == without_seconds(straight)
    report = (out / "report.md").read_text()
    assert without_timing(report) == without_timing((straight / "report.md").read_text())

    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*")}
    again = subprocess.run(command, capture_output=True, text=True, env=plugin,
                           timeout=TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*")} == finished
    assert (out / "report.md").read_text() == report  # the same runs: the same report
