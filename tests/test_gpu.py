"""The GPU path: data on the device once, batches as index slices there, no per-step copies.

Skipped without a CUDA device (this project's CI has none); run on a GPU machine with
``pytest -m gpu``. The same functions run on the CPU in the rest of the suite.
"""

from __future__ import annotations

import pytest
import torch

import fmclassify as fmc
from helpers import make_dataset

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def fit(device, shuffle=True, epochs=2):
    train, test = make_dataset(512, seed=0), make_dataset(128, seed=1, split="test")
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    t = fmc.Trainer(model, lr=0.1, epochs=epochs, batch_size=32, shuffle=shuffle,
                    device=device, progress=False)
    return t, t.fit(train, test)


def test_cuda_run_matches_the_cpu_run():
    _, on_gpu = fit("cuda")
    _, on_cpu = fit("cpu")
    assert on_gpu.metadata["device"].startswith("cuda")
    assert on_gpu.status == on_cpu.status == "completed"
    for g, c in zip(on_gpu.trained, on_cpu.trained, strict=True):
        assert g.train_loss == pytest.approx(c.train_loss, rel=1e-3)
        assert g.test_accuracy == pytest.approx(c.test_accuracy, abs=2 / 128)


def test_no_host_to_device_copy_per_step():
    """One epoch of 16 steps: the copies are per epoch (data, permutation), not per step."""
    train, test = make_dataset(512, seed=0), make_dataset(128, seed=1, split="test")
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    t = fmc.Trainer(model, lr=0.1, epochs=1, batch_size=32, device="cuda", progress=False)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t.fit(train, test)
    copies = [e for e in prof.events() if "Memcpy HtoD" in e.name]
    steps = 512 // 32
    assert len(copies) < steps, [e.name for e in copies]


def test_gradient_tracer_on_cuda_has_no_sync_per_step():
    train, test = make_dataset(256, seed=0), make_dataset(64, seed=1, split="test")
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    tracer = fmc.GradientTracer(steps=5)
    fmc.Trainer(model, lr=0.1, epochs=1, batch_size=32, device="cuda", progress=False,
                callbacks=[tracer]).fit(train, test)
    assert tracer.steps_recorded == 5 and all(torch.isfinite(torch.tensor(tracer.values)))


@pytest.mark.integration
def test_real_data_on_cuda_reaches_the_course_accuracy(real_data):
    train, test = real_data
    h = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=1, shuffle=False,
                    device="cuda", progress=False).fit(train, test)
    assert h.final_accuracy >= 0.78


# -- the CUDA-graph step ----------------------------------------------------------------------

