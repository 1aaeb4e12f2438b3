"""GradientTracer: hand-computed gradients on a tiny model, an oracle loop on the real data."""

from __future__ import annotations

import copy
import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmclassify.callbacks import RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.gradients import GradientTracer
from fmclassify.history import EpochRecord, History


class Linearish(nn.Module):
    """A "model" whose gradients are known by hand.

    loss = k * (w . c + 6 b), so dloss/dw = k * c = k * (2, -5) and dloss/db = 6 k.
    ``unused`` never reaches the loss (its grad stays None); ``frozen`` does not train.
    """

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))
        self.b = nn.Parameter(torch.zeros(1))
        self.unused = nn.Parameter(torch.zeros(3))
        self.frozen = nn.Parameter(torch.zeros(4), requires_grad=False)

    def loss(self, k: float) -> torch.Tensor:
        c = torch.tensor([2.0, -5.0])
        return k * ((self.w * c).sum() + 6.0 * self.b.sum() + self.frozen.sum())


def make_run(model: nn.Module) -> RunContext:
    history = History()
    history.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
    return RunContext(model=model, history=history, epochs=1)


def trace(tracer: GradientTracer, model: Linearish, ks: list[float]) -> RunContext:
    """Play the Trainer's step: zero_grad, backward, hook (no optimizer step is needed)."""
    run = make_run(model)
    tracer.on_fit_start(run)
    for step, k in enumerate(ks):
        run.step = step
        model.zero_grad(set_to_none=True)
        model.loss(k).backward()
        if tracer.needs_gradients:
            tracer.on_after_backward(run)
    tracer.on_fit_end(run, run.history)
    return run


# grad entries at k = 1: w -> (2, -5), b -> (6); the mean of per-tensor means would be 2.25
HAND = {
    "mean": (2 - 5 + 6) / 3,
    "mean_abs": (2 + 5 + 6) / 3,
    "l2_norm": math.sqrt(4 + 25 + 36),
}
HAND_PER_LAYER = {
    "mean": {"w": -1.5, "b": 6.0},
    "mean_abs": {"w": 3.5, "b": 6.0},
    "l2_norm": {"w": math.sqrt(29), "b": 6.0},
}


@pytest.mark.parametrize("statistic", ["mean", "mean_abs", "l2_norm"])
def test_statistics_match_the_hand_computation(statistic: str) -> None:
    tracer = GradientTracer(steps=3, statistic=statistic, per_layer=True)  # type: ignore[arg-type]
    trace(tracer, Linearish(), [1.0, 2.0, -3.0])
    scale = [1.0, 2.0, 3.0] if statistic != "mean" else [1.0, 2.0, -3.0]
    assert tracer.values == pytest.approx([HAND[statistic] * s for s in scale], rel=1e-12)
    assert tracer.steps_recorded == 3
    layers = tracer.per_layer_values
    assert list(layers) == ["w", "b", "unused"]
    for name in ("w", "b"):
        expected = [HAND_PER_LAYER[statistic][name] * s for s in scale]
        assert layers[name] == pytest.approx(expected, rel=1e-12)
    assert all(math.isnan(v) for v in layers["unused"])


def test_mean_is_element_weighted_not_a_mean_of_means() -> None:
    tracer = GradientTracer(steps=1)
    trace(tracer, Linearish(), [1.0])
    assert tracer.values[0] == pytest.approx(1.0)
    assert tracer.values[0] != pytest.approx((-1.5 + 6.0) / 2)


def test_parameters_without_gradient_are_skipped_and_counted() -> None:
    tracer = GradientTracer(steps=4)
    trace(tracer, Linearish(), [1.0, 1.0, 1.0, 1.0])
    assert tracer.skipped_parameters == {"frozen": 4, "unused": 4}
    assert tracer.trainable_entries == 2 + 1 + 3  # frozen is not trainable
    assert tracer.values == pytest.approx([1.0] * 4)  # unused's 3 entries are not in N


def test_a_parameter_with_a_gradient_on_some_steps_only() -> None:
    model = Linearish()
    tracer = GradientTracer(steps=2, statistic="mean", per_layer=True)
    run = make_run(model)
    tracer.on_fit_start(run)
    model.loss(1.0).backward()
    tracer.on_after_backward(run)  # step 0: unused has no grad
    model.zero_grad(set_to_none=True)
    (model.loss(1.0) + 2.0 * model.unused.sum()).backward()  # step 1: unused gets grad 2
    tracer.on_after_backward(run)
    assert tracer.values == pytest.approx([3.0 / 3, (3.0 + 6.0) / 6])
    assert tracer.skipped_parameters["unused"] == 1
    assert math.isnan(tracer.per_layer_values["unused"][0])
    assert tracer.per_layer_values["unused"][1] == pytest.approx(2.0)


