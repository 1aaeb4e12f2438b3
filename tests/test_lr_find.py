"""lr_find(): the range test leaves the model and the RNG alone; its curve and suggestions."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from fmclassify.exceptions import ConfigError, DataError
from fmclassify.lr_find import LRFinderResult, lr_find, suggest


def small_model(seed: int = 0) -> nn.Module:
    """Batch norm (buffers) and dropout (global RNG) make the restore tests bite."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(16, 4))


class Counting(nn.Module):
    """A linear model that, from call ``nan_after`` on, returns NaN (or raises)."""

    def __init__(self, nan_after: int = 10**9, raise_after: int = 10**9) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 4)
        self.calls, self.nan_after, self.raise_after = 0, nan_after, raise_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.raise_after:
            raise RuntimeError("boom")
        out = self.linear(x.flatten(1))
        return out * math.nan if self.calls > self.nan_after else out


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # bit for bit, buffers included


def test_weights_buffers_grads_flags_and_rng_are_left_alone(tiny_data):
    train, _ = tiny_data
    model = small_model()
    model.eval()
    model[4].train()  # a mix of flags, restored module by module
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)
    before = snapshot(model)
    rng = torch.get_rng_state()
    lr_find(model, train, steps=30)
    assert_same_state(model, before)
    assert torch.equal(first.grad, torch.full_like(first, 0.5))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert [m.training for m in model.modules()] == [False, False, False, False, False, True,
                                                      False]
    assert torch.equal(torch.get_rng_state(), rng)


def test_state_is_restored_when_the_test_fails(tiny_data):
    train, _ = tiny_data
    model = Counting(raise_after=5)
    model.train()
    before = snapshot(model)
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, train, steps=20)
    assert_same_state(model, before)
    assert model.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_same_seed_gives_the_same_result(tiny_data):
    train, _ = tiny_data
    model = small_model()
    a, b = lr_find(model, train, steps=40, seed=3), lr_find(model, train, steps=40, seed=3)
    assert (a.lrs, a.losses, a.smoothed, a.suggestions) == (b.lrs, b.losses, b.smoothed,
                                                            b.suggestions)
    assert a.suggestion == b.suggestion
    assert lr_find(model, train, steps=40, seed=4).losses != a.losses


def test_rates_rise_exponentially_and_the_loss_is_smoothed_with_bias_correction(tiny_data):
    train, _ = tiny_data
    result = lr_find(small_model(), train, start_lr=1e-4, end_lr=1e-2, steps=9)
    assert result.stop_reason == "completed"
    assert result.lrs == pytest.approx([1e-4 * 100 ** (i / 8) for i in range(9)])
    average, hand = 0.0, []
    for i, loss in enumerate(result.losses):
        average = 0.98 * average + 0.02 * loss
        hand.append(average / (1 - 0.98 ** (i + 1)))
    assert result.smoothed == pytest.approx(hand)
    assert result.smoothed[0] == pytest.approx(result.losses[0])


def test_a_blow_up_stops_the_test_and_never_reaches_a_suggestion(tiny_data):
    train, _ = tiny_data
    result = lr_find(small_model(), train, end_lr=1e6, steps=100)
    assert result.stop_reason in ("diverged", "non-finite")
    assert len(result.lrs) < 100
    values = [*result.losses, *result.smoothed, *result.suggestions.values()]
    assert all(math.isfinite(v) for v in values)
    assert set(result.suggestions) == {"valley", "steepest", "minimum/10"}
    assert all(v > 0 for v in result.suggestions.values())
    if result.stop_reason == "diverged":
        assert result.smoothed[-1] > 4 * min(result.smoothed)


def test_a_nan_loss_is_not_recorded(tiny_data):
    train, _ = tiny_data
    result = lr_find(Counting(nan_after=12), train, start_lr=1e-3, end_lr=1e-2, steps=50)
    assert result.stop_reason == "non-finite"
    assert len(result.losses) == 12
    assert all(math.isfinite(v) for v in [*result.losses, *result.suggestions.values()])


def test_a_loss_that_diverges_at_once_is_an_error(tiny_data):
    train, _ = tiny_data
    with pytest.raises(ConfigError, match=r"diverged within 2 step\(s\).*lower start_lr"):
        lr_find(Counting(nan_after=1), train, steps=10)


@pytest.mark.parametrize("kwargs", [
    {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "batch_size": 16},
    {"optimizer": "adam", "label_smoothing": 0.1},
    {"precision": "bf16", "device": "cpu"},
])
def test_trainer_arguments(tiny_data, kwargs):
    train, _ = tiny_data
    result = lr_find(small_model(), train, steps=20, **kwargs)
    assert all(math.isfinite(v) for v in result.suggestions.values())
    assert all(result.settings[k] == v for k, v in kwargs.items())


