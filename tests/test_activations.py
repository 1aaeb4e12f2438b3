"""ActivationStats: dead units and activation statistics against hand counts, driven by hand."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmclassify.activations import ActivationStats
from fmclassify.callbacks import RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.history import EpochRecord, History

DEAD = [0, 3, 5]  # hidden units forced dead
ALIVE = [1]  # a unit forced alive


def forced_mlp() -> nn.Sequential:
    """6 -> 8 -> 3 with units DEAD never > 0 (zero weights, bias -1) and ALIVE always > 0."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].weight[DEAD] = 0.0
        model[0].bias[DEAD] = -1.0
        model[0].weight[ALIVE] = 0.0
        model[0].bias[ALIVE] = 2.0
    return model


def make_run(model: nn.Module, history: History | None = None) -> RunContext:
    if history is None:
        history = History()
        history.append(EpochRecord(0, None, 2.3, 0.1, 0.0))
    return RunContext(model=model, history=history, epochs=3)


def train_epochs(stats: ActivationStats, model: nn.Module, batches: list[torch.Tensor],
                 epochs: int, run: RunContext | None = None) -> RunContext:
    """Play the Trainer: fit start, per step forward/backward/hook/step, epoch end, fit end.

    Also runs an eval-mode pass after each epoch, as the Trainer's evaluation does.
    """
    run = run or make_run(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the units stay as forced
    stats.on_fit_start(run)
    first = run.history.epochs_trained + 1
    for epoch in range(first, first + epochs):
        run.epoch = epoch
        model.train()
        for xb in batches:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), torch.zeros(len(xb), dtype=torch.long)).backward()
            stats.on_after_backward(run)
            opt.step()
        model.eval()
        with torch.no_grad():
            model(100.0 * torch.randn(7, *batches[0].shape[1:]))  # evaluation: never counted
        record = EpochRecord(epoch, 1.0, 1.0, 0.5, 0.0)
        run.history.append(record)
        stats.on_epoch_end(run, record)
    stats.on_fit_end(run, run.history)
    return run


def hand_relu_outputs(model: nn.Sequential, batches: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([torch.relu(model[0](xb)) for xb in batches])  # (N, 8)


def test_dead_fraction_mean_and_std_equal_the_hand_count() -> None:
    model = forced_mlp()
    batches = [torch.randn(5, 6) for _ in range(4)]
    stats = ActivationStats()
    train_epochs(stats, model, batches, epochs=2)
    out = hand_relu_outputs(model, batches)
    never_active = (out > 0).sum(dim=0) == 0
    assert set(DEAD) <= set(never_active.nonzero().flatten().tolist())
    assert stats.layers == ["1"]
    assert stats.dead_units("1") == never_active.nonzero().flatten().tolist()
    assert stats.dead_fraction("1") == [never_active.sum().item() / 8] * 2
    record = stats.history["1"][0]
    assert record["epoch"] == 1 and record["units"] == 8 and record["count"] == out.numel()
    assert record["dead"] == never_active.sum().item()
    assert record["mean"] == pytest.approx(out.double().mean().item(), rel=1e-12)
    assert record["std"] == pytest.approx(out.double().std(unbiased=False).item(), rel=1e-9)
    assert stats.column("1", "epoch") == [1, 2]


def test_dead_units_are_per_channel_for_images() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        model[0].weight[2] = 0.0
        model[0].bias[2] = -0.5  # channel 2: never > 0 at any position
    batches = [torch.randn(3, 2, 6, 6) for _ in range(2)]
    stats = ActivationStats()
    train_epochs(stats, model, batches, epochs=1)
    with torch.no_grad():
        out = torch.cat([torch.relu(model[0](xb)) for xb in batches])  # (N, 4, 4, 4)
    never = (out > 0).sum(dim=(0, 2, 3)) == 0
    assert stats.dead_units("1") == never.nonzero().flatten().tolist()
    assert 2 in stats.dead_units("1")
    assert stats.history["1"][0]["units"] == 4


def test_course_models_are_watched_at_their_relus() -> None:
    from fmclassify.registry import build_model

    for name, layers in (("base", ["linear_relu_stack.1", "linear_relu_stack.3"]),
                         ("deeper", ["layer1.2", "layer2.2"])):
        model = build_model(name, seed=0)
        stats = ActivationStats()
        train_epochs(stats, model, [torch.randn(4, 1, 28, 28)], epochs=1)
        assert stats.layers == layers, name
        units = [stats.history[layer][0]["units"] for layer in layers]
        assert units == ([512, 512] if name == "base" else [32, 64])


def test_a_module_called_twice_gets_one_entry_per_call() -> None:
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.relu = nn.Linear(4, 6), nn.Linear(6, 3), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.b(self.relu(self.a(x))))

    stats = ActivationStats()
    train_epochs(stats, Reuse(), [torch.randn(5, 4)] * 3, epochs=1)
    assert stats.layers == ["relu", "relu#2"]
    assert [stats.history[k][0]["units"] for k in stats.layers] == [6, 3]