def test_recording_stops_after_steps_and_frees_the_hook() -> None:
    model = Linearish()
    tracer = GradientTracer(steps=2)
    run = make_run(model)
    tracer.on_fit_start(run)
    assert tracer.needs_gradients
    for k in (1.0, 2.0, 5.0, 7.0):
        model.zero_grad(set_to_none=True)
        model.loss(k).backward()
        tracer.on_after_backward(run)  # the Trainer may still call it within an epoch
    assert not tracer.needs_gradients
    assert tracer.values == pytest.approx([1.0, 2.0])
    assert tracer.steps_recorded == 2


@pytest.mark.parametrize(
    ("bad", "statistic", "flagged"),
    [
        (math.nan, "mean", math.isnan),
        (math.inf, "mean", math.isnan),  # inf * 2 + inf * -5: the signed sum is NaN
        (math.inf, "l2_norm", math.isinf),
        (-math.inf, "mean_abs", math.isinf),
    ],
)
def test_nonfinite_gradient_is_recorded_and_flagged(bad, statistic, flagged) -> None:
    model = Linearish()
    tracer = GradientTracer(steps=3, statistic=statistic)
    trace(tracer, model, [1.0, bad, 1.0])
    assert flagged(tracer.values[1])
    assert math.isfinite(tracer.values[0]) and math.isfinite(tracer.values[2])
    assert tracer.nonfinite_steps == [1]
    data = tracer.to_dict()
    assert data["values"][1] is None and data["nonfinite_steps"] == [1]
    json.dumps(data, allow_nan=False)  # JSON-ready even with a non-finite step


def test_to_dict_describes_the_trace() -> None:
    tracer = GradientTracer(steps=2, statistic="mean_abs", per_layer=True)
    trace(tracer, Linearish(), [1.0, 1.0])
    data = json.loads(json.dumps(tracer.to_dict(), allow_nan=False))
    assert data["statistic"] == "mean_abs" and data["steps"] == 2
    assert data["steps_recorded"] == 2
    assert data["values"] == pytest.approx([13 / 3, 13 / 3])
    assert data["per_layer"]["b"] == pytest.approx([6.0, 6.0])
    assert data["per_layer"]["unused"] == [None, None]
    assert data["skipped_parameters"] == {"frozen": 2, "unused": 2}


def test_matches_pytorch_on_a_random_mlp() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))
    x, y = torch.randn(8, 3, 4), torch.randint(0, 5, (8,))
    tracers = {s: GradientTracer(steps=3, statistic=s) for s in ("mean", "mean_abs", "l2_norm")}
    run = make_run(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    expected: dict[str, list[float]] = {s: [] for s in tracers}
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for t in tracers.values():
            t.on_after_backward(run)
        flat = torch.cat([p.grad.flatten() for p in model.parameters()]).double()
        expected["mean"].append(flat.mean().item())
        expected["mean_abs"].append(flat.abs().mean().item())
        expected["l2_norm"].append(flat.norm().item())
        opt.step()
    for s, t in tracers.items():
        assert t.values == pytest.approx(expected[s], rel=1e-9, abs=1e-15), s


def test_fit_start_resets_between_fits() -> None:
    tracer = GradientTracer(steps=2)
    trace(tracer, Linearish(), [1.0, 1.0])
    trace(tracer, Linearish(), [3.0, 3.0])
    assert tracer.values == pytest.approx([3.0, 3.0])
    assert tracer.needs_gradients is False


def test_state_dict_lets_a_resumed_run_continue_the_trace() -> None:
    model = Linearish()
    first = GradientTracer(steps=4, per_layer=True)
    run = make_run(model)
    first.on_fit_start(run)
    for k in (1.0, 2.0):
        model.zero_grad(set_to_none=True)
        model.loss(k).backward()
        first.on_after_backward(run)
    state = first.state_dict()
    second = GradientTracer(steps=4, per_layer=True)
    second.load_state_dict(state)
    resumed = make_run(model)
    resumed.history.append(EpochRecord(1, 0.5, 0.4, 0.8, 1.0))  # a finished epoch: a resume
    second.on_fit_start(resumed)
    for k in (3.0, 4.0):
        model.zero_grad(set_to_none=True)
        model.loss(k).backward()
        second.on_after_backward(resumed)
    assert second.values == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert second.per_layer_values["b"] == pytest.approx([6.0, 12.0, 18.0, 24.0])
    assert not second.needs_gradients


def test_load_state_dict_rejects_another_configuration() -> None:
    state = GradientTracer(steps=4).state_dict()
    with pytest.raises(ConfigError, match="has steps=4 but this tracer has steps=100"):
        GradientTracer().load_state_dict(state)
    with pytest.raises(
        ConfigError, match="has statistic='mean' but this tracer has statistic='l2_norm'"
    ):
        GradientTracer(steps=4, statistic="l2_norm").load_state_dict(state)
    with pytest.raises(ConfigError, match="GradientTracer state is missing rows"):
        GradientTracer(steps=4).load_state_dict({k: v for k, v in state.items() if k != "rows"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ({"steps": 10.0}, r"steps must be an integer >= 1, got 10.0"),
        ({"steps": True}, r"steps must be an integer >= 1, got True"),
        (
            {"statistic": "median"},
            r"unknown statistic 'median'; did you mean 'mean'\? choose one of 'mean', 'mean_abs', "
            r"'l2_norm'$",
        ),
    ],
)
def test_invalid_arguments_name_argument_and_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GradientTracer(**kwargs)


def test_plot_draws_the_recorded_values() -> None:
    tracer = GradientTracer(steps=3, statistic="l2_norm", per_layer=True)
    trace(tracer, Linearish(), [1.0, 2.0, 3.0])
    fig = tracer.plot()
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3]
    assert list(line.get_ydata()) == pytest.approx(tracer.values)
    labels = [ln.get_label() for ln in fig.axes[1].get_lines()]
    assert labels == ["w", "b", "unused"]