def test_the_data_restarts_when_it_runs_out(tiny_data):
    train, _ = tiny_data  # 256 images, batch 64: four batches an epoch
    result = lr_find(small_model(), train, start_lr=1e-5, end_lr=1e-4, steps=10)
    assert len(result.losses) == 10


def hand_loop(model: nn.Module, train, lrs: list[float], *, seed: int = 0, batch_size: int = 64,
              clip: float | None = None, **recipe) -> list[float]:
    """The range test's steps written out (lr_find's own loop before issue 21): the oracle."""
    from fmclassify.data import iter_batches
    from fmclassify.recipes import Recipe, make_optimizer

    model = copy.deepcopy(model)
    torch.default_generator.manual_seed(seed)  # dropout, as lr_find seeds it
    generator = torch.Generator().manual_seed(seed)
    x, y = train.float_images(), train.labels
    optimizer = make_optimizer(list(model.parameters()), Recipe(**recipe), lrs[0])
    batches = iter([])
    model.train()
    losses = []
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            xb, yb = next(batches)
        except StopIteration:  # the data restarts, reshuffled
            batches = iter_batches(x, y, batch_size, generator=generator)
            xb, yb = next(batches)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kwargs", [
    {},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "batch_size": 48},
    {"clip_grad_norm": 0.05},
])
def test_the_curve_is_the_hand_loops(tiny_data, kwargs):
    """Driving the Trainer's step changes no number where the math is the same (issue 21)."""
    train, _ = tiny_data
    model = small_model()
    result = lr_find(model, train, start_lr=1e-4, end_lr=1.0, steps=40, **kwargs)
    assert result.stop_reason == "completed"
    clip = kwargs.pop("clip_grad_norm", None)
    hand = hand_loop(model, train, result.lrs, clip=clip, **kwargs)
    assert result.losses == pytest.approx(hand, rel=1e-6)  # batch 48: sum/48 rounds in float32
    assert result.suggestions == pytest.approx(suggest(result.lrs, result.smoothed))


def test_clipping_is_honoured(tiny_data):
    train, _ = tiny_data
    plain = lr_find(small_model(), train, start_lr=1e-2, end_lr=10, steps=30)
    clipped = lr_find(small_model(), train, start_lr=1e-2, end_lr=10, steps=30,
                      clip_grad_norm=1e-3)
    assert clipped.settings["clip_grad_norm"] == 1e-3 and plain.settings["clip_grad_norm"] is None
    assert clipped.losses[0] == plain.losses[0]  # the first loss is before any update
    # a gradient norm of 1e-3 barely moves the weights: the loss stays near its start
    assert max(abs(v - clipped.losses[0]) for v in clipped.losses) < 0.5
    assert clipped.losses != plain.losses


@pytest.mark.parametrize("kwargs, match", [
    ({"start_lr": 1.0, "end_lr": 0.1}, r"start_lr must be smaller than end_lr"),
    ({"start_lr": 0}, r"start_lr must be a finite number > 0, got 0"),
    ({"end_lr": math.inf}, r"end_lr must be a finite number > 0, got inf"),
    ({"steps": 1}, r"steps must be an integer >= 2, got 1"),
    ({"steps": 10.0}, r"steps must be an integer >= 2, got 10.0"),
    ({"seed": -1}, r"seed must be an integer >= 0"),
    ({"lr": 0.1}, r"unknown argument 'lr'; it accepts batch_size, optimizer, momentum"),
    ({"optimizer": "sgdd"}, r"did you mean 'sgd'"),
    ({"nesterov": True}, r"nesterov=True needs optimizer='sgd' with momentum > 0"),
    ({"batch_size": 0}, r"batch_size must be an integer >= 1"),
    ({"label_smoothing": 1.0}, r"label_smoothing must be a number in \[0, 1\)"),
    ({"clip_grad_norm": 0}, r"clip_grad_norm must be a finite number > 0, got 0"),
    ({"precision": "fp16"}, r"unknown precision 'fp16'"),
    ({"device": "gpu0"}, r"unknown device 'gpu0'"),
])
def test_bad_arguments_fail_before_any_work(tiny_data, kwargs, match):
    train, _ = tiny_data
    model = Counting()
    with pytest.raises(ConfigError, match=match):
        lr_find(model, train, **kwargs)
    assert model.calls == 0


def test_rejects_what_is_not_a_model_or_a_dataset(tiny_data):
    train, _ = tiny_data
    with pytest.raises(ConfigError, match=r"model must be a torch.nn.Module, got str"):
        lr_find("base", train)
    with pytest.raises(DataError, match=r"train must be an fmclassify ImageDataset"):
        lr_find(small_model(), (1, 2))


