"""The course's published numbers are data in one place, and agree with what we count."""

from __future__ import annotations

import pytest

import fmclassify as fmc
from fmclassify.course.assignment.published import PUBLISHED as COURSE


@pytest.mark.parametrize("name", sorted(COURSE.models))
def test_the_course_counts_the_parameters_we_count(name):
    model = fmc.build_model(name)
    assert fmc.count_parameters(model).trainable == COURSE.models[name].parameters


def test_the_course_values_as_published():
    assert {lr: (v.final_accuracy, v.mean_accuracy) for lr, v in COURSE.sweep.items()} == {
        1.0: (0.110, 0.2181), 0.1: (0.872, 0.8468), 0.01: (0.834, 0.8038),
        0.001: (0.705, 0.6343)}
    assert {lr: (v.epochs, v.accuracy) for lr, v in COURSE.convergence.items()} == {
        1.0: (30, 0.1983), 0.1: (204, 0.9018), 0.01: (352, 0.8913), 0.001: (597, 0.8873)}
    assert {k: v.mean_accuracy for k, v in COURSE.models.items()} == {
        "base": 0.8468, "deeper": 0.8679, "wider": 0.8749}
    # Q1.4's base at lr 0.1 is Q1.1's lr 0.1 run: the same mean over epochs
    assert COURSE.models["base"].mean_accuracy == COURSE.sweep[COURSE.models_lr].mean_accuracy
    assert COURSE.epochs == 10 and COURSE.dataset == "fashion-mnist"
    assert COURSE.gradient_hint == "the mean of the gradients should be decreased"


def test_the_course_values_live_only_in_published_py():
    """No other module of the package writes the course's numbers out by hand."""
    from pathlib import Path

    src = Path(fmc.__file__).parent
    for path in src.rglob("*.py"):
        if path.name == "published.py":
            continue
        text = path.read_text()
        for number in ("84.68", "86.79", "87.49", "0.8468", "0.8679", "0.8749", "90.18"):
            assert number not in text, f"{path.name} states the course's {number} by hand"
