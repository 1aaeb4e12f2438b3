"""Shared fixtures: a tiny synthetic data set, and the real Fashion-MNIST when installed."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from helpers import make_dataset

# Where the real Fashion-MNIST lives; a GPU machine without Debian's package points this elsewhere.
REAL_DATA = Path(os.environ.get("FMCLASSIFY_REAL_DATA", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture
def tiny_data():
    """(train, test) synthetic sets of 1x8x8 images, 4 classes."""
    return make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")


@pytest.fixture(scope="session")
def real_data():
    """The real Fashion-MNIST from Debian's dataset-fashion-mnist.

    In CI (CI=true) a missing copy is a failure, never a skip: .ci/run installs it.
    """
    if not REAL_DATA.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{REAL_DATA} missing in CI; .ci/run must install dataset-fashion-mnist")
        pytest.skip(f"{REAL_DATA} not installed (apt-get install dataset-fashion-mnist)")
    from fmclassify.data import load_dataset

    return load_dataset("fashion-mnist", root=REAL_DATA, download=False)
