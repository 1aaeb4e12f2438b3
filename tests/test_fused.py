"""FusedMLP against its oracle: K separate autograd + torch.optim.SGD runs.

Tolerance: weights and per-step losses agree within ``rtol=1e-4, atol=1e-5`` over 100 steps.
The fused step computes the same formulas in float32 in another order (the learning rate is
folded into the output gradient, the update is one GEMM ``W - (lr g)^T h`` instead of
``W - lr (g^T h)``, biases ride in the GEMM), so results differ in the last bits; measured
over 100 steps at lr <= 0.1 the largest difference is ~7e-7, about 15 times below the bound.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fmclassify as fmc
from fmclassify._fused import FusedMLP
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.models import MLP

TOL = {"rtol": 1e-4, "atol": 1e-5}
LRS = (0.1, 0.05, 0.01, 0.001)
FEATURES, CLASSES, BATCH = 16, 5, 10


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices gain nothing from threads, and on a loaded 2-core machine OpenMP's
    barrier waits made a 100-step test 200 times slower (2.8 s against 0.015 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_models(k, *, hidden=(12, 8), seed=0):
    torch.manual_seed(seed)
    return [MLP(in_features=FEATURES, hidden=hidden, num_classes=CLASSES) for _ in range(k)]


def batches(steps, *, k=None, seed=1, scale=1.0, sizes=(BATCH,)):
    """Synthetic (x, y) batches: shared (B, 1, 4, 4) or one per model (K, B, 1, 4, 4)."""
    g = torch.Generator().manual_seed(seed)
    for i in range(steps):
        b = sizes[i % len(sizes)]
        lead = (b,) if k is None else (k, b)
        yield (torch.rand(*lead, 1, 4, 4, generator=g) * scale,
               torch.randint(0, CLASSES, lead, generator=g))


class Twins:
    """The oracle: each model trained on its own by autograd and torch.optim.SGD."""

    def __init__(self, models, lrs):
        self.models = [copy.deepcopy(m) for m in models]
        self.opts = [torch.optim.SGD(m.parameters(), lr=lr)
                     for m, lr in zip(self.models, lrs, strict=True)]

    def step(self, x, y, only=None):
        losses = []
        for k, (m, opt) in enumerate(zip(self.models, self.opts, strict=True)):
            if only is not None and k not in only:
                losses.append(torch.tensor(float("nan")))
                continue
            xb, yb = (x[k], y[k]) if y.dim() == 2 else (x, y)
            loss = F.cross_entropy(m(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return torch.stack(losses)


def assert_same_weights(engine, twins, which=None):
    engine.write_back()
    for k in which if which is not None else range(engine.num_models):
        for p, q in zip(engine._models[k].parameters(), twins.models[k].parameters(), strict=True):
            torch.testing.assert_close(p, q, **TOL)


@pytest.mark.parametrize(("k", "per_model", "batched"), [
    (1, False, None), (1, True, None), (4, False, None), (4, True, None), (4, False, True),
    (4, True, True)])
def test_matches_autograd_sgd_for_100_steps(k, per_model, batched):
    models = make_models(k)
    twins, engine = Twins(models, LRS[:k]), FusedMLP(models, LRS[:k], batched=batched)
    assert engine._batched is (batched is True)  # on the CPU models go one by one by default
    for x, y in batches(100, k=k if per_model else None):
        loss = engine.step(x, y)
        assert loss.shape == (k,) and not loss.requires_grad
        torch.testing.assert_close(loss, twins.step(x, y), **TOL)
    assert_same_weights(engine, twins)
    # the weights really moved (else equal weights would prove nothing)
    moved = models[0].linear_relu_stack[0].weight - make_models(k)[0].linear_relu_stack[0].weight
    assert moved.abs().max() > 1e-3


def test_per_model_passes_equal_single_engines_bit_for_bit():
    """A sweep's model k gives exactly the numbers of a run of its own (same machine)."""
    models = make_models(4)
    singles = [FusedMLP([copy.deepcopy(m)], [lr]) for m, lr in zip(models, LRS, strict=True)]
    engine = FusedMLP(models, LRS, batched=False)
    for x, y in batches(20):
        loss = engine.step(x, y)
        assert torch.equal(loss, torch.cat([single.step(x, y) for single in singles]))
    engine.write_back()
    for m, single in zip(models, singles, strict=True):
        single.write_back()
        for p, q in zip(m.parameters(), single._models[0].parameters(), strict=True):
            assert torch.equal(p, q)


