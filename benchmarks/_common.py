"""Helpers shared by the benchmark scripts: machine facts and the course's quickstart loop."""

from __future__ import annotations

import gzip
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import ToTensor

SYSTEM_COPY = Path("/usr/share/datasets/fashion-mnist")


def machine() -> str:
    """One line: CPU count, threads, library versions."""
    import fmclassify

    return (f"{platform.machine()} {os.cpu_count()} CPUs "
            f"({torch.get_num_threads()} torch threads), "
            f"python {platform.python_version()}, torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}, fmclassify {fmclassify.__version__}")


def quickstart_datasets(tmp: Path) -> tuple[datasets.FashionMNIST, datasets.FashionMNIST]:
    """torchvision's FashionMNIST with ToTensor(), exactly as the course's quickstart builds it."""
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in SYSTEM_COPY.glob("*.gz"):
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    kw = {"root": str(tmp), "download": False, "transform": ToTensor()}
    return datasets.FashionMNIST(train=True, **kw), datasets.FashionMNIST(train=False, **kw)


def quickstart_epoch(model: nn.Module, loader: DataLoader, lr: float) -> float:
    """The quickstart's train loop for one epoch; returns its wall-clock seconds."""
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


@torch.no_grad()
def quickstart_accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Test accuracy with the quickstart's test loop."""
    model.eval()
    correct = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    return correct / len(loader.dataset)


def median_time(fn: Callable[[], float], repeats: int) -> float:
    """Median of ``repeats`` calls of ``fn`` (each returns its own seconds)."""
    return statistics.median(fn() for _ in range(repeats))


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the extracted quickstart files."""
    return tempfile.TemporaryDirectory(prefix="fmclassify-bench-")