def test_every_records_epochs_one_then_every_nth_and_frees_the_steps_between() -> None:
    model, batches = forced_mlp(), [torch.randn(5, 6)]
    stats = ActivationStats(every=2)
    seen = []

    class Spy(ActivationStats):
        def on_epoch_end(self, run, record):
            seen.append(self.needs_gradients)  # during the epoch just ended
            super().on_epoch_end(run, record)

    spy = Spy(every=2)
    train_epochs(spy, model, batches, epochs=5)
    assert spy.column("1", "epoch") == [1, 3, 5]
    assert seen == [True, False, True, False, True]
    train_epochs(stats, forced_mlp(), batches, epochs=1)
    assert stats.column("1", "epoch") == [1]


def hooks_of(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_are_removed_at_fit_end_and_never_doubled() -> None:
    model = forced_mlp()
    stats = ActivationStats()
    run = make_run(model)
    stats.on_fit_start(run)
    assert hooks_of(model) == 2  # the model's pre-hook and the ReLU's hook
    stats.on_fit_start(run)  # a fit that never reached on_fit_end: its hooks go first
    assert hooks_of(model) == 2
    stats.on_fit_end(run, run.history)
    assert hooks_of(model) == 0
    model(torch.randn(2, 6))  # no hook left: nothing recorded, nothing raised
    assert stats.layers == []


def test_an_exception_mid_epoch_leaves_no_hook_behind() -> None:
    model = forced_mlp()
    stats = ActivationStats()
    run = make_run(model)
    try:  # the Trainer calls on_fit_end in its finally block, whatever ended the run
        stats.on_fit_start(run)
        model(torch.randn(2, 6))
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        stats.on_fit_end(run, run.history)
    assert hooks_of(model) == 0
    assert stats.layers == []  # the unfinished epoch is dropped


def test_state_round_trips_through_json_and_a_resume_continues() -> None:
    model, batches = forced_mlp(), [torch.randn(5, 6)] * 2
    first = ActivationStats()
    run = train_epochs(first, model, batches, epochs=2)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = ActivationStats()
    second.load_state_dict(state)
    assert second.history == first.history
    train_epochs(second, model, batches, epochs=1, run=make_run(model, run.history))
    assert second.column("1", "epoch") == [1, 2, 3]
    assert second.dead_fraction("1")[2] == first.dead_fraction("1")[1]
    fresh = ActivationStats()
    fresh.load_state_dict(state)
    train_epochs(fresh, model, batches, epochs=1)  # a new fit (nothing trained): starts afresh
    assert fresh.column("1", "epoch") == [1]
    assert json.dumps(fresh.to_dict(), allow_nan=False)


def test_plot_and_tables_show_every_layer() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    stats = ActivationStats()
    train_epochs(stats, model, [torch.randn(5, 6)], epochs=2)
    fig = stats.plot()
    assert len(fig.axes) == 2
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["1", "3"]
    dead = [100 * d for d in stats.dead_fraction("3")]
    assert list(fig.axes[0].get_lines()[1].get_ydata()) == pytest.approx(dead)
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == pytest.approx(stats.column("1", "mean"))
    html = stats._repr_html_()
    assert html.count("<tr>") == 3 and ">1<" in html and ">3<" in html
    assert str(stats).splitlines()[2].split() == ["Layer", "Epoch", "Units", "Dead", "Dead", "%",
                                                  "Mean", "Std"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, r"every must be an integer >= 1, got 0"),
        ({"every": 1.5}, r"every must be an integer >= 1, got 1.5"),
        ({"types": ()}, r"types must be a non-empty sequence of torch.nn.Module subclasses"),
        ({"types": (int,)}, r"types must be a non-empty sequence"),
    ],
)
def test_invalid_arguments_name_argument_and_value(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ActivationStats(**kwargs)


def test_errors_on_use_say_what_to_do() -> None:
    stats = ActivationStats()
    with pytest.raises(ConfigError, match=r"found no activation module in Sequential \(looked "
                                          r"for ReLU, .*\); pass ActivationStats\(types="):
        stats.on_fit_start(make_run(nn.Sequential(nn.Linear(2, 2), nn.Tanh())))
    tanh = ActivationStats(types=(nn.Tanh,))
    train_epochs(tanh, nn.Sequential(nn.Linear(2, 2), nn.Tanh()), [torch.randn(3, 2)], 1)
    assert tanh.layers == ["1"]
    with pytest.raises(ConfigError, match=r"unknown layer 'fc'; choose one of '1'$"):
        tanh.dead_fraction("fc")
    unknown_key = r"unknown key 'median'; did you mean 'mean'\? choose one of 'epoch', 'units'"
    with pytest.raises(ConfigError, match=unknown_key):
        tanh.column("1", "median")
    with pytest.raises(ConfigError, match=r"has every=1 but this callback has every=3"):
        ActivationStats(every=3).load_state_dict(tanh.state_dict())
    with pytest.raises(ConfigError, match=r"state is missing records"):
        ActivationStats().load_state_dict({"every": 1, "dead_units": {}})
    assert math.isfinite(tanh.history["1"][0]["std"])