@pytest.mark.parametrize("batched", [False, True], ids=["per-model", "batched"])
@pytest.mark.parametrize("hidden", [(), (12,), (12, 10, 8)])
def test_other_depths_and_a_short_last_batch(hidden, batched):
    models = make_models(2, hidden=hidden)
    twins, engine = Twins(models, LRS[:2]), FusedMLP(models, LRS[:2], batched=batched)
    for x, y in batches(30, sizes=(BATCH, 3, 1)):  # batch sizes vary: buffers per size
        torch.testing.assert_close(engine.step(x, y), twins.step(x, y), **TOL)
    assert_same_weights(engine, twins)


def test_plain_sequential_with_nesting_and_no_flatten():
    torch.manual_seed(0)
    seq = [nn.Sequential(nn.Linear(FEATURES, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, CLASSES)))
           for _ in range(2)]
    twins, engine = Twins(seq, LRS[:2]), FusedMLP(seq, LRS[:2])
    for x, y in batches(20):
        x = x.flatten(1)  # this model takes (B, F): it has no Flatten
        torch.testing.assert_close(engine.step(x, y), twins.step(x, y), **TOL)
    assert_same_weights(engine, twins)


def test_loss_is_the_loss_before_the_update():
    (model,) = make_models(1)
    x, y = next(batches(1))
    expected = F.cross_entropy(model(x), y).detach()
    loss = FusedMLP([model], [0.1]).step(x, y)
    torch.testing.assert_close(loss, expected.view(1), rtol=0, atol=1e-6)


def test_weights_are_copies_until_write_back():
    (model,) = make_models(1)
    before = copy.deepcopy(model.state_dict())
    engine = FusedMLP([model], [0.1])
    for x, y in batches(3):
        engine.step(x, y)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    engine.write_back()
    assert not torch.equal(model.state_dict()["linear_relu_stack.0.weight"],
                           before["linear_relu_stack.0.weight"])


