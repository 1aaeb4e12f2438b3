"""StackedModels against its oracle: K runs, each trained alone by autograd and torch.optim.SGD.

Tolerance: per-step losses, weights, batch-norm statistics and momentum buffers agree within
``rtol=1e-4, atol=1e-5`` over 25 steps. The stacked step computes the same float32 formulas
with batched kernels (bmm, grouped convolutions) and its SGD update as ``p - lr_k g`` by
addcmul with a per-run rate, so results differ in the last bits; the largest differences
seen (printed by ``test_base_mlp_matches_solo_sgd`` under ``-s``) are 6.6e-7 in a weight and
3.6e-7 in a loss on a 2-core x86 CPU, about 15 times below the bound.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fmclassify as fmc
from fmclassify._stacked import StackedModels
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.recipes import Recipe
from helpers import make_dataset

TOL = {"rtol": 1e-4, "atol": 1e-5}
CLASSES, SIZE, BATCH = 4, 8, 16
DATA = make_dataset(256, size=SIZE, classes=CLASSES)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads on a loaded 2-core machine (see test_fused)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlps(k):
    return [fmc.build_model("base", num_classes=CLASSES, image_size=SIZE, seed=s)
            for s in range(k)]


def convs(k):
    torch.manual_seed(0)
    return [nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, CLASSES))
            for _ in range(k)]


def batches(steps, k, *, seed=0):
    """Each run its own shuffling order: x (K, B, 1, 8, 8), y (K, B)."""
    x_all = DATA.images.float() / 255
    gens = [torch.Generator().manual_seed(seed + r) for r in range(k)]
    for _ in range(steps):
        idx = torch.stack([torch.randperm(len(DATA.labels), generator=g)[:BATCH] for g in gens])
        yield x_all[idx], DATA.labels[idx]


class Twins:
    """The oracle: each run trained alone by autograd and torch.optim.SGD."""

    def __init__(self, models, lrs, wds=None, *, momentum=0.0, nesterov=False, smoothing=0.0,
                 clip=None):
        wds = wds or [0.0] * len(models)
        self.models = [copy.deepcopy(m) for m in models]
        self.opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum,
                                     nesterov=nesterov, weight_decay=wd)
                     for m, lr, wd in zip(self.models, lrs, wds, strict=True)]
        self.smoothing, self.clip = smoothing, clip

    def step(self, x, y, only=None):
        losses = []
        for k, (m, opt) in enumerate(zip(self.models, self.opts, strict=True)):
            if only is not None and k not in only:
                losses.append(torch.tensor(math.nan))
                continue
            loss = F.cross_entropy(m(x[k]), y[k], label_smoothing=self.smoothing)
            opt.zero_grad()
            loss.backward()
            if self.clip is not None:
                torch.nn.utils.clip_grad_norm_(m.parameters(), self.clip)
            opt.step()
            losses.append(loss.detach())
        return torch.stack(losses)


def largest_difference(models, twins, which=None):
    """Assert the models' parameters and buffers equal the twins'; return the largest gap."""
    worst = 0.0
    for k in which if which is not None else range(len(models)):
        mine = [*models[k].parameters(), *models[k].buffers()]
        theirs = [*twins.models[k].parameters(), *twins.models[k].buffers()]
        for p, q in zip(mine, theirs, strict=True):
            torch.testing.assert_close(p, q, **TOL)
            worst = max(worst, (p.double() - q.double()).abs().max().item())
    return worst


CONFIGS = {
    "plain": {},
    "momentum-nesterov-decay": {"momentum": 0.9, "nesterov": True, "wds": [1e-3, 5e-4, 0.0]},
    "momentum-smoothing-clip": {"momentum": 0.5, "smoothing": 0.1, "clip": 0.5},
}


@pytest.mark.parametrize("make", [mlps, convs], ids=["base-mlp", "conv-batchnorm"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_base_mlp_matches_solo_sgd(make, config):
    lrs = [0.1, 0.05, 0.01]
    models = make(3)
    before = [p.detach().clone() for p in models[0].parameters()]
    twins = Twins(models, lrs, config.get("wds"), momentum=config.get("momentum", 0.0),
                  nesterov=config.get("nesterov", False),
                  smoothing=config.get("smoothing", 0.0), clip=config.get("clip"))
    engine = StackedModels(models, lrs, config.get("wds"), momentum=config.get("momentum", 0.0),
                           nesterov=config.get("nesterov", False),
                           label_smoothing=config.get("smoothing", 0.0),
                           clip_grad_norm=config.get("clip"))
    worst_loss = 0.0
    for x, y in batches(25, 3):
        loss = engine.step(x, y)
        assert loss.shape == (3,) and not loss.requires_grad
        expected = twins.step(x, y)
        torch.testing.assert_close(loss, expected, **TOL)
        worst_loss = max(worst_loss, (loss - expected).abs().max().item())
    worst = largest_difference(models, twins)
    print(f"\nlargest difference: weights/buffers {worst:.2g}, losses {worst_loss:.2g}")
    moved = max((p - q).abs().max().item()
                for p, q in zip(models[0].parameters(), before, strict=True))
    assert moved > 1e-3  # the weights really moved, else equality would prove nothing
    if config.get("momentum"):
        for k in range(3):
            state = engine.momentum_state(k)
            for p, buf in zip(twins.models[k].parameters(), state, strict=True):
                torch.testing.assert_close(buf, twins.opts[k].state[p]["momentum_buffer"], **TOL)


def test_batchnorm_running_stats_are_per_run_and_the_models_see_them():
    models = convs(2)
    twins, engine = Twins(models, [0.1, 0.02]), StackedModels(models, [0.1, 0.02])
    for x, y in batches(5, 2):
        engine.step(x, y)
        twins.step(x, y)
    bn = [m[1] for m in models]
    assert bn[0].num_batches_tracked.item() == 5
    assert not torch.equal(bn[0].running_mean, bn[1].running_mean)
    largest_difference(models, twins)


@pytest.mark.parametrize("make", [mlps, convs], ids=["base-mlp", "conv-batchnorm"])
def test_a_shared_batch_and_a_learning_rate_schedule(make):
    models = make(2)
    twins, engine = Twins(models, [0.1, 0.05]), StackedModels(models, [0.1, 0.05])
    for i, (x, y) in enumerate(batches(10, 1)):
        scale = 1 - i / 10  # what a schedule would set, per step
        engine.set_lrs([0.1 * scale, 0.05 * scale] if i % 2 else
                       torch.tensor([0.1 * scale, 0.05 * scale]))
        for opt, lr in zip(twins.opts, (0.1, 0.05), strict=True):
            opt.param_groups[0]["lr"] = lr * scale
        torch.testing.assert_close(engine.step(x[0], y[0]), twins.step(x.expand(2, *x.shape[1:]),
                                                                     y.expand(2, -1)), **TOL)
    largest_difference(models, twins)
    assert engine.lrs == pytest.approx([0.01, 0.005])


@pytest.mark.parametrize("make", [mlps, convs], ids=["base-mlp", "conv-batchnorm"])
def test_a_diverging_run_goes_non_finite_and_the_others_stay_equal_to_their_twins(make):
    lrs = [0.1, 1e5, 0.05]
    models = make(3)
    twins, engine = Twins(models, lrs, momentum=0.9), StackedModels(models, lrs, momentum=0.9)
    losses = []
    for x, y in batches(25, 3):
        losses.append(engine.step(x, y))
        twins.step(x, y, only=(0, 2))
    losses = torch.stack(losses)  # (steps, K)
    assert not torch.isfinite(losses[:, 1]).all()
    assert not all(torch.isfinite(p).all() for p in models[1].parameters())
    assert torch.isfinite(losses[:, [0, 2]]).all()
    largest_difference(models, twins, which=(0, 2))


@pytest.mark.parametrize("make", [mlps, convs], ids=["base-mlp", "conv-batchnorm"])
def test_set_active_freezes_a_run_bit_for_bit(make):
    models = make(3)
    lrs = [0.1, 0.05, 0.02]
    twins, engine = Twins(models, lrs, momentum=0.9), StackedModels(models, lrs, momentum=0.9)
    steps = batches(12, 3)
    for x, y in (next(steps) for _ in range(4)):
        engine.step(x, y)
        twins.step(x, y)
    engine.set_active(1, False)
    frozen = [t.clone() for t in [*models[1].parameters(), *models[1].buffers()]]
    momentum = engine.momentum_state(1)
    for x, y in (next(steps) for _ in range(4)):
        loss = engine.step(x, y)
        assert math.isnan(loss[1]) and torch.isfinite(loss[[0, 2]]).all()
        twins.step(x, y, only=(0, 2))
    assert engine.active == (True, False, True)
    after = [*models[1].parameters(), *models[1].buffers()]
    assert all(torch.equal(a, b) for a, b in zip(after, frozen, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(engine.momentum_state(1), momentum,
                                                 strict=True))
    largest_difference(models, twins, which=(0, 2))
    engine.set_active(1, True)  # resumed, it trains again, as its twin does
    for x, y in steps:
        torch.testing.assert_close(engine.step(x, y), twins.step(x, y), **TOL)
    largest_difference(models, twins)


def test_the_models_hold_the_trained_weights_as_views():
    models = convs(2)
    params = [list(m.parameters()) for m in models]
    engine = StackedModels(models, [0.1, 0.1], momentum=0.9)
    state = copy.deepcopy(models[1].state_dict())
    for x, y in batches(3, 2):
        engine.step(x, y)
    assert all(p is q for p, q in zip(params[1], models[1].parameters(), strict=True))
    assert not torch.equal(models[1].state_dict()["0.weight"], state["0.weight"])
    x = DATA.images[:8].float() / 255
    logits = engine.logits(x)
    for k, m in enumerate(models):
        m.eval()  # the step does not depend on the models' mode: it runs its own copy
        torch.testing.assert_close(logits[k], m(x), **TOL)
    models[1].load_state_dict(state)  # a resume writes into the stack
    torch.testing.assert_close(engine.logits(x)[1], models[1](x), **TOL)
    engine.write_back()  # nothing to copy


def test_momentum_round_trips_through_torch_sgd():
    lrs = [0.1, 0.05]
    models = mlps(2)
    twins = Twins(models, lrs, momentum=0.9, nesterov=True)
    engine = StackedModels(models, lrs, momentum=0.9, nesterov=True)
    assert engine.momentum_state(0) == [None] * 6  # torch's SGD has no buffer before a step
    steps = batches(10, 2)
    for x, y in (next(steps) for _ in range(5)):
        twins.step(x, y)
    # resume from the twins: their weights, and their optimizers' momentum buffers
    for k, (m, opt) in enumerate(zip(twins.models, twins.opts, strict=True)):
        models[k].load_state_dict(m.state_dict())
        engine.load_momentum(k, [opt.state[p].get("momentum_buffer") for p in m.parameters()])
    for x, y in steps:
        torch.testing.assert_close(engine.step(x, y), twins.step(x, y), **TOL)
    largest_difference(models, twins)
    with pytest.raises(ConfigError, match="some momentum buffers are None"):
        engine.load_momentum(0, [None] * 5 + [torch.zeros(CLASSES)])


def test_bf16_autocast_trains_close_to_a_solo_bf16_run():
    models = mlps(2)
    twins, engine = Twins(models, [0.1, 0.05]), StackedModels(models, [0.1, 0.05],
                                                              precision="bf16")
    for x, y in batches(3, 2):
        loss = engine.step(x, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = twins.step(x, y)
        torch.testing.assert_close(loss, expected, rtol=2e-2, atol=2e-2)


def test_the_deeper_cnn_with_dropout_trains():
    """Dropout masks differ from a solo run's (randomness per run): no equality, it learns."""
    models = [fmc.build_model("deeper", num_classes=CLASSES, image_size=SIZE, seed=s)
              for s in range(2)]
    engine = StackedModels(models, [0.05, 0.02], momentum=0.9)
    losses = torch.stack([engine.step(x, y) for x, y in batches(30, 2)])  # (steps, K)
    assert torch.isfinite(losses).all()
    assert (losses[-5:].mean(0) < losses[:5].mean(0) * 0.8).all()