def test_suggestions_from_a_scripted_curve():
    lrs = [10.0 ** e for e in range(-6, 2)]
    out = suggest(lrs, [2.3, 2.3, 2.2, 1.9, 1.0, 0.5, 0.4, 3.0])
    # steepest fall 1.9 -> 1.0 starts at 1e-3; lowest loss at 1; a quarter of the valley's
    # fall (2.3 -> 0.4) is reached at 1.0, at 1e-2
    assert out == {"valley": 1e-2, "steepest": 1e-3, "minimum/10": 0.1}


@pytest.mark.parametrize("flat", [10, 40])
def test_the_valley_does_not_depend_on_how_long_the_curve_stays_flat(flat):
    """Counted in loss, a long noisy plateau (tiny rates) does not move the suggestion."""
    noise = [2.30 + 0.001 * ((7 * i) % 5 - 2) for i in range(flat)]
    fall = [2.30 - 0.05 * (i + 1) for i in range(20)]
    curve = noise + fall + [3.0] * 8
    lrs = [10 ** (-9 + 0.1 * (i - flat)) for i in range(len(curve))]  # the fall always at 1e-9..
    out = suggest(lrs, curve)
    assert math.log10(out["valley"]) == pytest.approx(-9 + 0.1 * 4)


def test_plot_marks_suggestions_and_a_sweep(tiny_data):
    train, _ = tiny_data
    result = lr_find(small_model(), train, steps=30)
    fig = result.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["loss per batch", "smoothed loss"]
    assert [label.split(":")[0] for label in labels[2:]] == ["valley", "steepest", "minimum/10"]

    class Sweep:  # what an ExperimentResult of lr_sweep offers
        def table(self):
            return [{"lr": 0.1, "final_accuracy": 0.872}, {"lr": 1, "final_accuracy": None}]

    labels = [line.get_label() for line in result.plot(sweep=Sweep()).axes[0].get_lines()]
    assert labels[-2:] == ["trained at lr=0.1: 87.2%", "trained at lr=1: n/a"]


def test_plot_into_given_axes(tiny_data):
    train, _ = tiny_data
    result = lr_find(small_model(), train, steps=20)
    fig = Figure()
    ax = fig.subplots()
    assert result.plot(ax=ax) is fig
    with pytest.raises(ConfigError, match=r"sweep must be the result of fmc.lr_sweep"):
        result.plot(sweep=[0.1, 1])

    class Models:
        def table(self):
            return [{"model": "base", "final_accuracy": 0.8}]

    with pytest.raises(ConfigError, match=r"no numeric 'lr' column"):
        result.plot(sweep=Models())


def test_summaries_and_json(tiny_data):
    train, _ = tiny_data
    result = lr_find(small_model(), train, steps=20)
    assert isinstance(result, LRFinderResult)
    text = str(result)
    assert "20 of 20 steps" in text and f"{result.suggestion:.3g}  <- suggestion" in text
    assert "<table>" in result._repr_html_()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["suggestion"] == result.suggestion and data["settings"]["device"] == "cpu"


@pytest.mark.integration
def test_suggests_a_rate_the_course_sweep_trains_with(real_data):
    import fmclassify as fmc

    train, _ = real_data
    model = fmc.build_model("base", seed=0)
    before = snapshot(model)
    result = lr_find(model, train)
    assert 0.01 <= result.suggestion <= 1, str(result)
    assert_same_state(model, before)


def test_the_plot_zooms_on_the_descent_not_the_blow_up():
    from fmclassify.plotting import plot_lr_find

    lrs, curve = [1e-3, 1e-2, 1e-1, 1, 10], [2.3, 2.2, 1.0, 0.5, 1e4]
    ax = plot_lr_find(lrs, curve, curve, suggest(lrs, curve)).axes[0]
    low, high = ax.get_ylim()
    assert low < 0.5 and 2.3 < high < 10


@pytest.mark.integration
def test_with_momentum_the_suggestion_moves_down(real_data):
    """Issue 22: momentum 0.9 moves the good rates down, and the test's suggestion with them.

    (benchmarks/lr_find_check.py trains at the rates: for this MLP the best of a grid of 2-epoch
    runs moved from 0.3 to 0.03.)
    """
    import fmclassify as fmc

    train = real_data[0].subset(6000)
    plain = lr_find(fmc.build_model("base", seed=0), train)
    with_momentum = lr_find(fmc.build_model("base", seed=0), train, momentum=0.9, nesterov=True)
    assert 2 <= plain.suggestion / with_momentum.suggestion <= 10, (plain, with_momentum)
    assert with_momentum.settings["momentum"] == 0.9 and with_momentum.settings["nesterov"]