def _conv_net(seed=0):
    """A small CNN with BatchNorm and no dropout: the graph must replay it exactly."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 4))


@pytest.mark.parametrize("make", [
    lambda: fmc.build_model("base", num_classes=4, image_size=8, seed=0),
    _conv_net,
], ids=["base", "conv-bn"])
def test_graph_step_trains_as_autograd_does(make):
    """Momentum, Nesterov, weight decay, clipping; 500 images at batch 32: a smaller last batch."""
    train, test = make_dataset(500, seed=0), make_dataset(128, seed=1, split="test")
    runs = {}
    for step in ("graph", "autograd"):
        model = make()
        t = fmc.Trainer(model, lr=0.05, epochs=3, batch_size=32, momentum=0.9, nesterov=True,
                        weight_decay=5e-4, clip_grad_norm=5.0, step=step, device="cuda",
                        progress=False)
        runs[step] = (t.fit(train, test), model)
    (graph, g_model), (eager, e_model) = runs["graph"], runs["autograd"]
    assert graph.metadata["step"] == "graph" and graph.status == "completed"
    for g, e in zip(graph.trained, eager.trained, strict=True):
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4)
        assert g.test_loss == pytest.approx(e.test_loss, rel=1e-4)
    for (name, p), q in zip(g_model.state_dict().items(), e_model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_auto_on_cuda_takes_the_graph_and_says_why_not_otherwise():
    train, test = make_dataset(256, seed=0), make_dataset(64, seed=1, split="test")
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    h = fmc.Trainer(model, lr=0.1, epochs=1, batch_size=32, device="cuda",
                    progress=False).fit(train, test)
    assert h.metadata["step"] == "graph"
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    h = fmc.Trainer(model, lr=0.1, epochs=1, batch_size=32, device="cuda", optimizer="adam",
                    progress=False).fit(train, test)
    assert h.metadata["step"] == ("autograd (graph: the optimizer is 'adam', not SGD; fused: "
                                  "the recipe is not plain SGD at a constant rate)")


def test_graph_step_has_no_host_sync():
    from fmclassify._batching import Batch
    from fmclassify.recipes import Recipe
    from fmclassify.steps import GraphStep

    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = GraphStep(model, opt, Recipe(momentum=0.9))
    x, y = torch.rand(512, 1, 8, 8, device="cuda"), torch.randint(0, 4, (512,), device="cuda")
    order = torch.randperm(512, device="cuda").view(16, 32)

    def batch(i):
        return Batch(x, y, order[i], lambda a, b: (a, b), True)

    step.begin_epoch(torch.zeros((), device="cuda"))
    for i in range(5):  # warm-up and capture
        step(batch(i))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync in a replayed step raises
    try:
        for i in range(5, 16):
            step(batch(i))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(step.loss_sum()) and step.loss_sum() > 0


def test_graph_step_keeps_the_divergence_check():
    train, test = make_dataset(512, seed=0), make_dataset(64, seed=1, split="test")
    model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
    h = fmc.Trainer(model, lr=1e4, epochs=3, batch_size=16, step="graph", device="cuda",
                    progress=False).fit(train, test)
    assert h.status == "diverged" and h.diverged_epoch == 1


def test_graph_step_after_a_gradient_tracer_and_on_resume(tmp_path):
    """Epoch 1 through autograd (the tracer reads gradients), then the graph; resume agrees."""
    train, test = make_dataset(512, seed=0), make_dataset(64, seed=1, split="test")

    def trainer(epochs, ckpt):
        model = fmc.build_model("base", num_classes=4, image_size=8, seed=0)
        tracer = fmc.GradientTracer(steps=10)
        return fmc.Trainer(model, lr=0.1, epochs=epochs, batch_size=32, momentum=0.9,
                           device="cuda", callbacks=[tracer], progress=False, checkpoint=ckpt)

    straight = trainer(4, None).fit(train, test)
    assert straight.metadata["step"].startswith("graph (autograd in epochs where")
    trainer(2, tmp_path / "run.pt").fit(train, test)
    resumed = trainer(4, tmp_path / "run.pt").fit(train, test, resume=True)
    for a, b in zip(straight.trained, resumed.trained, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
        assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=1 / 64)


# -- runs trained together ---------------------------------------------------------------------

def test_runs_together_on_cuda_match_the_runs_alone():
    """12 runs (4 learning rates x 3 seeds) as one batched model: each History within 1e-3."""
    train, test = make_dataset(1000, seed=0), make_dataset(200, seed=1, split="test")
    configs = [(lr, s) for lr in (0.3, 0.1, 0.03, 0.01) for s in (0, 1, 2)]

    def make(lr, s):
        return fmc.Trainer(fmc.build_model("base", num_classes=4, image_size=8, seed=s), lr=lr,
                           epochs=3, seed=s, device="cuda", progress=False)

    together = fmc.fit_together([make(lr, s) for lr, s in configs], train, test)
    for h, (lr, s) in zip(together, configs, strict=True):
        alone = make(lr, s).fit(train, test)
        assert h.metadata["step"] == "together (12 runs as one batched model)"
        for a, b in zip(h.trained, alone.trained, strict=True):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)
            assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=2 / 200)


def test_run_many_on_cuda_trains_a_sweep_together_and_a_rerun_trains_nothing(tmp_path):
    train, test = make_dataset(512, seed=0), make_dataset(128, seed=1, split="test")
    specs = [fmc.RunSpec("base", lr=lr, epochs=2, seed=s, batch_size=32)
             for lr in (0.1, 0.01) for s in (0, 1)]
    store = fmc.RunStore(tmp_path)
    first = fmc.run_many(specs, (train, test), store=store, device="cuda")
    assert [r.history.metadata["step"] for r in first] == [
        "together (4 runs as one batched model)"] * 4
    again = fmc.run_many(specs, (train, test), store=store, device="cuda",
                         on_run=lambda r: None)
    assert [r.history.records for r in again] == [r.history.records for r in first]


def test_a_recipe_of_a_conv_model_together_on_cuda_matches_the_runs_alone(monkeypatch):
    """The stacked engine in a captured graph: momentum, weight decay, a schedule, batch norm."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # grouped vs plain convs
    train, test = make_dataset(512, seed=0), make_dataset(128, seed=1, split="test")
    configs = [(0.05, 0, 5e-4), (0.02, 1, 0.0), (0.05, 2, 1e-3)]

    def make(lr, s, wd):
        return fmc.Trainer(_conv_net(s), lr=lr, epochs=3, batch_size=32, seed=s, momentum=0.9,
                           nesterov=True, weight_decay=wd, schedule="cosine", device="cuda",
                           progress=False)

    together = fmc.fit_together([make(*c) for c in configs], train, test)
    for h, c in zip(together, configs, strict=True):
        alone = make(*c).fit(train, test)
        assert h.metadata["step"] == "together (3 runs as one batched model)"
        for a, b in zip(h.trained, alone.trained, strict=True):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)
            assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=2 / 128)