# -- on the real data -----------------------------------------------------------------------


@pytest.mark.integration
def test_base_model_trace_equals_a_hand_written_loop(real_data) -> None:
    from fmclassify.registry import build_model
    from fmclassify.training import Trainer

    train, test = real_data
    train, test = train.subset(6400), test.subset(1000)  # 6400 / 64 = exactly 100 steps
    model = build_model("base", seed=0)
    twin = copy.deepcopy(model)
    tracer = GradientTracer(steps=100)
    Trainer(
        model,
        lr=0.1,
        epochs=1,
        batch_size=64,
        seed=0,
        shuffle=False,
        device="cpu",
        callbacks=[tracer],
        progress=False,
    ).fit(train, test)
    assert tracer.steps_recorded == 100 and len(tracer.values) == 100
    assert all(math.isfinite(v) for v in tracer.values)

    # the oracle: the quickstart's loop over the same contiguous slices
    x, y = train.float_images(), train.labels
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    expected = []
    for i in range(100):
        xb, yb = x[64 * i : 64 * (i + 1)], y[64 * i : 64 * (i + 1)]
        loss = F.cross_entropy(twin(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in twin.parameters() if p.requires_grad]
        total = sum(g.double().sum().item() for g in grads)
        expected.append(total / sum(g.numel() for g in grads))
        opt.step()
    for step, (got, want) in enumerate(zip(tracer.values, expected, strict=True)):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12), (step, got, want)


# -- per-layer gradient flow ------------------------------------------------------------------

FLOW = ("mean", "mean_abs", "norm", "weight_norm", "update_ratio")


def small_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


def hand_flow(model: nn.Module, lr_of: dict[str, float]) -> dict[str, dict[str, float]]:
    """The oracle: each statistic straight from p.grad and p, in float64."""
    out = {}
    for name, p in model.named_parameters():
        g, w = p.grad.double(), p.detach().double()
        out[name] = {
            "mean": g.mean().item(),
            "mean_abs": g.abs().mean().item(),
            "norm": g.norm().item(),
            "weight_norm": w.norm().item(),
            "update_ratio": lr_of[name] * g.norm().item() / w.norm().item(),
        }
    return out


def flow_loop(tracer: GradientTracer, model: nn.Module, opt: torch.optim.Optimizer, steps: int,
              lr_at=None) -> list[dict[str, dict[str, float]]]:
    """A hand-written training loop that calls the tracer's hooks as the Trainer does."""
    x, y = torch.randn(8, 3, 4), torch.randint(0, 5, (8,))
    run = make_run(model)
    run.optimizer = opt
    tracer.on_fit_start(run)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    expected = []
    for step in range(steps):
        if lr_at is not None:
            lr_at(opt, step)
        run.step = step
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        tracer.on_after_backward(run)
        lrs = {n: group_of[id(p)]["lr"] for n, p in model.named_parameters()}
        expected.append(hand_flow(model, lrs))
        opt.step()
    tracer.on_fit_end(run, run.history)
    return expected


