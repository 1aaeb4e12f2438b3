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