def test_supports_names_what_differs():
    ok = mlps(2)
    assert StackedModels.supports(ok, [Recipe(), Recipe(weight_decay=1e-4)]) is None
    assert "same model object" in StackedModels.supports([ok[0], ok[0]])
    wide = fmc.build_model("base", num_classes=5, image_size=SIZE)
    assert "has parameter linear_relu_stack.4.weight (5, 512)" in \
        StackedModels.supports([ok[0], wide])
    assert "is a Sequential but models[0] a MLP" in StackedModels.supports([ok[0], convs(1)[0]])
    hooked = mlps(2)
    hooked[1].register_forward_hook(lambda *a: None)
    assert "hooks" in StackedModels.supports(hooked)
    frozen = mlps(2)
    next(frozen[1].parameters()).requires_grad_(False)
    assert "frozen" in StackedModels.supports(frozen)
    cumulative = convs(2)
    for m in cumulative:
        m[1].momentum = None
    assert "momentum=None" in StackedModels.supports(cumulative)
    reasons = {
        "optimizer='adam'": [Recipe(), Recipe(optimizer="adam")],
        "ema=0.999": [Recipe(ema=0.999), Recipe(ema=0.999)],
        "momentum=0.9 but recipes[0] has 0.0": [Recipe(), Recipe(momentum=0.9)],
        "label_smoothing=0.1": [Recipe(), Recipe(label_smoothing=0.1)],
        "1 recipes for 2 models": [Recipe()],
    }
    for words, recipes in reasons.items():
        assert words in StackedModels.supports(ok, recipes)
    with pytest.raises(ConfigError, match="cannot train together: recipes"):
        StackedModels.from_recipes(ok, [0.1, 0.1], reasons["momentum=0.9 but recipes[0] has 0.0"])
    engine = StackedModels.from_recipes(ok, [0.1, 0.1], [Recipe(momentum=0.9, nesterov=True,
                                                                weight_decay=w)
                                                         for w in (0.0, 1e-3)])
    assert engine.weight_decays == (0.0, 1e-3)


def test_bad_arguments_are_named():
    models = mlps(2)
    with pytest.raises(ConfigError, match="got 2 models, 1 lrs"):
        StackedModels(models, [0.1])
    with pytest.raises(ConfigError, match=r"lrs\[1\] must be a finite number > 0"):
        StackedModels(models, [0.1, 0.0])
    with pytest.raises(ConfigError, match="models cannot train together: the same model"):
        StackedModels([models[0], models[0]], [0.1, 0.1])
    engine = StackedModels(models, [0.1, 0.1])
    x, y = next(batches(1, 2))
    with pytest.raises(DataError, match="expected x"):
        engine.step(x, y[:, :3])
    with pytest.raises(DataError, match="int64 labels"):
        engine.step(x, y.int())
    with pytest.raises(ConfigError, match=r"k must be a run index in range\(2\)"):
        engine.set_active(2, False)
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        StackedModels(mlps(2), [0.1, 0.1], label_smoothing=1.0)
    with pytest.raises(ConfigError, match="momentum must be >= 0 and < 1"):
        StackedModels(mlps(2), [0.1, 0.1], nesterov=True)