def assert_flow_equals(tracer: GradientTracer, expected: list[dict[str, dict[str, float]]]):
    flow = tracer.per_layer
    assert list(flow) == list(expected[0])  # named_parameters order
    for name in flow:
        assert list(flow[name]) == list(FLOW)
        for stat in FLOW:
            want = [e[name][stat] for e in expected]
            assert flow[name][stat] == pytest.approx(want, rel=1e-5, abs=1e-12), (name, stat)


def test_per_layer_flow_matches_the_hand_computation() -> None:
    model = small_mlp()
    tracer = GradientTracer(steps=4, per_layer=True)
    expected = flow_loop(tracer, model, torch.optim.SGD(model.parameters(), lr=0.3), 4)
    assert_flow_equals(tracer, expected)
    assert len(tracer.per_layer["1.weight"]["norm"]) == 4


def test_update_ratio_uses_the_learning_rate_of_each_step() -> None:
    model = small_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = [0.5, 0.05, 2.0]

    def set_lr(opt: torch.optim.Optimizer, step: int) -> None:
        opt.param_groups[0]["lr"] = sched[step]  # as a schedule does, per step

    tracer = GradientTracer(steps=3, per_layer=True, lr=123.0)  # lr is ignored: there is an opt
    expected = flow_loop(tracer, model, opt, 3, set_lr)
    assert_flow_equals(tracer, expected)
    flow = tracer.per_layer["3.weight"]
    for step, lr in enumerate(sched):
        ratio = lr * flow["norm"][step] / flow["weight_norm"][step]
        assert flow["update_ratio"][step] == pytest.approx(ratio, rel=1e-12)


def test_update_ratio_uses_each_parameter_groups_learning_rate() -> None:
    model = small_mlp()
    first, second = list(model[1].parameters()), list(model[3].parameters())
    opt = torch.optim.SGD([{"params": first, "lr": 0.1}, {"params": second, "lr": 0.01}])
    tracer = GradientTracer(steps=2, per_layer=True)
    expected = flow_loop(tracer, model, opt, 2)
    assert_flow_equals(tracer, expected)


def test_per_layer_leaves_the_whole_model_statistics_unchanged() -> None:
    for statistic in ("mean", "mean_abs", "l2_norm"):
        traces = []
        for per_layer in (False, True):
            model = small_mlp()
            tracer = GradientTracer(steps=3, statistic=statistic, per_layer=per_layer)
            flow_loop(tracer, model, torch.optim.SGD(model.parameters(), lr=0.3), 3)
            traces.append(tracer.values)
        assert traces[0] == traces[1], statistic  # bit for bit


def test_without_an_optimizer_the_given_lr_is_used_or_update_ratio_is_left_out() -> None:
    with_lr = GradientTracer(steps=2, per_layer=True, lr=0.5)
    trace(with_lr, Linearish(), [1.0, 2.0])  # a RunContext without optimizer
    b = with_lr.per_layer["b"]
    assert b["norm"] == pytest.approx([6.0, 12.0])
    assert b["weight_norm"] == [0.0, 0.0]  # zero-initialized: no ratio (NaN, not inf)
    assert all(math.isnan(v) for v in b["update_ratio"])
    assert with_lr.to_dict()["per_layer_stats"]["b"]["update_ratio"] == [None, None]

    without = GradientTracer(steps=2, per_layer=True)
    trace(without, Linearish(), [1.0, 2.0])
    assert "update_ratio" not in without.per_layer["w"]
    assert without.per_layer["w"]["mean_abs"] == pytest.approx([3.5, 7.0])
    with pytest.raises(ConfigError, match=r"update_ratio needs the learning rate.*lr=\.\.\."):
        without.plot_heatmap()
    assert without.plot_heatmap("norm").axes  # the other statistics plot


def test_a_tensor_without_gradient_is_nan_in_the_flow_and_none_in_json() -> None:
    tracer = GradientTracer(steps=2, per_layer=True, lr=0.1)
    trace(tracer, Linearish(), [1.0, 1.0])
    assert all(math.isnan(v) for s in FLOW for v in tracer.per_layer["unused"][s])
    assert "frozen" not in tracer.per_layer  # not trainable: not traced
    data = json.loads(json.dumps(tracer.to_dict(), allow_nan=False))
    assert data["per_layer_stats"]["unused"]["norm"] == [None, None]
    assert data["per_layer_stats"]["w"]["norm"] == pytest.approx([math.sqrt(29)] * 2)


