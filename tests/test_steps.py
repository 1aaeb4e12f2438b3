"""The step table (fmclassify.steps): which step trains a run, and why the faster ones do not."""

from __future__ import annotations

import pytest
import torch

import fmclassify as fmc
from fmclassify.exceptions import ConfigError
from fmclassify.recipes import Recipe
from fmclassify.steps import FASTER, STEPS, StepChoice, choose_step, make_step, why_not_graph


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
    assert why_not_graph(model, Recipe(schedule="cosine")) is None
    assert why_not_graph(model, Recipe(schedule=lambda opt: None)) == (
        "a callable schedule may change more than the learning rate every step")


def test_why_not_graph_on_the_cpu():
    assert why_not_graph(base(), Recipe()) == "it needs a CUDA device (the model is on cpu)"


@pytest.mark.parametrize(("momentum", "nesterov", "wd"), [
    (0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 5e-4), (0.0, False, 1e-3)])
def test_sgd_update_is_torch_sgd_at_a_rate_in_a_tensor(momentum, nesterov, wd):
    from fmclassify._graph import sgd_update

    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov,
                            weight_decay=wd)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov,
                            weight_decay=wd)
    lr = torch.tensor(0.1)
    for step in range(6):
        x = torch.randn(8, 5)
        for m in (a, b):
            m.zero_grad()
            m(x).square().mean().backward()
        opt_a.step()
        if step == 0:
            opt_b.step()  # the first step makes the momentum buffers
        else:
            params = list(b.parameters())
            sgd_update(params, [opt_b.state[p].get("momentum_buffer") for p in params], lr,
                       momentum, nesterov, wd)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        if momentum:
            torch.testing.assert_close(opt_a.state[pa]["momentum_buffer"],
                                       opt_b.state[pb]["momentum_buffer"], rtol=1e-6, atol=1e-7)


def test_every_step_but_auto_has_one_maker_in_the_table():
    from fmclassify.steps import _MAKERS

    assert set(_MAKERS) == set(STEPS) - {"auto"}


@pytest.mark.parametrize("name", ["autograd", "fused", "compiled"])
def test_make_step_builds_the_named_step(name):
    model = base()
    step = make_step(name, model, torch.optim.SGD(model.parameters(), lr=0.1), Recipe())
    assert step.name == name


def test_make_step_refuses_a_name_it_does_not_build():
    model = base()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=r"unknown step 'auto'; make_step builds autograd, "
                                          r"fused, graph, compiled \(choose_step\(\) turns"):
        make_step("auto", model, optimizer, Recipe())
    with pytest.raises(ConfigError, match=r"got callbacks but no run; pass the RunContext"):
        make_step("autograd", model, optimizer, Recipe(), None, [fmc.GradientTracer(steps=1)])
