"""Property test: whatever happens to the bytes of an IDX pair, loading either succeeds with
consistent data or raises a DataError (CorruptDataError) -- never anything else."""

from __future__ import annotations

import gzip
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmclassify import data
from fmclassify.data import load_dataset
from fmclassify.exceptions import DataError

NAMES = {
    "images": "train-images-idx3-ubyte",
    "labels": "train-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    magic = struct.pack(">BBBB", 0, 0, 8, array.ndim)
    header = magic + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


RNG = np.random.default_rng(0)
VALID = {
    "images": idx_bytes(RNG.integers(0, 256, (6, 4, 3), dtype=np.uint8)),
    "labels": idx_bytes(RNG.integers(0, 10, 6, dtype=np.uint8)),
}
TEST_FILES = {
    "t10k-images-idx3-ubyte": idx_bytes(RNG.integers(0, 256, (2, 4, 3), dtype=np.uint8)),
    "t10k-labels-idx1-ubyte": idx_bytes(RNG.integers(0, 10, 2, dtype=np.uint8)),
}


def _flip(content: bytes, pos: int, mask: int) -> bytes:
    if not content:
        return content
    pos %= len(content)
    return content[:pos] + bytes([content[pos] ^ mask]) + content[pos + 1 :]


def _set_u32(content: bytes, slot: int, value: int) -> bytes:
    """Overwrite one of the header's big-endian 32-bit words (magic or a size)."""
    at = 4 * slot
    if len(content) < at + 4:
        return content
    return content[:at] + struct.pack(">I", value) + content[at + 4 :]


OPS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 200), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 100)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=20)),
    st.tuples(
        st.just("header"),
        st.integers(0, 3),
        st.one_of(
            st.integers(0, 12),
            st.integers(0, 2**32 - 1),
            st.sampled_from([0x801, 0x803, 0x80D, 0x0D03]),
        ),
    ),
)


def _apply(content: bytes, op: tuple) -> bytes:
    kind = op[0]
    if kind == "flip":
        return _flip(content, op[1], op[2])
    if kind == "truncate":
        return content[: op[1]]
    if kind == "extend":
        return content + op[1]
    return _set_u32(content, op[1], op[2])


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("FMCLASSIFY_DATA", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path / "system")


def _write_pair(folder: Path, target: str, ops: list, gz: bool, after_gzip: bool) -> None:
    """Write the train pair, damaged by ops, and a valid test pair into folder."""
    for name, content in TEST_FILES.items():
        (folder / name).write_bytes(content)
    for which, name in NAMES.items():
        content = VALID[which]
        damaged = target in (which, "both")
        if damaged and not (gz and after_gzip):
            for op in ops:
                content = _apply(content, op)
        if gz:
            content = gzip.compress(content, mtime=0)
            if damaged and after_gzip:  # damage the compressed stream itself
                for op in ops:
                    content = _apply(content, op)
        (folder / (name + (".gz" if gz else ""))).write_bytes(content)


@pytest.mark.parametrize("gz", [True, False])
def test_undamaged_pair_loads(tmp_path, gz):
    _write_pair(tmp_path, "both", [], gz, after_gzip=False)
    train, test = load_dataset("mnist", root=tmp_path, download=False)
    assert train.images.shape == (6, 1, 4, 3) and test.images.shape == (2, 1, 4, 3)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.sampled_from(["images", "labels", "both"]),
    ops=st.lists(OPS, min_size=1, max_size=4),
    gz=st.booleans(),
    after_gzip=st.booleans(),
)
def test_corrupted_idx_loads_or_raises_data_error(target, ops, gz, after_gzip):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_pair(folder, target, ops, gz, after_gzip)
        try:
            train, test = load_dataset("mnist", root=folder, download=False)
        except DataError as exc:
            assert str(exc)  # a message for the user, never empty
            return
        assert train.images.dtype == torch.uint8 and train.images.ndim == 4
        assert train.images.shape[1] == 1 and len(train.images) == len(train.labels)
        assert train.image_shape == test.image_shape
        assert int(train.labels.min()) >= 0 and int(train.labels.max()) < 10