def test_per_layer_state_round_trips_through_json_and_a_resume_continues() -> None:
    x, y = torch.randn(8, 3, 4), torch.randint(0, 5, (8,))

    def steps(tracer: GradientTracer, run: RunContext, n: int) -> None:
        for _ in range(n):
            run.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(run.model(x), y).backward()
            tracer.on_after_backward(run)
            run.optimizer.step()

    def fresh_run(resume: bool = False) -> RunContext:
        run = make_run(model)
        if resume:
            run.history.append(EpochRecord(1, 0.5, 0.4, 0.8, 1.0))  # a finished epoch
        run.optimizer = opt
        return run

    model = small_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    start = copy.deepcopy(model.state_dict())
    straight = GradientTracer(steps=4, per_layer=True)
    straight.on_fit_start(run := fresh_run())
    steps(straight, run, 4)

    model.load_state_dict(start)
    first = GradientTracer(steps=4, per_layer=True)
    first.on_fit_start(run := fresh_run())
    steps(first, run, 2)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))  # JSON-ready
    second = GradientTracer(steps=4, per_layer=True)
    second.load_state_dict(state)
    assert second.per_layer == first.per_layer
    second.on_fit_start(run := fresh_run(resume=True))
    steps(second, run, 2)
    assert not second.needs_gradients
    for name, stats in straight.per_layer.items():
        for stat, values in stats.items():
            assert second.per_layer[name][stat] == pytest.approx(values, rel=1e-12), (name, stat)
    assert second.values == pytest.approx(straight.values, rel=1e-12)


def test_per_layer_state_must_match_the_tracer() -> None:
    plain = GradientTracer(steps=2).state_dict()
    with pytest.raises(ConfigError, match="has per_layer=False but this tracer has per_layer=True"):
        GradientTracer(steps=2, per_layer=True).load_state_dict(plain)


def test_flow_plots_draw_one_line_and_one_row_per_tensor() -> None:
    model = small_mlp()
    tracer = GradientTracer(steps=3, per_layer=True)
    flow_loop(tracer, model, torch.optim.SGD(model.parameters(), lr=0.3), 3)
    names = ["1.weight", "1.bias", "3.weight", "3.bias"]
    fig = tracer.plot_flow()  # default: mean_abs
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.get_lines()] == names
    assert ax.get_yscale() == "log"
    want = tracer.per_layer["3.weight"]["mean_abs"]
    assert list(ax.get_lines()[2].get_ydata()) == pytest.approx(want)
    assert tracer.plot_flow("mean").axes[0].get_yscale() == "symlog"

    heat = tracer.plot_heatmap()  # default: update_ratio
    image = heat.axes[0].get_images()[0]
    assert image.get_array().shape == (4, 3)
    assert type(image.norm).__name__ == "LogNorm"
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == names
    assert image.get_array()[1, 2] == pytest.approx(tracer.per_layer["1.bias"]["update_ratio"][2])


@pytest.mark.parametrize(
    ("kwargs", "call", "message"),
    [
        ({}, lambda t: t.plot_flow(), r"no per-layer statistics; build it with .*per_layer=True"),
        ({"per_layer": True}, lambda t: t.plot_flow("l2_norm"),
         r"unknown flow statistic 'l2_norm'; did you mean 'norm'\? choose one of 'mean', "
         r"'mean_abs', 'norm'"),
    ],
)
def test_flow_plot_errors_say_what_to_do(kwargs, call, message) -> None:
    tracer = GradientTracer(steps=1, lr=0.1, **kwargs)
    trace(tracer, Linearish(), [1.0])
    with pytest.raises(ConfigError, match=message):
        call(tracer)


@pytest.mark.parametrize("lr", [0, -0.1, math.nan, math.inf, "0.1", True])
def test_invalid_lr_is_rejected(lr) -> None:
    with pytest.raises(ConfigError, match=r"lr must be a finite number > 0, got"):
        GradientTracer(per_layer=True, lr=lr)


def test_config_names_lr_only_when_given() -> None:
    assert GradientTracer(per_layer=True).config() == {
        "steps": 100, "statistic": "mean", "per_layer": True}
    assert GradientTracer(lr=0.1).config()["lr"] == 0.1