@pytest.mark.parametrize("batched", [False, True], ids=["per-model", "batched"])
def test_logits_equal_each_models_forward(batched):
    models = make_models(3)
    engine = FusedMLP(models, LRS[:3], batched=batched)
    for x, y in batches(5):
        engine.step(x, y)
    engine.set_active(1, False)  # an inactive model's logits come from its parked weights
    engine.write_back()
    x, _ = next(batches(1, seed=9))
    logits = engine.logits(x)
    assert logits.shape == (3, BATCH, CLASSES)
    for k, m in enumerate(models):
        torch.testing.assert_close(logits[k], m(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batched", [False, True], ids=["per-model", "batched"])
def test_set_active_freezes_exactly_and_resumes(batched):
    models = make_models(3)
    twins, engine = Twins(models, LRS[:3]), FusedMLP(models, LRS[:3], batched=batched)
    data = list(batches(40))
    for x, y in data[:10]:
        engine.step(x, y)
        twins.step(x, y)
    engine.set_active(1, False)
    assert engine.active == (True, False, True)
    engine.write_back()
    frozen = copy.deepcopy(models[1].state_dict())
    for x, y in data[10:30]:
        loss = engine.step(x, y)
        assert torch.isnan(loss[1]) and torch.isfinite(loss[[0, 2]]).all()
        torch.testing.assert_close(loss, twins.step(x, y, only=(0, 2)), equal_nan=True, **TOL)
    engine.write_back()
    for name, value in models[1].state_dict().items():
        assert torch.equal(value, frozen[name]), name  # bit for bit
    engine.set_active(1, True)
    for x, y in data[30:]:
        torch.testing.assert_close(engine.step(x, y), twins.step(x, y), **TOL)
    assert_same_weights(engine, twins)


@pytest.mark.parametrize("batched", [False, True], ids=["per-model", "batched"])
def test_one_active_model_left_and_none_left(batched):
    models = make_models(3)
    twins, engine = Twins(models, LRS[:3]), FusedMLP(models, LRS[:3], batched=batched)
    engine.set_active(0, False)
    engine.set_active(2, False)
    for x, y in batches(10, k=3):  # per-model batches: only model 1's row is used
        loss = engine.step(x, y)
        torch.testing.assert_close(loss, twins.step(x, y, only=(1,)), equal_nan=True, **TOL)
    assert_same_weights(engine, twins, which=[1])
    engine.set_active(1, False)
    x, y = next(batches(1))
    assert torch.isnan(engine.step(x, y)).all()


@pytest.mark.parametrize("batched", [False, True], ids=["per-model", "batched"])
def test_a_diverging_model_leaves_the_others_alone(batched):
    lrs = (0.1, 1e15, 0.01)  # absurd lr: the logits overflow float32 within two steps
    models = make_models(3)
    twins, engine = Twins(models, lrs), FusedMLP(models, lrs, batched=batched)
    went_bad = False
    for x, y in batches(100, scale=4.0):
        loss, expected = engine.step(x, y), twins.step(x, y)
        went_bad |= not torch.isfinite(loss[1]).item()
        assert torch.isfinite(loss[[0, 2]]).all()
        torch.testing.assert_close(loss[[0, 2]], expected[[0, 2]], **TOL)
    assert went_bad
    assert not all(torch.isfinite(p).all() for p in twins.models[1].parameters())  # oracle agrees
    assert_same_weights(engine, twins, which=[0, 2])


# -- supports() and errors ----------------------------------------------------------------------


@pytest.mark.parametrize("model", [
    MLP(in_features=4, hidden=(3,), num_classes=2),
    nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
    nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True), nn.Linear(3, 2)),
], ids=["mlp", "logistic", "sequential"])
def test_supports_linear_relu_stacks(model):
    assert FusedMLP.supports(model) is None


@pytest.mark.parametrize("name", ["base", "wider"])
def test_supports_the_registered_mlps(name):
    assert FusedMLP.supports(fmc.build_model(name)) is None


def frozen():
    m = MLP(in_features=4, hidden=(3,), num_classes=2)
    m.linear_relu_stack[0].weight.requires_grad_(False)
    return m


def hooked():
    m = MLP(in_features=4, hidden=(3,), num_classes=2)
    m.linear_relu_stack[0].register_forward_hook(lambda *args: None)
    return m