class CountsBackwards(fmc.CallbackBase):
    """Reads gradients for its first 5 steps, then not: needs_gradients turns False."""

    def __init__(self):
        self.calls = 0
        self.needs_gradients = True

    def on_after_backward(self, run):
        self.calls += 1
        self.needs_gradients = self.calls < 5


@pytest.mark.parametrize("together", [False, True])
def test_an_epoch_leaves_autograd_once_no_callback_reads_gradients(together):
    train, test = make_dataset(512, seed=0), make_dataset(64, seed=1, split="test")

    def make(callbacks, seed=0):
        return fmc.Trainer(fmc.build_model("base", num_classes=4, image_size=8, seed=seed),
                           lr=0.1, epochs=2, batch_size=32, seed=seed, device="cuda",
                           callbacks=callbacks, progress=False)

    counter = CountsBackwards()
    if together:
        h = fmc.fit_together([make([counter]), make([], seed=1)], train, test)[0]
    else:
        h = make([counter]).fit(train, test)
    assert counter.calls == 5  # then the graph (or the group) took the epoch's other 11 steps
    plain = make([]).fit(train, test)
    for a, b in zip(h.trained, plain.trained, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)


def test_graph_step_under_a_schedule_with_augmentation_trains_as_autograd_does():
    """The course's recipe shape: momentum, weight decay, one-cycle, flips; within 1e-4."""
    train, test = make_dataset(500, seed=0), make_dataset(128, seed=1, split="test")
    runs = {}
    for step in ("graph", "autograd"):
        model = _conv_net()
        t = fmc.Trainer(model, lr=0.05, epochs=3, batch_size=32, momentum=0.9, nesterov=True,
                        weight_decay=5e-4, schedule="one-cycle", augment=["flip"], step=step,
                        device="cuda", progress=False)
        runs[step] = t.fit(train, test)
    assert runs["graph"].metadata["step"] == "graph"
    for g, e in zip(runs["graph"].trained, runs["autograd"].trained, strict=True):
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4)
        assert g.lr == pytest.approx(e.lr)


def test_models_with_dropout_train_alone_on_cuda(tmp_path):
    train, test = make_dataset(128, size=28), make_dataset(64, size=28, seed=1, split="test")
    runs = [fmc.Trainer(fmc.build_model("deeper", num_classes=4, seed=s), lr=0.05, epochs=1,
                        seed=s, device="cuda", progress=False) for s in (0, 1)]
    with pytest.raises(fmc.ConfigError, match="it has dropout, and on a GPU each such run"):
        fmc.fit_together(runs, train, test)
    specs = [fmc.RunSpec("deeper", lr=0.05, epochs=1, seed=s) for s in (0, 1)]
    results = fmc.run_many(specs, (train, test), store=fmc.RunStore(tmp_path), device="cuda")
    assert [r.history.metadata["step"] for r in results] == ["graph", "graph"]
    assert all(r.history.status == "completed" for r in results)
