"""The step table (fmclassify.steps): which step trains a run, and why the faster ones do not."""

from __future__ import annotations

import pytest
import torch

import fmclassify as fmc
from fmclassify.exceptions import ConfigError
from fmclassify.recipes import Recipe
from fmclassify.steps import FASTER, STEPS, StepChoice, choose_step, why_not_graph


def base():
    return fmc.build_model("base", num_classes=4, image_size=8, seed=0)


def test_every_faster_step_is_a_step_and_has_a_reason_function():
    for device, entries in FASTER.items():
        for name, why_not in entries:
            assert name in STEPS and name != "auto", device
            assert callable(why_not)


@pytest.mark.parametrize(("model", "recipe", "world", "described"), [
    (base, Recipe(), 1, "fused"),
    (lambda: fmc.build_model("deeper"), Recipe(), 1, "autograd (has Conv2d)"),
    (base, Recipe(momentum=0.9), 1, "autograd (the recipe is not plain SGD at a constant rate)"),
    (base, Recipe(), 2, "autograd (it trains data-parallel over 2 processes)"),
])
def test_auto_on_the_cpu(model, recipe, world, described):
    assert choose_step("auto", model(), recipe, world=world).describe() == described


def test_named_steps_are_taken_or_refused_with_the_reason():
    assert choose_step("autograd", base(), Recipe()) == StepChoice("autograd")
    assert choose_step("compiled", base(), Recipe()).name == "compiled"
    with pytest.raises(ConfigError, match=r"step='graph' cannot train this run: it needs a CUDA "
                                          r"device \(the model is on cpu\); use step='auto'"):
        choose_step("graph", base(), Recipe())
    with pytest.raises(ConfigError, match="step='fused' cannot train this run: has Conv2d"):
        choose_step("fused", fmc.build_model("deeper"), Recipe())


def test_trainer_refuses_the_graph_step_on_the_cpu_before_training():
    with pytest.raises(ConfigError, match="step='graph' cannot train this run: it needs a CUDA"):
        fmc.Trainer(base(), lr=0.1, epochs=1, step="graph", device="cpu")


def test_describe_names_every_reason_and_watched_epochs():
    choice = StepChoice("autograd", (("graph", "a schedule"), ("fused", "has Conv2d")))
    assert choice.describe() == "autograd (graph: a schedule; fused: has Conv2d)"
    assert StepChoice("fused").describe(watched=True) == (
        "fused (autograd in epochs where a callback reads gradients)")
    assert StepChoice("autograd").describe(watched=True) == "autograd"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_why_not_graph_reasons_on_cuda():
    model = base().cuda()
    assert why_not_graph(model, Recipe()) is None
    assert why_not_graph(model, Recipe(optimizer="adam")) == "the optimizer is 'adam', not SGD"
    assert why_not_graph(model, Recipe(schedule="cosine")) == (
        "a schedule changes the learning rate every step")


def test_why_not_graph_on_the_cpu():
    assert why_not_graph(base(), Recipe()) == "it needs a CUDA device (the model is on cpu)"