class Custom(nn.Module):
    """Linear layers only, but its own forward: the engine cannot know what it computes."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.a(x).tanh())


def tied():
    lin = nn.Linear(4, 4)
    return nn.Sequential(lin, nn.ReLU(), lin)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Dropout(), nn.Linear(3, 2)),
     "^has Dropout$"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)),
     "^has BatchNorm1d$"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)),
     "^has Conv2d$"),
    (lambda: fmc.build_model("deeper"), "^has Conv2d$"),
    (lambda: Custom(), "^Custom is not an fmclassify MLP or a plain nn.Sequential$"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)),
     r"not a Linear/ReLU stack ending in Linear \(has Linear, Sigmoid, Linear\)"),
    (lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()), "not a Linear/ReLU stack"),
    (lambda: nn.Sequential(nn.Flatten()), r"not a Linear/ReLU stack .*\(has nothing\)"),
    (lambda: nn.Sequential(nn.Linear(4, 3, bias=False)), "Linear without bias"),
    (lambda: nn.Sequential(nn.Flatten(0), nn.Linear(4, 2)), "Flatten that is not"),
    (tied, "uses one Linear layer twice"),
    (frozen, "^frozen parameters$"),
    (lambda: MLP(in_features=4, hidden=(3,), num_classes=2).double(),
     r"^not float32 \(torch.float64\)$"),
    (hooked, "has module hooks"),
], ids=["dropout", "batchnorm", "conv", "cnn", "custom", "sigmoid", "ends-in-relu", "empty",
        "no-bias", "flatten-0", "tied", "frozen", "float64", "hooks"])
def test_supports_names_the_obstacle(make, reason):
    found = FusedMLP.supports(make())
    assert found is not None
    assert re.search(reason, found), found


def test_constructor_errors():
    a, b = make_models(2)
    with pytest.raises(ConfigError, match="needs at least one model"):
        FusedMLP([], [])
    with pytest.raises(ConfigError, match=r"2 models but 1 learning rates"):
        FusedMLP([a, b], [0.1])
    with pytest.raises(ConfigError, match=r"lrs\[1\] must be a finite number > 0, got nan"):
        FusedMLP([a, b], [0.1, float("nan")])
    with pytest.raises(ConfigError, match=r"lrs\[0\] must be a finite number > 0, got 0"):
        FusedMLP([a], [0])
    with pytest.raises(ConfigError, match="same model object appears twice; pass copies"):
        FusedMLP([a, a], [0.1, 0.1])
    with pytest.raises(ConfigError, match=r"models\[1\] \(Sequential\) cannot be fused: has "
                                          "Dropout; train it with the Trainer's autograd loop"):
        FusedMLP([a, nn.Sequential(nn.Linear(16, 5), nn.Dropout())], [0.1, 0.1])
    (wide,) = make_models(1, hidden=(12, 9))
    with pytest.raises(ConfigError, match=r"models\[1\] has layers .*\(9, 12\).* fuse only "
                                          "models of one architecture on one device"):
        FusedMLP([a, wide], [0.1, 0.1])


def test_step_and_set_active_errors():
    engine = FusedMLP(make_models(2), LRS[:2])
    with pytest.raises(DataError, match="x has 3 samples but y has 4"):
        engine.step(torch.rand(3, 1, 4, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match=r"expected y of shape \(B,\) or \(K=2, B\)"):
        engine.step(torch.rand(3, 3, 1, 4, 4), torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(DataError, match="each sample has 9 values but the models' first layer "
                                        "takes 16"):
        engine.step(torch.rand(4, 1, 3, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match="each sample has 9 values"):
        engine.logits(torch.rand(4, 1, 3, 3))
    with pytest.raises(DataError, match=r"expected float32 images and int64 labels on cpu; got "
                                         r"x torch\.float64 on cpu and y torch\.int64 on cpu"):
        engine.step(torch.rand(4, 16, dtype=torch.float64), torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match=r"y torch\.int32"):
        engine.step(torch.rand(4, 16), torch.zeros(4, dtype=torch.int32))
    with pytest.raises(ConfigError, match=r"k must be a model index in range\(2\), got 2"):
        engine.set_active(2, False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_matches_autograd_on_cuda():
    models = [m.cuda() for m in make_models(4)]
    twins, engine = Twins(models, LRS), FusedMLP(models, LRS)
    assert engine._batched  # the default on a GPU
    for x, y in batches(100):
        x, y = x.cuda(), y.cuda()
        loss = engine.step(x, y)
        assert loss.device.type == "cuda"
        torch.testing.assert_close(loss, twins.step(x, y), **TOL)
    assert_same_weights(engine, twins)


@pytest.mark.parametrize("batched", [False, True])
def test_read_weights_copies_the_models_in_place(batched):
    models = make_models(3)
    engine = FusedMLP(models, LRS[:3], batched=batched)
    before = [t.data_ptr() for k in range(3) for t in engine._tensors_of(k)]
    with torch.no_grad():
        for m in models:
            for p in m.parameters():
                p.mul_(0.5)
    engine.read_weights()
    assert [t.data_ptr() for k in range(3) for t in engine._tensors_of(k)] == before
    probe = torch.rand(7, FEATURES)
    torch.testing.assert_close(engine.logits(probe), torch.stack([m(probe) for m in models]))
